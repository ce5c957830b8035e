"""Fault injection: every fault type changes what the flight code sees, triggers and durations
work, and faulted runs reproduce bit for bit.

Evidence that the flight code saw a fault: the SENSORS frames in the raw link log (what was
sent to it) differ from a fault-free run from the fault's onset on and are identical before it;
for link faults, the flight code's own receive counters in TELEMETRY, or the harness link
statistics (missed cycles, late commands).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness import faults as F
from harness import protocol as p
from harness.errors import ConfigError
from harness.link import replay_link_log
from harness.scenario_files import terminal_descent
from sensor_models.lrf import LrfReading

T_ON = 5.0      # s, onset of the fault in the short runs
T_MAX = 12.0    # s, short runs (outcome "timeout"): enough to see the effect


def short(name, *faults, **kw):
    return terminal_descent(name=name, t_max_s=T_MAX, faults=tuple(faults), **kw)


def sensors(res):
    """SENSORS frames the harness sent, as (t_s, imu dv tuple, dtheta tuple, dt_us, lrf range, flags)."""
    out = []
    for f in replay_link_log(res.artifacts / "link.log")["H>F"]:
        if f.msg_type == p.MsgType.SENSORS:
            m = f.msg
            out.append((f.t_us / 1e6, m.imu_dv_body, m.imu_dtheta_body, m.imu_dt_us, m.lrf_range, m.flags))
    return out


@pytest.fixture
def baseline(fly):
    return sensors(fly(short("baseline")))


def first_difference(a, b):
    for x, y in zip(a, b):
        if x != y:
            return x[0]
    return None


# sensor, actuator and timing faults: (fault, which SENSORS field must change) ------------------
SEEN_IN_SENSORS = {
    "lrf_no_output": F.LrfNoOutput(trigger=F.at_time(T_ON)),
    "lrf_late_acquisition": F.LrfLateAcquisition(acquire_altitude_m=1000.0, trigger=F.at_time(T_ON)),
    "lrf_dropout": F.LrfDropout(prob=0.5, burst_samples=2, trigger=F.at_time(T_ON)),
    "lrf_bias": F.LrfBias(bias_m=40.0, trigger=F.at_time(T_ON)),
    "lrf_scale": F.LrfScale(scale_error=0.05, trigger=F.at_time(T_ON)),
    "lrf_stuck": F.LrfStuck(trigger=F.at_time(T_ON)),
    "lrf_noise": F.LrfNoise(sigma_m=20.0, outlier_prob=0.2, outlier_sigma_m=300.0, trigger=F.at_time(T_ON)),
    "lrf_max_range": F.LrfMaxRange(max_range_m=1000.0, trigger=F.at_time(T_ON)),
    "imu_bias": F.ImuBias(accel_bias_mps2=(0.0, 0.0, 0.1), trigger=F.at_time(T_ON)),
    "imu_noise": F.ImuNoise(accel_noise_density=0.01, gyro_noise_density=1e-4, trigger=F.at_time(T_ON)),
    "imu_stuck_zero": F.ImuStuckZero(trigger=F.at_time(T_ON)),
    "imu_glitch": F.ImuGlitch(mode="spike", spike_dv_mps=(0.0, 0.0, 3.0), trigger=F.at_time(T_ON), duration_s=0.1),
    "thrust_scale": F.ThrustScale(scale=1.3, trigger=F.at_time(T_ON)),
    "thrust_loss": F.ThrustLoss(fraction=0.5, trigger=F.at_time(T_ON)),
    "throttle_stuck": F.ThrottleStuck(value=0.9, trigger=F.at_time(T_ON)),
    "engine_off": F.EngineOff(trigger=F.at_time(T_ON), duration_s=2.0),
    "rcs_failure": F.RcsFailure(axes="xy", scale=0.0, trigger=F.at_time(T_ON)),
    "command_delay": F.CommandDelay(cycles=3, trigger=F.at_time(T_ON)),
    "cycle_overrun": F.CycleOverrun(prob=0.3, cycles=2, trigger=F.at_time(T_ON)),
    "command_loss": F.CommandLoss(prob=0.5, trigger=F.at_time(T_ON)),
}


def test_every_fault_type_has_a_test():
    link = {"link_bit_errors", "link_drop", "link_duplicate", "link_delay", "link_jitter", "link_reorder",
            "link_outage"}
    assert set(F.FAULT_TYPES) == set(SEEN_IN_SENSORS) | link


@pytest.mark.parametrize("kind", sorted(SEEN_IN_SENSORS))
def test_fault_changes_what_the_flight_code_sees(fly, baseline, kind):
    fault = SEEN_IN_SENSORS[kind]
    res = fly(short(f"fault-{kind}", fault))
    seen = sensors(res)
    t_diff = first_difference(baseline, seen)
    assert t_diff is not None, f"{kind}: the flight code saw exactly the fault-free SENSORS\n{res.verdict()}"
    # nothing changes before the onset; sensor faults act on the onset cycle, actuator and
    # timing faults one cycle later (the IMU increment that first contains their effect);
    # random faults (overrun, loss, dropout) at their first draw that hits
    assert T_ON - 1e-6 <= t_diff <= T_ON + 0.5, (kind, t_diff)
    assert any(f"fault {kind}(" in n for n in res.notes), res.notes
    assert "active from t=5.00 s" in "\n".join(res.notes)


def test_sensor_faults_change_the_right_field(fly, baseline):
    res = fly(short("lrf-bias-field", F.LrfBias(bias_m=40.0, trigger=F.at_time(T_ON))))
    seen = sensors(res)
    onset = [(b, s) for b, s in zip(baseline, seen) if s[0] <= T_ON + 1e-6]
    assert onset[-1][1][0] == pytest.approx(T_ON)
    for b, s in onset[:-1]:
        assert b == s
    b, s = onset[-1]                       # the onset cycle: LRF range +40 m, IMU untouched
    assert b[1:4] == s[1:4] and s[5] & p.SENSORS_LRF_VALID
    assert s[4] == pytest.approx(b[4] + 40.0, abs=1e-3)
    res = fly(short("imu-zero-field", F.ImuStuckZero(accel=True, gyro=False, trigger=F.at_time(T_ON))))
    after = [s for s in sensors(res) if s[0] >= T_ON]
    assert after and all(s[1] == (0.0, 0.0, 0.0) and s[5] & p.SENSORS_IMU_VALID for s in after)
    res = fly(short("imu-invalid", F.ImuGlitch(mode="invalid", trigger=F.at_time(T_ON), duration_s=0.5)))
    flags = {round(s[0], 2): s[5] for s in sensors(res)}
    assert not flags[5.0] & p.SENSORS_IMU_VALID and not flags[5.48] & p.SENSORS_IMU_VALID
    assert flags[4.98] & p.SENSORS_IMU_VALID and flags[5.5] & p.SENSORS_IMU_VALID
    res = fly(short("imu-reset-gap", F.ImuGlitch(mode="reset_gap", trigger=F.at_time(T_ON), duration_s=0.2)))
    gap = [s for s in sensors(res) if T_ON <= s[0] < T_ON + 0.2]
    assert gap and all(s[3] == 0 and not s[5] & p.SENSORS_IMU_VALID for s in gap)


def test_engine_off_interval_is_seen_as_free_fall(fly):
    res = fly(short("engine-off", F.EngineOff(trigger=F.at_time(T_ON), duration_s=2.0)))
    tm = res.telemetry
    off = (tm["t_s"] > T_ON + 1.3) & (tm["t_s"] < T_ON + 2.0)
    assert np.all(tm["thrust_n"][off] < 1.0)            # thrust decays, engine off
    assert np.all(tm["engine_on"][off] == 1)            # while the flight code commands it on
    dv = [s[1][2] for s in sensors(res) if T_ON + 1.3 < s[0] < T_ON + 2.0]
    assert max(abs(x) for x in dv) < 1e-3                # the accelerometers see free fall


# link faults ---------------------------------------------------------------------------------
def link_run(fly, name, fault):
    return fly(short(name, fault))


@pytest.mark.rigs("loopback")
def test_link_bit_errors_reach_the_flight_codes_crc_counter(fly):
    res = link_run(fly, "link-ber", F.LinkBitErrors(ber=2e-3, direction="up", trigger=F.at_time(T_ON)))
    assert res.flight_counters["rx_crc_errors"] + res.flight_counters["rx_framing_errors"] \
        + res.flight_counters["rx_length_errors"] + res.flight_counters["rx_unknown_msgs"] > 0, res.verdict()
    assert res.link_stats["missed_cycles"] > 0           # a corrupted SENSORS is not answered
    res = link_run(fly, "link-ber-down", F.LinkBitErrors(ber=2e-3, direction="down", trigger=F.at_time(T_ON)))
    assert sum(v for k, v in res.link_counters.items() if k != "frames_ok") > 0, res.link_counters
    # the verdict says why the harness dropped frames, not only how many
    assert res.link_last_error and "the harness last dropped a frame because: " + res.link_last_error \
        in res.verdict(), res.verdict()



def test_estimate_error_is_over_the_cycles_with_an_estimate(fly):
    """Cycles before the first TELEMETRY (or all of them, if none came) have no estimate (NaN): the
    largest estimate error is over the others, and none is claimed without any."""
    import dataclasses

    res = fly(terminal_descent(name="est-err", t_max_s=2.0))
    tm = dict(res.telemetry)
    err = np.abs(tm["est_alt_m"] - tm["truth_alt_site_m"])
    worst = int(np.argmax(err))
    est = tm["est_alt_m"].copy()
    est[:worst + 1] = np.nan  # the worst cycle and all before it without TELEMETRY
    part = dataclasses.replace(res, telemetry={**tm, "est_alt_m": est})
    ee = part.max_estimate_error()
    rest = np.abs(est[worst + 1:] - tm["truth_alt_site_m"][worst + 1:])
    assert ee is not None and abs(ee["error_m"]) == rest.max() and ee["t_s"] > tm["t_s"][worst]
    assert "nan" not in part.verdict()
    none = dataclasses.replace(res, telemetry={**tm, "est_alt_m": np.full_like(est, np.nan)})
    assert none.max_estimate_error() is None and "estimate error" not in none.verdict()


@pytest.mark.rigs("loopback")
def test_link_drop_and_outage_are_missed_cycles(fly):
    base = link_run(fly, "link-none", F.LinkDrop(prob=0.0))
    res = link_run(fly, "link-drop", F.LinkDrop(prob=0.2, direction="up", message="SENSORS",
                                                 trigger=F.at_time(T_ON)))
    missed = res.link_stats["missed_cycles"]
    assert 0 < missed < res.link_stats["exchanges"]
    assert res.flight_counters["rx_frames_ok"] == base.flight_counters["rx_frames_ok"] - missed
    res = link_run(fly, "link-outage", F.LinkOutage(direction="down", trigger=F.at_time(T_ON), duration_s=0.2))
    assert res.link_stats["missed_cycles"] == 10         # 0.2 s at 50 Hz
    assert res.outcome == "timeout"                      # short outage: the run goes on


@pytest.mark.rigs("loopback")
def test_link_outage_longer_than_the_stall_limit_is_a_link_failure(fly):
    res = link_run(fly, "link-long-outage", F.LinkOutage(trigger=F.at_time(T_ON), duration_s=2.0))
    assert res.outcome == "link-failure", res.verdict()
    assert "FlightCodeStalled" in res.error, res.error


@pytest.mark.rigs("loopback")
def test_link_duplicate_frames_are_received_twice(fly):
    base = link_run(fly, "link-none", F.LinkDrop(prob=0.0))
    res = link_run(fly, "link-dup", F.LinkDuplicate(prob=0.3, direction="up", message="SENSORS",
                                                    trigger=F.at_time(T_ON)))
    extra = res.flight_counters["rx_frames_ok"] - base.flight_counters["rx_frames_ok"]
    assert extra > 0
    # the flight code ran a GNC cycle on each copy: its answers to the duplicates arrive late
    assert res.link_stats["late_commands"] > 0


@pytest.mark.rigs("loopback")
@pytest.mark.parametrize("fault", [F.LinkDelay(cycles=1, direction="up", message="SENSORS", prob=0.3),
                                   F.LinkJitter(max_cycles=2, direction="down", message="COMMAND"),
                                   F.LinkReorder(prob=0.3, direction="up", message="SENSORS")],
                         ids=lambda f: f.type_name)
def test_link_delay_jitter_reorder_make_commands_late(fly, fault):
    import dataclasses
    fault = dataclasses.replace(fault, trigger=F.at_time(T_ON))
    res = link_run(fly, f"link-{fault.type_name}", fault)
    assert res.link_stats["missed_cycles"] > 0, res.verdict()
    assert res.link_stats["late_commands"] > 0, res.verdict()
    assert res.outcome == "timeout"


# triggers, durations, chaining -------------------------------------------------------------------
def active_window(res, kind):
    line = next(n for n in res.notes if f"fault {kind}(" in n)
    return line


def test_triggers_altitude_phase_event_and_after(fly):
    res = fly(terminal_descent(name="triggers", faults=(
        F.LrfBias(id="by-alt", bias_m=1.0, trigger=F.below_altitude(2000.0), duration_s=1.0),
        F.LrfBias(id="by-phase", bias_m=1.0, trigger=F.in_phase("terminal")),
        F.LrfBias(id="by-event", bias_m=1.0, trigger=F.on_event("first_valid_lrf", delay_s=2.0), duration_s=0.5),
        F.LrfBias(id="chained", bias_m=1.0, trigger=F.after("by-alt", delay_s=3.0), duration_s=0.2),
    )))
    tm = res.telemetry
    notes = "\n".join(res.notes)
    i_alt = int(np.argmax(tm["altitude_m"] <= 2000.0))
    t_alt = tm["t_s"][i_alt]
    assert f"active from t={t_alt:.2f} s to t={t_alt + 1.0:.2f} s" in notes
    assert f"active from t={t_alt + 3.0:.2f} s to t={t_alt + 3.2:.2f} s" in notes
    i_term = int(np.argmax(tm["mode"] == p.Phase.TERMINAL))
    # the phase is known from the previous cycle's COMMAND: the fault starts one cycle later
    assert f"active from t={tm['t_s'][i_term + 1]:.2f} s," in notes
    i_lrf = int(np.argmax(tm["lrf_valid"] > 0))
    assert f"active from t={tm['t_s'][i_lrf] + 2.0:.2f} s to t={tm['t_s'][i_lrf] + 2.5:.2f} s" in notes


def test_phase_change_event():
    fs = F.FaultSet([F.EngineOff(trigger=F.on_event("phase_change"), duration_s=0.1)])
    from harness.plant import ActuatorCommand
    on = ActuatorCommand(0.5, True, (0.0, 0.0, 0.0))
    seen = []
    for k in range(20):
        t = k * 0.02
        fs.update(t, 100.0, 2 if k < 10 else 3)
        seen.append(fs.actuator(on).engine_on)
    assert seen[:10] == [True] * 10 and seen[10:15] == [False] * 5 and seen[15:] == [True] * 5


def test_fault_specs_are_not_mutated_and_can_be_flown_twice(fly):
    f = F.LrfNoise(sigma_m=20.0, outlier_prob=0.1, outlier_sigma_m=100.0, trigger=F.at_time(1.0))
    sc = short("repro", f, seed=7)
    a = fly(sc)
    b = fly(sc.with_(name="repro-2"))
    assert not hasattr(f, "fs")
    for c in ("altitude_m", "lrf_range_m", "est_alt_m", "throttle_cmd"):
        assert np.array_equal(a.telemetry[c], b.telemetry[c], equal_nan=True), c
    c = fly(sc.with_(name="repro-seed-8", seed=8))
    assert not np.array_equal(a.telemetry["lrf_range_m"], c.telemetry["lrf_range_m"], equal_nan=True)


@pytest.mark.rigs("loopback")
def test_link_faults_reproduce_bit_for_bit(fly):
    sc = short("link-repro", F.LinkBitErrors(ber=1e-3, trigger=F.at_time(T_ON)),
               F.LinkDrop(prob=0.1, trigger=F.at_time(T_ON)), seed=3)
    a, b = fly(sc), fly(sc.with_(name="link-repro-2"))
    assert a.flight_counters == b.flight_counters and a.link_counters == b.link_counters
    assert np.array_equal(a.telemetry["throttle_cmd"], b.telemetry["throttle_cmd"], equal_nan=True)


# TOML form -------------------------------------------------------------------------------------
def test_make_fault_from_toml_tables():
    f = F.make_fault({"type": "lrf_noise", "sigma_m": 5, "outlier_prob": 0.05, "outlier_sigma_m": 500,
                      "trigger": {"altitude_m": 2000, "delay_s": 1.5}, "duration_s": 10, "id": "n"})
    assert isinstance(f, F.LrfNoise) and f.sigma_m == 5.0 and f.duration_s == 10.0
    assert f.trigger == F.Trigger("altitude", 2000.0, 1.5)
    assert F.make_fault({"type": "engine_off", "trigger": {"phase": "terminal"}}).trigger.value == "terminal"
    assert F.make_fault({"type": "imu_bias", "accel_bias_mps2": [0, 0, 0.01]}).accel_bias_mps2 == (0.0, 0.0, 0.01)
    assert F.make_fault({"type": "thrust_loss", "fraction": 0.5}).scale == 0.5


@pytest.mark.parametrize("spec, words", [
    ({"type": "lrf_warp"}, ["type", "lrf_warp", "lrf_no_output", "link_drop"]),
    ({"type": "lrf_bias", "bias": 3}, ["unknown key 'bias'", "bias_m"]),
    ({"type": "link_drop", "prob": 1.5}, ["prob", "1.5", "0 <= prob <= 1"]),
    ({"type": "link_drop", "direction": "sideways"}, ["direction", "up, down, both"]),
    ({"type": "imu_glitch", "mode": "melt"}, ["mode", "invalid, spike, reset_gap"]),
    ({"type": "engine_off", "trigger": {"phase": "coasting"}}, ["phase", "braking", "terminal"]),
    ({"type": "engine_off", "trigger": {"event": "boom"}}, ["event", "first_valid_lrf", "phase_change"]),
    ({"type": "engine_off", "trigger": {"time_s": 1, "altitude_m": 2}}, ["exactly one"]),
    ({"type": "command_delay", "cycles": 1.5}, ["cycles", "integer"]),
    ({"type": "rcs_failure", "axes": "xq"}, ["axes", "x, y, z"]),
])
def test_bad_fault_tables_name_the_key_and_the_allowed_values(spec, words):
    with pytest.raises(ConfigError) as e:
        F.make_fault(spec, "file.toml: [[faults]] #1")
    msg = str(e.value)
    assert msg.startswith("file.toml")
    for w in words:
        assert w in msg, (w, msg)


def test_after_must_name_a_fault():
    with pytest.raises(ConfigError, match="names no fault"):
        F.FaultSet([F.EngineOff(trigger=F.after("nope"))])
    with pytest.raises(ConfigError, match="unique"):
        F.FaultSet([F.EngineOff(id="a"), F.EngineOff(id="a")])


def test_no_faults_is_the_identity():
    fs = F.FaultSet()
    fs.update(0.0, 100.0, 2)
    assert fs.imu("x") == "x" and fs.command(None) is None
    # an LRF reading passes through unchanged (same object), and the first valid one is noted
    reading = LrfReading(range_m=123.4, valid=True, new=True, sample_t_s=0.0)
    fs.update(1.5, 100.0, 2)
    assert fs.lrf(reading) is reading and fs.events["first_valid_lrf"] == 1.5
    invalid = LrfReading(range_m=0.0, valid=False, new=True, sample_t_s=1.0)
    assert fs.lrf(invalid) is invalid
    sentinel = object()
    assert fs.wrap_transport(sentinel) is sentinel
    assert math.isinf(F.Fault().duration_s)


# the fault set's per-cycle bookkeeping ------------------------------------------------------------
def drive(fs, n=250, dt=0.02, valid_from=150):
    """Run a fault set as the runner does for n cycles (altitude 1 m lower per cycle from 249 m,
    first valid LRF reading in cycle ``valid_from``); per fault, the cycles in which it was active
    after update() or became active in that cycle's event (counted by hand)."""
    counted = {f.name: 0 for f in fs.faults}
    for k in range(n):
        fs.update(k * dt, 249.0 - k, 2)
        before = {f.name: f.active for f in fs.faults}
        for f in fs.faults:
            counted[f.name] += f.active
        fs.lrf(LrfReading(100.0, k >= valid_from, k * dt, True))
        for f in fs.faults:
            counted[f.name] += f.active and not before[f.name]
    return counted


