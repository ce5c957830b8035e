"""The compiled part of one flight-code cycle: the plant's substeps with the IMU integrating each.

The plant (``harness.plant.step_kernel``) and the IMU (``sensor_models.imu.accumulate_kernel``)
each own their kernel and their state vectors; this module only composes them, so that the
n substeps of a cycle cost one call instead of 2n. The models' vectors are laid out in one
float64 block (``Cycle``), so the call hands numba one array: its dispatch costs about 0.2 us
per array argument, more than the step itself. A kernel that needs something first (the plant:
a stale inertia, lag decay or clock; a step that takes the general path; the IMU: a new block
of noise draws) stops the cycle there, and ``Cycle.advance`` finishes it through the models'
Python methods, which do the same arithmetic: the result is the same to the bit whichever way
a substep went (tests/test_cycle.py). ``Cycle.advance`` calls the compiled cycle as a C function
(``load_c_entry``) through ``harness/cycle_call.c``, which costs a fraction of the dispatcher's
argument typing; numba's dispatcher when that cannot be built or a command is not plain floats.
"""
from __future__ import annotations

import hashlib

import numpy as np

from harness import cycle_call
from harness.jit import njit_cached
from harness.plant import STEP_DONE, ActuatorCommand, Plant, load_step_kernel, rk4_kernel, rk4_rates, step_kernel
from sensor_models.imu import Imu, accumulate_kernel, load_accumulate_kernel, read_kernel, saturate


def advance_kernel(x, par, ctl, imu_in, model, acc, noise, reading, thr, engine_on, tx, ty, tz, dt, n):
    """Up to n plant steps of dt (s) under one command, the IMU integrating each, then the IMU's
    reading of the cycle (``read_kernel``); returns how many steps were taken (fewer when a
    kernel needs something first: that substep is not taken, nor the reading)."""
    for i in range(n):
        if model[18] != 0.0 and 6 * model[21] >= noise.shape[0]:
            return i  # the IMU needs new noise draws before this substep
        if step_kernel(x, par, ctl, imu_in, thr, engine_on, tx, ty, tz, dt) != STEP_DONE:
            return i
        accumulate_kernel(model, acc, noise, imu_in[0], imu_in[1], imu_in[2], imu_in[3], imu_in[4],
                          imu_in[5], imu_in[6])
    read_kernel(model, acc, reading)
    return n


def _kernel_stamp() -> str:
    """A hash of the code of every kernel the compiled cycle inlines. numba's on-disk cache keys a
    function by its own file and bytecode only, so a change in plant.py or imu.py alone would
    load a stale cycle; the stamp, a constant of the compiled function, is part of its key."""
    h = hashlib.sha256()
    for fn in (advance_kernel, step_kernel, rk4_kernel, rk4_rates, accumulate_kernel, saturate, read_kernel):
        code = fn.__code__
        h.update(code.co_code)
        h.update(repr((code.co_consts, code.co_names, code.co_varnames)).encode())
    return h.hexdigest()


def _on_block(stamp: str, bounds: tuple):
    """advance_kernel on one block holding its eight arrays (``bounds``: each one's start and end,
    a constant of the compiled function like ``stamp``, which numba hashes into the cache key
    with the closure)."""
    (x0, x1), (p0, p1), (c0, c1), (i0, i1), (m0, m1), (a0, a1), (n0, n1), (r0, r1) = bounds
    n_state = x1 - x0  # the plant state vector, at the start of the block

    def advance_block(block, history, row, thr, engine_on, tx, ty, tz, dt, n):
        if stamp == "":  # never: the stamp only has to be part of the function
            return -1
        done = advance_kernel(block[x0:x1], block[p0:p1], block[c0:c1], block[i0:i1], block[m0:m1],
                              block[a0:a1], block[n0:n1], block[r0:r1], thr, engine_on, tx, ty, tz, dt, n)
        if done == n and row < history.shape[0]:
            for k in range(n_state):
                history[row, k] = block[k]
        return done
    return advance_block


_ADVANCE: dict = {}


def load_advance_kernel(bounds: tuple):
    """``(kernel, compiled)`` for a block with these array offsets: advance_kernel compiled by numba
    with both models' kernels inlined (once per process and layout, cached on disk under a stamp
    of their code), or None when the models' kernels run interpreted (then the arrays are passed
    one by one to the plain-Python advance_kernel)."""
    if bounds not in _ADVANCE:
        _s, step_compiled = load_step_kernel()
        _a, acc_compiled = load_accumulate_kernel()
        if not (step_compiled and acc_compiled):
            _ADVANCE[bounds] = (None, False)
        else:
            import numba
            from numba.extending import register_jitable

            register_jitable(step_kernel)
            register_jitable(accumulate_kernel)
            register_jitable(read_kernel)
            register_jitable(advance_kernel)
            f8 = numba.float64
            sig = numba.int64(numba.float64[::1], numba.float64[:, ::1], numba.int64, f8, numba.boolean, f8, f8, f8,
                              f8, numba.int64)
            fn = _on_block(_kernel_stamp(), bounds)
            _ADVANCE[bounds] = (njit_cached(numba, sig, fn), True)
    return _ADVANCE[bounds]


