"""The historical scenarios of the library, each flown with the reference flight code twice:
as flown (the flawed policy), where the harness must report the failure with the right
diagnosis, and with the fix (variant `fixed`), where it must land (and the fix's own numbers
are checked).

Scenario files: harness/data/scenarios/*.toml (each records its numbers and their sources).
"""
from __future__ import annotations

import numpy as np
import pytest

from harness import faults as F
from harness import protocol as p
from harness.analysis import stopping_distance
from harness.scenario_files import historical_scenarios, load_scenario, variants
from harness.scenario import FIXED


def fly_variant(fly, name, variant):
    sc = load_scenario(name, variant)
    res = fly(sc)
    assert res.outcome in sc.expect, f"{sc.name}: expected {sc.expect}\n{res.verdict()}"
    # the file's own pass criteria agree: a pass exactly when the expectation is a landing
    assert sc.passed(res) == ("landed" in sc.expect), sc.pass_criteria.check(res)
    return res


def assert_diagnosis_in_verdict(res):
    """The verdict states the numbers the diagnosis methods return."""
    text = res.verdict()
    ig = res.lrf_ignored()
    if ig:
        assert f"LRF valid but rejected by the flight code from t={ig['from_t_s']:.2f} s" in text
    ee = res.max_estimate_error()
    assert f"largest altitude-estimate error {ee['error_m']:+.0f} m at t={ee['t_s']:.2f} s" in text
    pnr = res.point_of_no_return()
    if pnr:
        assert f"point of no return at t={pnr['t_s']:.2f} s" in text
    return text


def test_every_historical_file_has_as_flown_and_fixed_variants():
    files = historical_scenarios()
    assert len(files) == 8
    for f in files:
        assert {"as_flown", "fixed"} <= set(variants(f)), f
        sc = load_scenario(f)
        assert sc.mission and sc.description
        text = f.read_text()
        assert text.lstrip().startswith("#") and "Facts" in text and "Encoded here" in text, f


# HAKUTO-R M1 -----------------------------------------------------------------------------------
def test_hakuto_r_m1_as_flown_latches_the_lrf_out_at_the_rim_and_crashes(fly):
    res = fly_variant(fly, "hakuto-r-m1", "as_flown")
    tm = res.telemetry
    ig = res.lrf_ignored()
    # the LRF saw the rim (a ~3 km range jump) and the flight code ignored it from then on
    i = int(np.searchsorted(tm["t_s"], ig["from_t_s"]))
    assert tm["lrf_range_m"][i] - tm["lrf_range_m"][i - 5] > 2500.0
    assert tm["lrf_status"][i] == p.LrfStatus.LATCHED_OUT
    assert ig["to_t_s"] >= res.touchdown.t_s - 0.1        # ignored to the end
    # the estimate reached the ground while the true height above the crater floor was ~3 km
    j = int(np.argmax(tm["est_alt_m"] < 50.0))
    assert tm["altitude_m"][j] > 2500.0, (tm["t_s"][j], tm["altitude_m"][j])
    pnr = res.point_of_no_return()
    assert pnr and tm["t_s"][j] < pnr["t_s"] < res.touchdown.t_s
    assert res.touchdown.v_vertical > 50.0                 # M1: derived ~127 m/s
    assert_diagnosis_in_verdict(res)


def test_hakuto_r_m1_fixed_readmits_the_lrf_and_lands(fly):
    res = fly_variant(fly, "hakuto-r-m1", "fixed")
    ig = res.lrf_ignored()
    assert ig and ig["to_t_s"] - ig["from_t_s"] < 15.0     # re-admitted within seconds
    tm = res.telemetry
    low = tm["altitude_m"] < 100.0
    assert np.max(np.abs(tm["est_alt_m"][low] - tm["truth_alt_site_m"][low])) < 5.0


# ispace M2 -------------------------------------------------------------------------------------
def test_ispace_m2_as_flown_first_fix_below_900_m_is_rejected_and_it_crashes(fly):
    res = fly_variant(fly, "ispace-m2", "as_flown")
    fv = res.first_valid_lrf()
    assert fv["altitude_m"] <= 900.0 and fv["v_down_mps"] > 44.0   # M2: 66 m/s at < 900 m (plan 44)
    ig = res.lrf_ignored()
    assert ig and ig["from_t_s"] - fv["t_s"] < 0.2            # the late fix jumps 1,100 m: latched out
    pnr = res.point_of_no_return()
    assert pnr and fv["t_s"] < pnr["t_s"] < res.touchdown.t_s
    # at the point of no return, full thrust cannot stop within the height left
    tm = res.telemetry
    i = int(np.searchsorted(tm["t_s"], pnr["t_s"]))
    a_net = res.thrust_max_n / tm["mass_kg"][i] - tm["gravity_mps2"][i]
    assert stopping_distance(-tm["v_up_mps"][i], a_net) > tm["altitude_m"][i]
    assert res.max_estimate_error()["error_m"] > 1000.0
    assert_diagnosis_in_verdict(res)