def test_windows_and_active_cycles_of_every_trigger_kind():
    """Each fault is active exactly over [t_on, t_on + duration) of its trigger and cycles_active
    counts those cycles, the cycle an event started it in included."""
    fs = F.FaultSet([
        F.EngineOff(id="a", trigger=F.at_time(1.0, delay_s=0.1), duration_s=0.2),
        F.EngineOff(id="b", trigger=F.after("a", delay_s=0.5), duration_s=0.3),
        F.EngineOff(id="c", trigger=F.on_event("first_valid_lrf"), duration_s=0.1),
        F.ThrustScale(id="d", scale=0.5, trigger=F.below_altitude(50.0)),
        F.EngineOff(id="e", trigger=F.at_time(2.0), duration_s=0.0),
    ])
    counted = drive(fs)
    assert counted == {"a": 10, "b": 15, "c": 5, "d": 51, "e": 0}
    assert {f.name: f.cycles_active for f in fs.faults} == counted
    starts = {name: t for t, name, what in fs.timeline if what == "start"}
    assert starts == pytest.approx({"a": 1.1, "b": 1.6, "c": 3.0, "d": 3.98})
    assert [name for _, name, what in fs.timeline if what == "end"] == ["a", "b", "c"]


def test_time_triggers_are_looked_at_only_when_a_window_can_open_or_close(monkeypatch):
    """Faults on time and ``after`` triggers are evaluated in the cycles their trigger fires or
    their window opens or closes (and the first), not in every one of the 250 cycles; settled
    faults leave the hooks (an engine-off that has ended no longer sees the commands)."""
    fs = F.FaultSet([F.EngineOff(id="a", trigger=F.at_time(1.0, delay_s=0.1), duration_s=0.2),
                     F.EngineOff(id="b", trigger=F.after("a", delay_s=0.5), duration_s=0.3)])
    looked = []
    evaluate = F.Fault._evaluate
    monkeypatch.setattr(F.Fault, "_evaluate", lambda self, t, *a: looked.append(t) or evaluate(self, t, *a))
    drive(fs, valid_from=10 ** 6)
    cycles = sorted({round(t / 0.02) for t in looked})
    assert cycles == [0, 50, 55, 65, 80, 95]   # start, a fires, a opens (b fires), a closes, b opens, b closes
    assert fs._actuator == [] and fs.cycle == 249


