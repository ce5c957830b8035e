"""The compiled cycle (plant step kernel + IMU accumulate kernel, harness/cycle.py) must give the
same bits as the models' general Python paths, step by step and over whole flights: it is an
accelerator of one design, not a second model. A change of arithmetic order in either kernel, a
clamp that differs for NaN, a stale cache (inertia, lag decay, clock) or a noise draw taken at
another moment fails these tests."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest

import harness.cycle as cycle_mod
import harness.cycle_call as cycle_call
from harness.cycle import Cycle, load_cycle_kernels
from harness.frames import SiteFrame
from harness.lander import load_lander
from harness.plant import STEP_NEEDS_GENERAL, ActuatorCommand, Plant, initial_state
from harness.rigs import open_rig
from harness.scenario_files import load_scenario
from harness.terrain import crater, flat
from sensor_models.imu import Imu, ImuConfig


def _bits(values) -> bytes:
    return b"".join(struct.pack("<d", float(v)) for v in values)


def _state_bits(plant: Plant) -> bytes:
    s = plant.state
    return _bits((s.t_s, *s.r_mci, *s.v_mci, *s.q_mci_body, *s.w_body, s.mass_kg, s.propellant_kg,
                  s.rcs_propellant_kg, s.thrust_n, s.throttle, *s.torque_body))


def _imu_in_bits(plant: Plant) -> bytes:
    f, w, dt = plant.imu_inputs()
    return _bits((*f, *w, dt))


def _random_command(rng: np.random.Generator) -> ActuatorCommand:
    """Throttles inside and outside the limits (NaN, inf, negative), valve open or shut,
    torques inside and beyond the RCS limits (NaN, inf)."""
    thr = float(rng.choice([rng.uniform(0.0, 1.0), rng.uniform(-1.0, 2.0), math.nan, math.inf, 0.0,
                            rng.uniform(0.0, 1.0)]))
    tq = [float(rng.choice([rng.uniform(-50.0, 50.0), rng.uniform(-900.0, 900.0), math.nan, -math.inf, 0.0]))
          for _ in range(3)]
    return ActuatorCommand(thr, bool(rng.random() < 0.85), tuple(tq))


def _plant_pair(seed: int, terrain_kind: str, altitude_m: float, propellant_kg: float):
    lander = load_lander("reference")
    site = SiteFrame()
    terrain = flat(site) if terrain_kind == "flat" else crater(site, radius_m=300.0, depth_m=40.0)
    rng = np.random.default_rng(seed)
    s0 = initial_state(site, lander, altitude_m=altitude_m, v_east=float(rng.uniform(-20, 20)),
                       v_up=float(rng.uniform(-40, 0)), tilt_rad=float(rng.uniform(0, 0.3)),
                       w_body=tuple(rng.uniform(-0.05, 0.05, 3)), propellant_kg=propellant_kg)
    return Plant(lander, terrain, s0), Plant(lander, terrain, s0), rng


@pytest.mark.parametrize("seed,terrain_kind,altitude_m,propellant_kg", [
    (1, "flat", 3000.0, 300.0),     # long powered flight: lag, inertia refreshes, clamps
    (2, "flat", 150.0, 300.0),      # ends in touchdown (general path at contact)
    (3, "crater", 400.0, 300.0),    # rough terrain: every step near it takes the general path
    (4, "flat", 2000.0, 0.6),       # propellant runs out inside a step: flame-out
])
def test_step_kernel_gives_the_general_steps_bits(seed, terrain_kind, altitude_m, propellant_kg):
    fast, general, rng = _plant_pair(seed, terrain_kind, altitude_m, propellant_kg)
    taken = []
    kernel = fast._substep
    fast._substep = lambda *a: taken.append(kernel(*a)) or taken[-1]
    for i in range(1500):
        cmd = _random_command(rng) if i % 7 else ActuatorCommand(0.9, True, (0.0, 0.0, 0.0))
        dt = 0.02 if i % 50 else 0.005  # a change of step size restarts the clock
        fast.step(cmd, dt)
        general._step_general(cmd, dt)
        assert _state_bits(fast) == _state_bits(general), f"state differs after step {i}"
        assert _imu_in_bits(fast) == _imu_in_bits(general), f"IMU inputs differ after step {i}"
        assert fast.flameout == general.flameout
        assert (fast.touchdown_state is None) == (general.touchdown_state is None)
        if fast.touched_down:
            break
    assert taken.count(0) > 0  # the kernel took steps (not everything went the general way)


def test_the_kernel_takes_the_usual_step_and_hands_the_rest_to_the_general_path():
    """The split itself: a lag step high above flat ground is the kernel's; the step in which the
    lander may reach the ground is the general path's (the kernel refuses it unchanged)."""
    high, _, _ = _plant_pair(5, "flat", 3000.0, 300.0)
    x, par, ctl, imu_in = high.kernel_arrays()
    for _ in range(30):  # slew from 0 until the throttle follows a pure lag; sets the caches
        high.step(ActuatorCommand(0.5, True, (0.0, 0.0, 0.0)), 0.02)
    before = x.copy()
    assert high._substep(x, par, ctl, imu_in, 0.5, True, 0.0, 0.0, 0.0, 0.02) == 0
    assert not np.array_equal(x, before)
    low, _, _ = _plant_pair(5, "flat", 0.05, 300.0)
    low.step(ActuatorCommand(0.0, False, (0.0, 0.0, 0.0)), 0.005)
    x, par, ctl, imu_in = low.kernel_arrays()
    before = x.copy()
    assert low._substep(x, par, ctl, imu_in, 0.0, False, 0.0, 0.0, 0.0, 0.005) == STEP_NEEDS_GENERAL
    assert np.array_equal(x, before)