def test_ispace_m2_fixed_contingency_brakes_harder_and_lands(fly):
    res = fly_variant(fly, "ispace-m2", "fixed")
    tm = res.telemetry
    assert np.any(tm["mode"] == p.Phase.CONTINGENCY)
    i = int(np.argmax(tm["mode"] == p.Phase.CONTINGENCY))
    assert tm["altitude_m"][i] > 900.0                          # switched before the late fix came


# IM-1 --------------------------------------------------------------------------------------------
def test_im1_as_flown_no_lrf_estimate_100_m_high_exceeds_the_envelope(fly):
    res = fly_variant(fly, "im1", "as_flown")
    assert res.first_valid_lrf() is None
    env, td = res.scenario.envelope, res.touchdown
    exceeded = [k for k, v, lim in (("vertical", td.v_vertical, env.v_vertical_max),
                                    ("horizontal", td.v_horizontal, env.v_horizontal_max),
                                    ("tilt", td.tilt_deg, env.tilt_max_deg)) if v > lim]
    assert exceeded, res.verdict()                               # IM-1: ~3 m/s down, 1 - 2 m/s sideways
    ee = res.max_estimate_error()
    assert 90.0 < ee["error_m"] < 110.0                          # IM-1: ~100 m high
    assert "first valid LRF sample: never" in assert_diagnosis_in_verdict(res)


def test_im1_fixed_contingency_margin_must_cover_the_estimate_error(fly):
    res = fly_variant(fly, "im1", "fixed")
    assert res.touchdown.v_vertical <= 2.0
    # the same contingency with the default 50 m margin (< the 100 m estimate error) still
    # arrives at the surface too fast: the margin, not the mode switch, is the fix
    sc = load_scenario("im1", "fixed")
    small = fly(sc.with_(name="im1-fixed-margin-50", flight_params={"CONT_H_MARGIN": 50.0}))
    assert small.outcome in ("crashed", "hard-landing"), small.verdict()


# IM-2 --------------------------------------------------------------------------------------------
def test_im2_as_flown_one_outlier_latches_the_lrf_out_and_it_crashes(fly):
    res = fly_variant(fly, "im2", "as_flown")
    tm = res.telemetry
    ig = res.lrf_ignored()
    assert ig and ig["from_t_s"] < 10.0 and ig["to_t_s"] >= res.touchdown.t_s - 0.2
    assert np.all(tm["lrf_status"][tm["t_s"] > ig["from_t_s"] + 0.1] == p.LrfStatus.LATCHED_OUT)
    # navigation on the tactical-grade IMU alone drifts: tens of metres off at the surface
    err = tm["est_alt_m"][-1] - tm["truth_alt_site_m"][-1]
    assert abs(err) > 10.0, err
    assert_diagnosis_in_verdict(res)


def test_im2_fixed_rejects_outliers_one_by_one_and_lands(fly):
    res = fly_variant(fly, "im2", "fixed")
    tm = res.telemetry
    new = (tm["lrf_new"] > 0) & (tm["lrf_valid"] > 0)
    rejected = np.sum(new & (tm["lrf_status"] == p.LrfStatus.REJECTED))
    accepted = np.sum(new & (tm["lrf_status"] == p.LrfStatus.ACCEPTED))
    assert 0 < rejected < 0.2 * accepted                       # ~5 % outliers are rejected, the rest used
    assert not np.any(tm["lrf_status"] == p.LrfStatus.LATCHED_OUT)


# Beresheet ---------------------------------------------------------------------------------------
def engine_off_window(res):
    line = next(n for n in res.notes if n.startswith("fault engine_off("))
    t_on = float(line.split("active from t=")[1].split(" s")[0])
    t_off = float(line.split(" to t=")[1].split(" s")[0])
    return t_on, t_off


def test_beresheet_as_flown_crosses_the_point_of_no_return_with_the_engine_off(fly):
    res = fly_variant(fly, "beresheet", "as_flown")
    t_on, t_off = engine_off_window(res)
    pnr = res.point_of_no_return()
    assert pnr and t_on < pnr["t_s"] < t_off, (t_on, pnr, t_off)
    tm = res.telemetry
    off = (tm["t_s"] > t_on + 2.0) & (tm["t_s"] < t_off)
    assert np.all(tm["thrust_n"][off] < 1.0) and np.all(tm["engine_on"][off] == 1)
    assert_diagnosis_in_verdict(res)