def test_lrf_late_acquisition_lets_readings_through_once_acquired():
    """Before the true height reaches acquire_altitude_m every valid reading is lost (a held
    reading's lost copy is the same object each cycle); from then on the reading passes
    unchanged and the fault no longer counts effects."""
    fs = F.FaultSet([F.LrfLateAcquisition(acquire_altitude_m=100.0)])
    held = LrfReading(123.0, True, 0.0, True)
    fs.update(0.0, 150.0, 2)
    lost = fs.lrf(held)
    assert (lost.range_m, lost.valid, lost.sample_t_s, lost.new) == (0.0, False, 0.0, True)
    fs.update(0.02, 140.0, 2)
    assert fs.lrf(held) is lost
    other = LrfReading(120.0, True, 0.02, False)
    assert fs.lrf(other) == LrfReading(0.0, False, 0.02, False)
    fs.update(0.04, 100.0, 2)
    assert fs.lrf(held) is held and fs.lrf(other) is other
    assert fs.faults[0].effects == 3 and fs._lrf == []


def test_thrust_scale_sets_the_plant_thrust_when_it_changes():
    """The plant keeps the thrust it was given: set when the window opens and closes, not per cycle."""
    class Plant:
        lander = type("L", (), {"thrust_max_n": 4000.0})
        sets = []
        thrust_max_n = property(lambda self: self.sets[-1], lambda self, v: self.sets.append(v))
    plant = Plant()
    fs = F.FaultSet([F.ThrustLoss(fraction=0.25, trigger=F.at_time(0.1), duration_s=0.1)])
    for k in range(20):
        fs.update(k * 0.02, 100.0, 2)
        fs.plant_effects(plant)
    assert plant.sets == [4000.0, 3000.0, 4000.0]
    assert fs.faults[0].effects == 5


