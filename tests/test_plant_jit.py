"""The plant's RK4 kernel runs compiled (numba) by default and interpreted with
NUMBA_DISABLE_JIT=1 or without numba: both must give the same bits, or a run would
not reproduce across machines and a debugging session would chase a different
trajectory."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest

import harness.plant as plant_mod
from harness.plant import PAR_FIELDS, rk4_kernel
from harness.rigs import open_rig
from harness.scenario_files import load_scenario

numba = pytest.importorskip("numba", reason="numba is not installed (pip install numba)")


def _bits(x):
    """Nested tuples of floats as bytes, so NaN == NaN and -0.0 != 0.0."""
    if isinstance(x, tuple):
        return b"".join(_bits(v) for v in x)
    return struct.pack("<d", x)


def _random_case(rng: np.random.Generator, diag: bool):
    """A physically plausible step: 0-20 km up, up to 1.8 km/s, any attitude, tumbling up to
    0.5 rad/s, propellant or none, throttle 0-1, RCS torques up to 200 N m, dt 1-50 ms."""
    radius = 1_737_400.0 + rng.uniform(0.0, 20e3)
    u = rng.normal(size=3)
    r = tuple(float(c) for c in radius * u / np.linalg.norm(u))
    v = tuple(float(c) for c in rng.uniform(-1800.0, 1800.0, 3))
    q = rng.normal(size=4)
    q = tuple(float(c) for c in q / np.linalg.norm(q))
    w = tuple(float(c) for c in rng.uniform(-0.5, 0.5, 3))
    p0 = float(rng.choice([0.0, rng.uniform(0.0, 400.0)]))
    r0 = float(rng.choice([0.0, rng.uniform(0.0, 20.0)]))
    thr = tuple(float(c) for c in rng.uniform(0.0, 1.0, 3))
    tau = tuple(float(c) for c in rng.uniform(-200.0, 200.0, 3))
    a = rng.uniform(0.0, 0.02)
    d = (math.sin(a), 0.0, math.cos(a))
    I = np.diag(rng.uniform(300.0, 900.0, 3))
    if not diag:
        off = rng.uniform(-30.0, 30.0, 3)
        I[0, 1] = I[1, 0] = off[0]
        I[0, 2] = I[2, 0] = off[1]
        I[1, 2] = I[2, 1] = off[2]
    Iinv = np.linalg.inv(I)
    eul = (I[1, 1] - I[2, 2], I[2, 2] - I[0, 0], I[0, 0] - I[1, 1], 1 / I[0, 0], 1 / I[1, 1], 1 / I[2, 2]) \
        if diag else (0.0,) * 6
    par = [-4.9028e12, float(rng.uniform(1000.0, 5000.0)), *d, *rng.uniform(-0.05, 0.05, 3),
           float(rng.uniform(2500.0, 3300.0)), 2150.0, *rng.uniform(0.8, 1.5, 3),
           float(rng.uniform(300.0, 700.0)), *eul, *I.ravel(), *Iinv.ravel()]
    par = [float(c) for c in par]
    assert len(par) == len(PAR_FIELDS)
    dt = float(rng.choice([0.001, 0.02, 0.05, rng.uniform(1e-4, 0.05)]))
    args = (float(rng.uniform(0.0, 600.0)), *r, *v, *q, *w, p0, r0, dt, *thr, *tau)
    return args, par, diag


def test_compiled_kernel_gives_the_interpreted_kernels_bits():
    """20,000 random steps, half with a full inertia tensor: every output float of the
    compiled kernel equals the interpreted one's, bit for bit."""
    kernel, compiled = plant_mod.load_rk4_kernel()
    if not compiled:
        pytest.skip("the kernel runs interpreted here (NUMBA_DISABLE_JIT=1)")
    rng = np.random.default_rng(20261126)
    for i in range(20_000):
        args, par, diag = _random_case(rng, diag=bool(i % 2))
        want = rk4_kernel(*args, par, diag)
        got = kernel(*args, np.array(par), diag)
        assert _bits(got) == _bits(want), f"case {i}: {args}, diag={diag}"


def _telemetry(res):
    return {k: np.asarray(v) for k, v in res.telemetry.items()}