def test_a_compiled_cycle_equals_the_python_substeps_with_noise_refills():
    """Three substeps per cycle with a noisy, quantising IMU: the noise block (256 rows) is used
    up and drawn again inside cycles; the plant, and the reading the cycle ends with, match the
    per-substep Python path and a read at the end."""
    fast, ref, rng = _plant_pair(6, "flat", 3000.0, 300.0)
    cfg = ImuConfig.tactical_grade().replace(position_body_m=(0.3, -0.2, 0.5), dv_lsb_mps=1e-3,
                                              dtheta_lsb_rad=2e-5)
    imu_fast, imu_ref = Imu(cfg, np.random.default_rng(9)), Imu(cfg, np.random.default_rng(9))
    cycle = Cycle(fast, imu_fast)
    for k in range(400):
        cmd = _random_command(rng)
        cycle.advance(cmd, 0.02 / 3, 3)
        for _ in range(3):
            ref.step(cmd, 0.02 / 3)
            imu_ref.accumulate_from_plant(ref)
            if ref.touched_down:
                break
        assert _state_bits(fast) == _state_bits(ref), f"cycle {k}"
        a, b = imu_fast.reading(), imu_ref.read()
        assert _bits((*a.dv_body, *a.dtheta_body, a.dt_s, *a.dv_accum_body, *a.dtheta_accum_body)) == \
            _bits((*b.dv_body, *b.dtheta_body, b.dt_s, *b.dv_accum_body, *b.dtheta_accum_body)), f"cycle {k}"
        if fast.touched_down:
            break
    assert k > 300