def test_beresheet_fixed_rides_through_the_glitch_and_lands(fly):
    res = fly_variant(fly, "beresheet", "fixed")
    assert any("imu_glitch" in n and "active from" in n for n in res.notes)


def test_beresheet_no_software_fix_once_the_engine_is_off_past_the_point_of_no_return(fly):
    """With the best configuration, a restart before the point of no return lands and one after
    it crashes: once off past it no flight software can recover; the fix is not to reset."""
    sc = load_scenario("beresheet", "as_flown").with_(flight_params=FIXED)
    glitch = sc.faults[0]
    late = fly(sc.with_(name="beresheet-best-config-off-20s"))
    pnr = late.point_of_no_return()
    t_on, t_off = engine_off_window(late)
    assert late.outcome == "crashed" and pnr["t_s"] < t_off
    early = fly(sc.with_(name="beresheet-best-config-off-16s", faults=(
        glitch, F.EngineOff(id="reset-engine-off", trigger=F.after("imu-glitch", 1.0), duration_s=16.0))))
    assert early.outcome == "landed", early.verdict()
    assert t_on + 16.0 < pnr["t_s"]


# Chandrayaan-2 -----------------------------------------------------------------------------------
def engine_off_intervals(tm, dt=0.02):
    """(index of the cut, seconds off) of every engine-off interval before touchdown."""
    on = tm["engine_on"] > 0
    out = []
    for i in np.flatnonzero(np.diff(on.astype(int)) == -1) + 1:
        if tm["mode"][i] == p.Phase.TOUCHDOWN:
            continue
        j = i
        while j < len(on) and not on[j]:
            j += 1
        out.append((int(i), (j - i) * dt))
    return out


def test_chandrayaan2_as_flown_over_thrust_stops_the_descent(fly):
    res = fly_variant(fly, "chandrayaan2", "as_flown")
    tm = res.telemetry
    lander_min_thrust = 0.2 * res.thrust_max_n * 1.3         # throttle_min x thrust_max x scale
    i_min = int(np.argmin(tm["altitude_m"]))
    assert 20.0 < tm["altitude_m"][i_min] < 60.0             # the descent stops short of the ground
    assert tm["altitude_m"][-1] > tm["altitude_m"][i_min] + 10.0   # and reverses
    end = tm["t_s"] > tm["t_s"][-1] - 20.0
    assert np.all(tm["throttle_cmd"][end] <= 0.2 + 1e-6)     # commanding the minimum throttle
    weight = tm["mass_kg"][-1] * tm["gravity_mps2"][-1]
    assert lander_min_thrust > weight, (lander_min_thrust, weight)   # 1,040 N > ~1,000 N


def test_chandrayaan2_fixed_estimates_the_thrust_scale_pulses_the_engine_and_lands(fly):
    res = fly_variant(fly, "chandrayaan2", "fixed")
    tm, td = res.telemetry, res.touchdown
    assert td.v_vertical <= 2.0 and td.v_horizontal <= 0.5
    on = (tm["engine_on"] > 0) & (tm["throttle_cmd"] > 0.19) & (tm["thrust_n"] > 500.0)
    # the engine really gives 1.3 x the command ...
    k = tm["thrust_n"][1:][on[:-1]] / (tm["throttle_cmd"][:-1][on[:-1]] * res.thrust_max_n)
    assert np.median(k) == pytest.approx(1.3, abs=0.01)
    # ... and the flight code divides its commands by its estimate: in the terminal phase it
    # commands ~ m g / (1.3 THRUST_MAX) (0.203), not m g / THRUST_MAX (0.264)
    term = (tm["mode"] == p.Phase.TERMINAL) & (tm["engine_on"] > 0)
    need = np.median(tm["mass_kg"][term] * tm["gravity_mps2"][term]) / (1.3 * res.thrust_max_n)
    assert np.median(tm["throttle_cmd"][term]) == pytest.approx(need, abs=0.01)
    # engine-off intervals (pulse mode) only while minimum thrust leaves < 0.1 m/s^2 of descent
    cuts = engine_off_intervals(tm)
    assert 1 <= len(cuts) <= 15, cuts
    for i, off_s in cuts:
        assert off_s <= 2.0 + 0.05                                  # PULSE_OFF_MAX
        assert tm["mode"][i] in (p.Phase.APPROACH, p.Phase.TERMINAL, p.Phase.CONTINGENCY)
        min_thrust = 0.2 * 1.3 * res.thrust_max_n                   # 1,040 N
        assert min_thrust > tm["mass_kg"][i] * (tm["gravity_mps2"][i] - 0.1), (tm["t_s"][i], tm["mass_kg"][i])
    assert res.point_of_no_return() is None