def test_cycle_overrun_releases_a_held_command_after_its_window():
    """A COMMAND held back by an overrun in the window's last cycle still reaches the plant
    ``cycles`` later, after the window has closed (the fault keeps its hook: not spent)."""
    fs = F.FaultSet([F.CycleOverrun(prob=1.0, cycles=3, trigger=F.at_time(0.0), duration_s=0.02)])
    out = []
    for k, answer in enumerate("abcdef"):
        fs.update(k * 0.02, 100.0, 2)
        out.append(fs.command(answer))
    assert out == [None, None, None, "a", "e", "f"]


def test_after_chain_on_a_fault_started_by_the_first_valid_lrf():
    """A fault started by the first valid LRF reading (no delay) starts the faults waiting
    ``after`` it in the same cycle (the event's evaluation notes its start like a cycle's)."""
    fs = F.FaultSet([F.LrfBias(id="a", trigger=F.on_event("first_valid_lrf")),
                     F.EngineOff(id="b", trigger=F.after("a", delay_s=0.1), duration_s=0.1)])
    counted = drive(fs, n=30, valid_from=10)
    assert fs.events == {"first_valid_lrf": 0.2, "fault:a": 0.2, "fault:b": pytest.approx(0.3)}
    assert counted == {"a": 20, "b": 5} == {f.name: f.cycles_active for f in fs.faults}