def test_a_whole_flight_is_the_same_to_the_bit_without_the_compiled_cycle(monkeypatch):
    """A noisy descent with an LRF fault and a thrust fault, flown once with the compiled cycle
    and once with every step on the general Python path: every telemetry column identical."""
    sc = load_scenario("ispace-m2").with_(t_max_s=60.0)
    with open_rig("loopback") as rig:
        fast = rig.fly(sc)
        monkeypatch.setattr(cycle_mod, "load_advance_kernel", lambda bounds: (lambda *a: 0, True))
        monkeypatch.setattr(cycle_mod, "load_c_entry", lambda bounds: None)
        monkeypatch.setattr(Cycle, "c_entry", lambda self: None)
        monkeypatch.setattr(Plant, "step", Plant._step_general)
        slow = rig.fly(sc)
    assert fast.link_stats["exchanges"] > 1000
    for name, col in fast.telemetry.items():
        assert col.tobytes() == slow.telemetry[name].tobytes(), name
    assert repr(fast.touchdown) == repr(slow.touchdown)


@pytest.mark.parametrize("name", ["nominal-terminal-descent", "hakuto-r-m1"])
def test_the_c_link_hands_the_command_to_the_same_compiled_cycle(monkeypatch, name):
    """On the loopback rig without fault hooks between COMMAND and plant, the C link hands each
    regular COMMAND to the compiled cycle's C entry in the same call (Cycle.took finishes the
    cycle; a noise refill or a general step inside a cycle goes back to Python): the flight is
    the same to the bit as with every cycle advanced from Python (Cycle.advance)."""
    if not load_cycle_kernels():
        pytest.skip("numba is not installed or NUMBA_DISABLE_JIT=1: no compiled cycle for the C link to call")
    sc = load_scenario(name)
    calls = {"took": 0, "short": 0, "advance": 0}
    took, advance = Cycle.took, Cycle.advance

    def counted_took(self, done, act, dt, n):
        calls["took"] += 1
        calls["short"] += done < n
        return took(self, done, act, dt, n)

    def counted_advance(self, act, dt, n):
        calls["advance"] += 1
        return advance(self, act, dt, n)

    monkeypatch.setattr(Cycle, "took", counted_took)
    monkeypatch.setattr(Cycle, "advance", counted_advance)
    with open_rig("loopback") as rig:
        fast = rig.fly(sc)
        assert calls["took"] >= fast.link_stats["exchanges"] - 2 and calls["advance"] <= 1
        assert calls["short"] >= 1  # the noise block ran out inside a cycle: finished in Python
        monkeypatch.setattr(Cycle, "c_entry", lambda self: None)
        slow = rig.fly(sc)
    assert fast.link_stats["exchanges"] == slow.link_stats["exchanges"] > 1000
    for name_, col in fast.telemetry.items():
        assert col.tobytes() == slow.telemetry[name_].tobytes(), name_
    assert repr(fast.touchdown) == repr(slow.touchdown)


def test_the_cycle_kernels_cache_key_follows_the_code_it_inlines(monkeypatch):
    """numba keys its disk cache by the compiled function's own file: the cycle carries a stamp of
    every kernel it inlines, so an edit of the IMU's or the plant's kernel compiles it anew
    instead of loading a stale one (found when a changed imu.py still flew the old arithmetic)."""
    before = cycle_mod._kernel_stamp()
    assert before == cycle_mod._kernel_stamp()

    def accumulate_kernel(model, acc, noise, fx, fy, fz, wx, wy, wz, dt):  # an edited kernel
        acc[0] = acc[0] + fx * dt
        return 0

    monkeypatch.setattr(cycle_mod, "accumulate_kernel", accumulate_kernel)
    assert cycle_mod._kernel_stamp() != before


