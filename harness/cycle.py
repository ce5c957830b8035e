"""The compiled part of one flight-code cycle: the plant's substeps with the IMU integrating each.

The plant (``harness.plant.step_kernel``) and the IMU (``sensor_models.imu.accumulate_kernel``)
each own their kernel and their state vectors; this module only composes them, so that the
n substeps of a cycle cost one call instead of 2n. A kernel that needs something first (the
plant: a stale inertia, lag decay or clock; a step that takes the general path; the IMU: a new
block of noise draws) stops the cycle there, and ``Cycle.advance`` finishes it through the
models' Python methods, which do the same arithmetic: the result is the same to the bit
whichever way a substep went (tests/test_cycle.py).
"""
from __future__ import annotations

import hashlib

from harness.plant import STEP_DONE, ActuatorCommand, Plant, load_step_kernel, rk4_kernel, rk4_rates, step_kernel
from sensor_models.imu import Imu, accumulate_kernel, load_accumulate_kernel


def advance_kernel(x, par, ctl, imu_in, model, acc, noise, thr, engine_on, tx, ty, tz, dt, n):
    """Up to n plant steps of dt (s) under one command, the IMU integrating each; returns how
    many were taken (fewer when a kernel needs something first; that substep is not taken)."""
    for i in range(n):
        if model[18] != 0.0 and model[21] >= noise.shape[0]:
            return i  # the IMU needs new noise draws before this substep
        if step_kernel(x, par, ctl, imu_in, thr, engine_on, tx, ty, tz, dt) != STEP_DONE:
            return i
        accumulate_kernel(model, acc, noise, imu_in[0], imu_in[1], imu_in[2], imu_in[3], imu_in[4],
                          imu_in[5], imu_in[6])
    return n


_ADVANCE = None


def _kernel_stamp() -> str:
    """A hash of the code of every kernel the compiled cycle inlines. numba's on-disk cache keys a
    function by its own file and bytecode only, so a change in plant.py or imu.py alone would
    load a stale cycle; the stamp, a constant of the compiled function, is part of its key."""
    h = hashlib.sha256()
    for fn in (advance_kernel, step_kernel, rk4_kernel, rk4_rates, accumulate_kernel):
        code = fn.__code__
        h.update(code.co_code)
        h.update(repr((code.co_consts, code.co_names, code.co_varnames)).encode())
    return h.hexdigest()


def _stamped(stamp: str):
    """advance_kernel under a closure holding ``stamp`` (numba hashes closure contents into the key)."""
    def advance_stamped(x, par, ctl, imu_in, model, acc, noise, thr, engine_on, tx, ty, tz, dt, n):
        if stamp == "":  # never: the stamp only has to be part of the function
            return -1
        return advance_kernel(x, par, ctl, imu_in, model, acc, noise, thr, engine_on, tx, ty, tz, dt, n)
    return advance_stamped


def load_advance_kernel():
    """``(kernel, compiled)``: advance_kernel compiled by numba with both models' kernels inlined
    (once per process, cached on disk under a stamp of their code), or the plain-Python one."""
    global _ADVANCE
    if _ADVANCE is None:
        _s, step_compiled = load_step_kernel()
        _a, acc_compiled = load_accumulate_kernel()
        if not (step_compiled and acc_compiled):
            _ADVANCE = (advance_kernel, False)
        else:
            import numba
            from numba.extending import register_jitable

            register_jitable(step_kernel)
            register_jitable(accumulate_kernel)
            register_jitable(advance_kernel)
            f8, a8 = numba.float64, numba.float64[::1]
            sig = numba.int64(a8, a8, a8, a8, a8, a8, numba.float64[:, ::1], f8, numba.boolean, f8, f8, f8,
                              f8, numba.int64)
            fn = _stamped(_kernel_stamp())
            try:
                _ADVANCE = (numba.njit([sig], cache=True, nogil=True)(fn), True)
            except RuntimeError:
                _ADVANCE = (numba.njit([sig], nogil=True)(fn), True)
    return _ADVANCE


class Cycle:
    """Advances a plant and the IMU riding on it by one flight-code cycle."""

    def __init__(self, plant: Plant, imu: Imu):
        self.plant = plant
        self.imu = imu
        self._kernel = load_advance_kernel()[0]
        self._args = plant.kernel_arrays() + imu.kernel_arrays()

    def advance(self, act: ActuatorCommand, dt: float, n: int) -> bool:
        """n plant steps of dt (s) under one command, the IMU integrating each; stops at touchdown.
        Returns whether the lander has touched down."""
        plant = self.plant
        if plant.touchdown_state is not None:
            return True
        throttle, engine_on, (tx, ty, tz) = act
        try:
            done = self._kernel(*self._args, throttle, engine_on, tx, ty, tz, dt, n)
        except TypeError:  # a command of other types than floats: the models' Python methods take it
            done = 0
        if done:
            plant.moved()
        if done < n:
            imu = self.imu
            for _ in range(done, n):
                plant.step(act, dt)
                imu.accumulate_from_plant(plant)
                if plant.touchdown_state is not None:
                    return True
        return False


__all__ = ["Cycle", "advance_kernel", "load_advance_kernel"]