def test_chandrayaan2_needs_both_the_estimate_and_the_pulse_mode_and_lands_even_at_1_5x(fly):
    """Dividing the commands by the right scale does not make minimum thrust smaller: without
    engine-off intervals the descent still stops; the pulse mode needs the estimate to know the
    real minimum thrust. Both together land even at 1.5 x (1,200 N minimum thrust, more than the
    1,134 N weight from the start) the pulse mode still lands."""
    sc = load_scenario("chandrayaan2", "fixed")
    est_only = fly(sc.with_(name="chandrayaan2-estimate-only", flight_params={"PULSE_ENABLE": 0}))
    assert est_only.outcome == "timeout", est_only.verdict()
    # and engine-off intervals without the estimate believe minimum thrust is 800 N: never used
    pulse_only = fly(sc.with_(name="chandrayaan2-pulse-only", flight_params={"THR_EST_ENABLE": 0}))
    assert pulse_only.outcome == "timeout", pulse_only.verdict()
    hot = fly(sc.with_(name="chandrayaan2-fixed-1.5x", faults=(F.ThrustScale(id="over-thrust", scale=1.5),)))
    assert hot.outcome == "landed", hot.verdict()
    tm = hot.telemetry
    assert 0.2 * 1.5 * hot.thrust_max_n > tm["mass_kg"][0] * tm["gravity_mps2"][0]
    assert len(engine_off_intervals(tm)) >= 5


# Luna-25 -----------------------------------------------------------------------------------------
def test_luna25_as_flown_accelerometers_at_zero_diverge_the_estimate(fly):
    res = fly_variant(fly, "luna25", "as_flown")
    ee = res.max_estimate_error()
    assert abs(ee["error_m"]) > 1000.0, ee                   # km-scale navigation divergence
    assert res.lrf_ignored() is not None                     # the true LRF ranges are gated out
    assert res.point_of_no_return() is not None
    assert_diagnosis_in_verdict(res)


def test_luna25_fixed_accelerometer_monitor_navigates_on_the_thrust_model_and_lands(fly):
    res = fly_variant(fly, "luna25", "fixed")
    td, tm = res.touchdown, res.telemetry
    assert td.v_vertical <= 2.0 and td.v_horizontal <= 0.5
    # the altitude estimate stays honest (the LRF agrees with the thrust-model navigation)
    ee = res.max_estimate_error()
    assert abs(ee["error_m"]) < 20.0, ee
    assert res.lrf_ignored() is None
    low = tm["altitude_m"] < 100.0
    assert np.max(np.abs(tm["est_alt_m"][low] - tm["truth_alt_site_m"][low])) < 5.0
    assert res.point_of_no_return() is None
    # the monitor alone (with the as-flown LRF latch-out and no contingency) also lands
    alone = fly(load_scenario("luna25", "as_flown").with_(name="luna25-monitor-only",
                                                            flight_params={"ACC_MON_ENABLE": 1}))
    assert alone.outcome == "landed", alone.verdict()


def test_luna25_imu_flagged_invalid_is_not_a_fix(fly):
    """The older fallback (whole IMU invalid: dead-reckon, attitude held, gyros dropped) crashes;
    the fix must keep the gyros and replace only the accelerometers."""
    sc = load_scenario("luna25", "fixed")
    res = fly(sc.with_(name="luna25-imu-flagged-invalid", faults=(F.ImuGlitch(mode="invalid"),)))
    assert res.outcome == "crashed", res.verdict()


# SLIM --------------------------------------------------------------------------------------------
def test_slim_as_flown_half_thrust_at_50_m_lands_too_hard(fly):
    res = fly_variant(fly, "slim", "as_flown")
    tm = res.telemetry
    i = int(np.argmax(tm["altitude_m"] <= 50.0))
    assert tm["thrust_n"][i + 5:].max() <= 0.5 * res.thrust_max_n + 1.0   # half the engine is gone
    assert res.touchdown.v_vertical > 2.0
    assert res.point_of_no_return() is not None
    assert_diagnosis_in_verdict(res)


def test_slim_fixed_stiffer_loop_lands_and_still_lands_nominally(fly):
    fly_variant(fly, "slim", "fixed")
    sc = load_scenario("nominal-terminal-descent").with_(
        name="nominal-with-slim-fix", flight_params=load_scenario("slim", "fixed").flight_params)
    res = fly(sc)
    assert res.outcome == "landed", res.verdict()