def test_the_imu_read_kernel_rounds_as_python_does_compiled_or_not():
    """Quantisation rounds half to even (Python's round): the compiled read kernel must give the
    interpreted one's bits, ties included, for the increments, residuals and running sums."""
    from sensor_models.imu import MODEL_FIELDS, READING_FIELDS, load_read_kernel, read_kernel

    compiled, is_compiled = load_read_kernel()
    if not is_compiled:
        pytest.skip("numba is not installed or NUMBA_DISABLE_JIT=1: nothing compiled to compare")
    rng = np.random.default_rng(11)
    model = np.zeros(len(MODEL_FIELDS))
    model[MODEL_FIELDS.index("dt_min_s")] = 0.0025
    model[MODEL_FIELDS.index("dv_lsb_mps")] = 0.5
    model[MODEL_FIELDS.index("dtheta_lsb_rad")] = 0.25
    out_py, out_c = np.zeros(len(READING_FIELDS)), np.zeros(len(READING_FIELDS))
    for k in range(2000):
        # ties (x / lsb exactly k + 0.5) every other read, random values between
        inc = (rng.integers(-9, 9, 6) + 0.5) * np.array([0.5] * 3 + [0.25] * 3) if k % 2 else rng.normal(0, 3, 6)
        acc = np.array([*inc, 0.02])
        acc_c = acc.copy()
        read_kernel(model, acc, out_py)
        compiled(model, acc_c, out_c)
        assert out_py.tobytes() == out_c.tobytes(), k
        assert not acc.any() and not acc_c.any()


def test_the_kernels_loaded_before_a_flight_are_the_layout_every_cycle_uses():
    """``load_cycle_kernels`` (called before a flight's clock starts) compiles the layout a Cycle
    of any plant and IMU has, so no first flight pays numba's compile inside its own time."""
    plant, _, _ = _plant_pair(7, "flat", 3000.0, 300.0)
    imu = Imu(ImuConfig.navigation_grade(), np.random.default_rng(1))
    sizes = [a.size for a in plant.kernel_arrays() + imu.kernel_arrays()]
    assert tuple(sizes) == Plant.kernel_array_sizes() + Imu.kernel_array_sizes()
    cycle_mod.load_cycle_kernels()
    assert cycle_mod.block_spans(sizes) in cycle_mod._ADVANCE


def _cycle_for(seed: int):
    plant, _, rng = _plant_pair(seed, "flat", 3000.0, 300.0)
    cfg = ImuConfig.tactical_grade().replace(dv_lsb_mps=1e-3, dtheta_lsb_rad=2e-5)
    cycle = Cycle(plant, Imu(cfg, np.random.default_rng(seed)))
    cycle.keep_history(600)
    return cycle, rng


def _needs_the_c_call():
    if not cycle_mod.load_cycle_kernels():
        pytest.skip("numba is not installed or NUMBA_DISABLE_JIT=1: no compiled cycle to call")
    if not cycle_call.load():
        pytest.skip(f"the cycle's C call cannot be built here: {cycle_call.why_not()}")


def test_a_faulted_descent_has_the_same_bits_through_the_c_call_as_through_numbas_dispatcher(monkeypatch):
    """An IMU glitch then an engine-off (Beresheet): the fault hooks keep the C link from flying
    the COMMAND, so every cycle goes through Cycle.advance. Flown with the cycle's C call
    (harness/cycle_call.c) and with numba's dispatcher: the block and the truth record the
    compiled cycle wrote are the same to the bit, and so is every telemetry column."""
    _needs_the_c_call()
    sc = load_scenario("beresheet").with_(t_max_s=60.0)
    cycles, c_calls = [], []
    bind_call = Cycle._bind_call

    def counted_bind_call(self):  # every Cycle flown, its C call counting the cycles it flew
        bind_call(self)
        cycles.append(self)
        call = self._call
        if call is not None:
            def counted(row, act, dt, n):
                done = call(row, act, dt, n)
                c_calls.append(done >= 0)
                return done
            self._call = counted

    monkeypatch.setattr(Cycle, "_bind_call", counted_bind_call)
    with open_rig("loopback") as rig:
        fast = rig.fly(sc)
        fast_cycle = cycles[-1]
        assert sum(c_calls) >= fast.link_stats["exchanges"] - 2 > 1000  # every cycle through the C call
        monkeypatch.setattr(cycle_call, "bind", lambda *args: None)
        n_c_calls = len(c_calls)
        slow = rig.fly(sc)
        slow_cycle = cycles[-1]
    assert len(c_calls) == n_c_calls and slow_cycle is not fast_cycle and not slow_cycle.calls_c
    assert any(note.startswith("fault imu_glitch") and "25 effects" in note for note in fast.notes)
    assert fast_cycle.next_row == slow_cycle.next_row > 1000
    rows = fast_cycle.next_row
    assert fast_cycle.block.tobytes() == slow_cycle.block.tobytes()
    assert fast_cycle.history[:rows].tobytes() == slow_cycle.history[:rows].tobytes()
    for name, col in fast.telemetry.items():
        assert col.tobytes() == slow.telemetry[name].tobytes(), name
    assert repr(fast.touchdown) == repr(slow.touchdown)