def test_descent_compiled_and_interpreted_fly_the_same_bits(monkeypatch):
    """A whole closed-loop descent with the flight code in the loop (so any difference would
    feed back and grow): truth, commands and the flight code's telemetry are identical with
    the compiled and the interpreted kernels (plant, IMU, the composed cycle), and the default
    is the compiled one."""
    if numba.config.DISABLE_JIT:
        pytest.skip("the kernel runs interpreted here (NUMBA_DISABLE_JIT=1)")
    sc = load_scenario("nominal-terminal-descent").with_(t_max_s=40.0)
    with open_rig("loopback") as up:
        fast = up.fly(sc)
        kernel, compiled = plant_mod.load_rk4_kernel()
        assert compiled and hasattr(kernel, "py_func"), "the plant should step with the compiled kernel"
        # every kernel of the cycle interpreted: the plant's RK4 and step, the IMU's accumulate
        # and read, and the composed cycle (rebuilt from those)
        import harness.cycle as cycle_mod
        import sensor_models.imu as imu_mod

        monkeypatch.setattr(plant_mod, "_RK4", (rk4_kernel, False))
        monkeypatch.setattr(plant_mod, "_STEP", (plant_mod.step_kernel, False))
        monkeypatch.setattr(imu_mod, "_ACCUMULATE", (imu_mod.accumulate_kernel, False))
        monkeypatch.setattr(imu_mod, "_READ", (imu_mod.read_kernel, False))
        monkeypatch.setattr(cycle_mod, "_ADVANCE", {})
        slow = up.fly(sc)
        assert cycle_mod.load_advance_kernel((0,))[0] is None  # the cycle ran interpreted
    a, b = _telemetry(fast), _telemetry(slow)
    assert len(a["t_s"]) == len(b["t_s"]) > 1900
    # not a flight that did nothing: the engine braked and the lander came down
    assert a["altitude_m"][0] - a["altitude_m"][-1] > 500.0 and a["thrust_n"].max() > 1000.0
    for col in a:
        assert a[col].tobytes() == b[col].tobytes(), f"column {col} differs"


def test_thrust_change_while_flying_reaches_the_kernel():
    """A thrust-loss fault sets ``plant.thrust_max_n`` mid-flight; the kernel keeps the lander's
    constants in an array, which must follow: halving it halves the thrust acceleration of
    the next step (hovering-class burn in free space, so the change is all thrust)."""
    from harness.frames import SiteFrame
    from harness.lander import load_lander
    from harness.plant import ActuatorCommand, Plant, initial_state
    from harness.terrain import flat

    site = SiteFrame()
    lander = load_lander("reference")
    dv = []
    for scale in (1.0, 0.5):
        st = initial_state(site, lander, 100e3, propellant_kg="terminal_descent", throttle=0.8)
        p = Plant(lander, flat(site), st, gm=0.0)
        p.thrust_max_n = lander.thrust_max_n * scale
        v0 = p.state.v_mci
        p.step(ActuatorCommand(0.8, True, (0.0, 0.0, 0.0)), 0.02)
        dv.append(math.dist(p.state.v_mci, v0))
        assert p.state.thrust_n == pytest.approx(0.8 * lander.thrust_max_n * scale, rel=1e-12)
    assert dv[1] == pytest.approx(0.5 * dv[0], rel=1e-3)
    with pytest.raises(AttributeError):
        p.gm = 1.0  # fixed at construction: the kernel would not see a change


@pytest.mark.parametrize("kind", ["float32", "float64", "int"])
def test_a_command_of_numpy_scalars_is_flown_as_the_same_doubles(kind):
    """A fault hook may hand the plant numpy scalars. Every path reads the command as doubles: the
    general step (which a propellant run-out, a throttle profile or a touchdown take) must give
    the bits of the same values as Python floats, as the compiled step does; float32 arithmetic
    would round differently (numpy 2 keeps a float32 operand's type against a Python float)."""
    from harness.frames import SiteFrame
    from harness.lander import load_lander
    from harness.plant import ActuatorCommand, Plant, initial_state
    from harness.terrain import flat

    site = SiteFrame()
    lander = load_lander("reference")
    typ = {"float32": np.float32, "float64": np.float64, "int": int}[kind]
    values = (0.6, 1.5, -2.25, 0.1) if kind != "int" else (1, 2, -3, 0)
    cmd = ActuatorCommand(typ(values[0]), np.bool_(True), tuple(typ(v) for v in values[1:]))
    as_floats = ActuatorCommand(float(cmd[0]), True, tuple(float(v) for v in cmd[2]))
    states = []
    for c in (cmd, as_floats):
        st = initial_state(site, lander, 2000.0, propellant_kg="terminal_descent", throttle=0.3)
        p = Plant(lander, flat(site), st)
        for _ in range(25):
            p._step_general(c, 0.02)
        states.append(p.state)
    assert _bits(tuple(x for v in states[0] for x in (v if isinstance(v, tuple) else (v,)))) == \
        _bits(tuple(x for v in states[1] for x in (v if isinstance(v, tuple) else (v,))))
    # doubles (a Python float, or numpy's float64 when the kernel runs interpreted), no float32
    assert all(isinstance(v, float) for v in states[0] if not isinstance(v, tuple))