_C_ENTRY: dict = {}


def _c_entry(advance_block, block_len: int, n_state: int):
    """``advance_block`` (``_on_block``'s, as Python: numba keys its disk cache by the closure's
    contents, and a compiled function pickles with a per-process id) behind a C signature taking
    the block and the history as pointers (``load_c_entry``)."""
    from numba import carray

    def advance_c(block_p, history_p, rows, row, thr, engine_on, tx, ty, tz, dt, n):
        return advance_block(carray(block_p, (block_len,)), carray(history_p, (rows, n_state)), row, thr,
                             engine_on != 0, tx, ty, tz, dt, n)
    return advance_c


def load_c_entry(bounds: tuple) -> int | None:
    """The address of the compiled cycle for a block with these array offsets as a C function
    (``fsil_cycle_fn`` of harness/targets/loopback_link.h: the same compiled kernel as
    ``load_advance_kernel``'s, so the in-process rig's C link can hand it a COMMAND in the same
    call), or None when the kernels run interpreted. Compiled once per process and layout, cached
    on disk like the kernel."""
    if bounds not in _C_ENTRY:
        if not load_advance_kernel(bounds)[1]:  # (which registers the kernels it inlines)
            _C_ENTRY[bounds] = None
        else:
            import numba
            from numba import types
            from numba.extending import register_jitable

            f8, i8 = types.float64, types.int64
            sig = i8(types.CPointer(f8), types.CPointer(f8), i8, i8, f8, types.uint8, f8, f8, f8, f8, i8)
            fn = _c_entry(register_jitable(_on_block(_kernel_stamp(), bounds)), max(end for _start, end in bounds),
                          bounds[0][1] - bounds[0][0])
            try:
                _C_ENTRY[bounds] = numba.cfunc(sig, cache=True)(fn).address
            except RuntimeError:  # no cache directory that can be written
                _C_ENTRY[bounds] = numba.cfunc(sig)(fn).address
    return _C_ENTRY[bounds]


def block_spans(sizes) -> tuple:
    """Where the eight kernel arrays (sizes in advance_kernel's argument order: x, par, ctl,
    imu_in, model, acc, noise, reading) stand in the block: the state vector and the reading
    first (``Cycle.state_view``, ``Cycle.reading``), then the others; ((start, end), ...) in
    argument order."""
    spans, start = [None] * len(sizes), 0
    for i in (0, 7, 1, 2, 3, 4, 5, 6):
        spans[i] = (start, start + int(sizes[i]))
        start += int(sizes[i])
    return tuple(spans)


def load_cycle_kernels() -> bool:
    """Compile (or load from numba's disk cache) every kernel a Cycle uses, for the layout every
    plant and IMU have: call it before a flight's clock starts, so a first flight in a new process
    does not count the compile as its own time. Returns whether they run compiled."""
    from harness.terrain import load_march_kernel
    from sensor_models.imu import load_read_kernel
    from sensor_models.lrf import load_flat_sample_kernel

    load_read_kernel()
    load_march_kernel()  # the height-field LRF cast (~15 ms from the disk cache)
    load_flat_sample_kernel()  # the LRF's sample over flat terrain
    spans = block_spans(Plant.kernel_array_sizes() + Imu.kernel_array_sizes())
    compiled = load_advance_kernel(spans)[1]
    if load_c_entry(spans) is not None:
        cycle_call.load()  # the cheap call into it (a compile on first use)
    return compiled


def how_advance_runs() -> str:
    """How ``Cycle.advance`` runs the compiled cycle in this process, for a benchmark's report."""
    spans = block_spans(Plant.kernel_array_sizes() + Imu.kernel_array_sizes())
    if load_c_entry(spans) is None:
        return "interpreted (NUMBA_DISABLE_JIT=1 or no numba)"
    if cycle_call.load():
        return "compiled, called through harness/cycle_call.c"
    return f"compiled, called through numba's dispatcher (no C call: {cycle_call.why_not()})"