def test_without_a_compiler_the_cycle_goes_through_numbas_dispatcher_with_the_same_bits(monkeypatch, tmp_path):
    """The C call is built on first use; when it cannot be (here: no compiler, an empty build
    cache), a Cycle says so and calls numba's dispatcher, with the bits of the C call over
    commands of every kind (NaN and infinite values, out-of-range throttles and torques)."""
    _needs_the_c_call()
    with_c, rng = _cycle_for(21)
    assert with_c.calls_c
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("FSIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cycle_call, "_module", None)
    monkeypatch.setattr(cycle_call, "_why_not", None)
    without, _ = _cycle_for(21)
    assert not without.calls_c
    assert not cycle_call.load() and "no-such-cc" in cycle_call.why_not()
    for k in range(500):
        cmd = _random_command(rng)
        assert with_c.advance(cmd, 0.02 / 3, 3) == without.advance(cmd, 0.02 / 3, 3)
        assert with_c.block.tobytes() == without.block.tobytes(), f"cycle {k}"
        if with_c.plant.touched_down:
            break
    assert k > 300
    assert with_c.history[:k + 2].tobytes() == without.history[:k + 2].tobytes()


# (a float32 command reaching the plant's Python step casts an infinite value: numpy warns)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_commands_of_other_types_go_to_numbas_dispatcher_as_before():
    """The C call takes exactly floats, a bool and tuples (ActuatorCommand's plain types, which it
    converts as numba does: a float's double, the bool's truth); a numpy scalar, an int or a list
    goes to numba's dispatcher as before the C call existed: the call answers -2 without flying
    or writing anything, and the cycle is the same to the bit as one without the C call."""
    _needs_the_c_call()
    with_c, rng = _cycle_for(5)
    without, _ = _cycle_for(5)
    without._call = None
    kinds = (
        lambda t, e, q: (np.float32(t), e, q),
        lambda t, e, q: (np.float64(t), np.bool_(e), q),
        lambda t, e, q: (t, int(e), list(q)),
        lambda t, e, q: (t, e, (q[0], np.float32(q[1]), q[2])),
        lambda t, e, q: (int(t * 4) if math.isfinite(t) else 1, e, q),
        lambda t, e, q: (t, e, q),  # the plain types: through the C call
    )
    call, c_calls = with_c._call, []
    with_c._call = lambda *args: c_calls.append(call(*args)) or c_calls[-1]
    for k in range(400):
        cmd = _random_command(rng)
        odd_cmd = ActuatorCommand(*kinds[k % len(kinds)](*cmd))
        if k % len(kinds) != len(kinds) - 1:
            before = with_c.block.tobytes(), with_c.history.tobytes()
            assert call(with_c.next_row, odd_cmd, 0.005, 4) == -2, odd_cmd
            assert (with_c.block.tobytes(), with_c.history.tobytes()) == before
        assert with_c.advance(odd_cmd, 0.005, 4) == without.advance(odd_cmd, 0.005, 4)
        assert with_c.block.tobytes() == without.block.tobytes(), f"cycle {k}: {odd_cmd}"
        if with_c.plant.touched_down:
            break
    c_calls = sum(done >= 0 for done in c_calls)
    assert k > 300 and c_calls > 50
    assert with_c.history[:k + 2].tobytes() == without.history[:k + 2].tobytes()