class Cycle:
    """Advances a plant and the IMU riding on it by one flight-code cycle, ending with the IMU's
    reading of it.

    The two models' kernel arrays move into one float64 block owned by this object (each model
    keeps working on its own part of it through views: ``use_kernel_arrays``). The block starts
    with the plant's state vector (``state_view``) and the IMU's reading (``reading``, which the
    in-process rig's C link packs into SENSORS where it lies)."""

    def __init__(self, plant: Plant, imu: Imu):
        self.plant = plant
        self.imu = imu
        # the arrays in the kernel's argument order: x, par, ctl, imu_in, model, acc, noise, reading
        arrays = plant.kernel_arrays() + imu.kernel_arrays()
        x, reading = arrays[0], arrays[7]
        spans = block_spans([a.size for a in arrays])
        self.block = np.empty(spans[6][1])
        v = [self.block[s0:s1].reshape(a.shape) for a, (s0, s1) in zip(arrays, spans)]
        plant.use_kernel_arrays(*v[:4])
        imu.use_kernel_arrays(*v[4:])
        self._kernel = load_advance_kernel(spans)[0]
        self._spans = spans
        #: the plant's state vector (STATE_FIELDS; the block starts with it) as a read-only view whose
        #: items are floats: ``state_view[i]`` is the cheapest read of one value from Python (a third
        #: of ``block.item(i)``'s)
        self.state_view = memoryview(self.block).toreadonly()[:x.size]
        #: the IMU's last reading (READING_FIELDS), where the compiled cycle writes it
        self.reading = self.block[x.size:x.size + reading.size]
        self._state_size = x.size
        if self._kernel is None:  # interpreted: the arrays one by one
            def interpreted(block, history, row, *cmd, n_state=x.size):
                done = advance_kernel(*v, *cmd)
                if done == cmd[-1] and row < history.shape[0]:
                    history[row] = block[:n_state]
                return done
            self._kernel = interpreted
        #: the plant's state vector after each cycle (row k + 1 after the k-th ``advance``; row 0:
        #: when ``keep_history`` was called); rows past its end are not kept. Replaced only by
        #: ``keep_history``: the C call (``_bind_call``) writes into the array it was bound to
        self.history = np.empty((0, x.size))
        self._row = 0
        self._bind_call()

    def _bind_call(self) -> None:
        """``_call``: the compiled cycle's C entry on ``block`` and ``history`` in one cheap call
        (``harness.cycle_call``), or None: the kernels run interpreted, or the call's C cannot be
        built (``cycle_call.why_not()``) and ``advance`` calls numba's dispatcher."""
        entry = load_c_entry(self._spans)
        self._call = None if entry is None else cycle_call.bind(entry, self.block, self.history)

    @property
    def calls_c(self) -> bool:
        """Whether ``advance`` calls the compiled cycle through the cheap C call (``_bind_call``)."""
        return self._call is not None

    def keep_history(self, rows: int) -> None:
        """Keep the plant's state vector after each of the next ``rows - 1`` cycles in ``history``,
        the current one in its row 0 (a run's truth record, written by the compiled cycle itself;
        rows not reached yet hold no data)."""
        self.history = np.empty((rows, self._state_size))
        self.history[0] = self.plant.kernel_arrays()[0]
        self._row = 1
        self._bind_call()

    def c_entry(self) -> int | None:
        """The compiled cycle as a C function (``load_c_entry``), to be called with ``block``,
        ``history`` and the row ``next_row`` and followed by ``took``; None when interpreted."""
        return load_c_entry(self._spans)

    @property
    def next_row(self) -> int:
        """The history row the next cycle writes."""
        return self._row

    def took(self, done: int, act: ActuatorCommand | None, dt: float, n: int) -> bool:
        """After the C entry (``c_entry``) ran ``done`` of the n substeps of the next cycle: finish
        it as ``advance`` does (``act`` is needed only when done < n). Returns whether the lander
        has touched down."""
        row = self._row
        self._row = row + 1
        if done == n:  # the usual cycle: every substep compiled (a possible touchdown never is)
            plant = self.plant
            plant.moved()
            return plant.touchdown_state is not None
        return self._finish(row, done, act, dt, n)

    def advance(self, act: ActuatorCommand, dt: float, n: int) -> bool:
        """n plant steps of dt (s) under one command, the IMU integrating each, then the IMU's
        reading of them; stops at touchdown. Returns whether the lander has touched down."""
        plant = self.plant
        if plant.touchdown_state is not None:
            return True
        row = self._row
        self._row = row + 1
        call = self._call
        # the compiled cycle through its C entry; -2: a command of other types than floats and a
        # bool (or no C call), which numba's dispatcher converts (the same bits for the C types)
        done = -2 if call is None else call(row, act, dt, n)
        if done < 0:
            throttle, engine_on, (tx, ty, tz) = act
            try:
                done = self._kernel(self.block, self.history, row, throttle, engine_on, tx, ty, tz, dt, n)
            except TypeError:  # nor can numba take it: the models' Python methods do
                done = 0
        return self._finish(row, done, act, dt, n)

    def _finish(self, row: int, done: int, act: ActuatorCommand | None, dt: float, n: int) -> bool:
        plant = self.plant
        if done:
            plant.moved()
        if done < n:
            imu = self.imu
            for _ in range(done, n):
                plant.step(act, dt)
                imu.accumulate_from_plant(plant)
                if plant.touchdown_state is not None:
                    break
            imu.read()
            if row < self.history.shape[0]:
                self.history[row] = plant.kernel_arrays()[0]
        return plant.touchdown_state is not None


__all__ = ["Cycle", "advance_kernel", "how_advance_runs", "load_advance_kernel", "load_c_entry"]
