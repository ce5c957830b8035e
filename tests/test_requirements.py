"""Requirements as STL (harness.requirements): closed-form robustness on synthetic signals, and
the sign and size of robustness on real descents (a crash breaks the touchdown requirement by
exactly its excess speed, a landing keeps it by exactly its margin)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.assertions import assert_requirement
from harness.errors import ConfigError
from harness.requirements import LIBRARY, SIGNALS, _trace, resolve, robustness, robustness_of

T = np.arange(0.0, 20.0, 0.1)     # 200 samples at 10 Hz


def test_always_upper_bound_is_margin_to_the_peak_and_reports_its_instant():
    v = 1.0 + 0.5 * np.sin(T)                     # peak 1.5 at t = pi/2 + 2 pi k
    r = robustness_of(T, {"v_down_mps": v}, "always(v_down_mps <= 2.0)")
    assert r.value == pytest.approx(2.0 - v.max())
    assert r.t_worst_s == pytest.approx(T[np.argmax(v)])
    assert r.holds and r.unit == "m/s"
    broken = robustness_of(T, {"v_down_mps": v + 1.0}, "always(v_down_mps <= 2.0)")
    assert broken.value == pytest.approx(2.0 - v.max() - 1.0) and not broken.holds


def test_bounded_eventually_is_best_value_inside_the_window_only():
    alt = 100.0 - 4.0 * T                         # reaches 20 m at t = 20 s (outside [0, 10])
    r = robustness_of(T, {"alt_agl_m": alt}, "eventually[0:10](alt_agl_m <= 20)")
    assert r.value == pytest.approx(20.0 - alt[T <= 10.0 + 1e-9].min())   # -40 m: at t=10 alt is 60 m
    assert r.value == pytest.approx(-40.0)
    assert r.t_worst_s == pytest.approx(10.0)
    # the outer-operator shortcut gives rtamt's own answer
    assert r.value == pytest.approx(_trace("eventually[0:10](alt_agl_m <= 20)", T, {"alt_agl_m": alt})[0])


def test_implication_is_max_of_negated_premise_and_conclusion():
    alt = 100.0 - 5.0 * T                         # below 50 m from t = 10 s
    v = np.full_like(T, 4.0)
    v[T >= 15.0] = 6.0                            # too fast at alt <= 25 m
    r = robustness_of(T, {"alt_agl_m": alt, "v_down_mps": v}, "always((alt_agl_m < 50) implies (v_down_mps < 5))")
    # at t >= 15: premise robustness 50 - alt > 0, conclusion 5 - 6 = -1: max(-(50 - alt), -1) = -1
    assert r.value == pytest.approx(-1.0)
    assert r.t_worst_s >= 15.0 - 1e-9
    assert r.unit == "m | m/s"


def test_phase_regression_is_negative_by_the_ranks_lost():
    step = np.zeros_like(T)
    step[50] = -1.0                                # terminal -> approach
    r = robustness_of(T, {"phase_step": step}, LIBRARY["no_phase_regression"].formula)
    assert r.value == -1.0 and r.t_worst_s == pytest.approx(T[50])


def test_bad_requirements_are_named():
    with pytest.raises(ConfigError, match="unknown signal 'altitude'.*allowed signals"):
        resolve("always(altitude < 3)")
    with pytest.raises(ConfigError, match="no such requirement in the library.*touchdown_vertical"):
        resolve("touchdown_speed")
    with pytest.raises(ConfigError, match="not a valid STL formula"):
        robustness_of(T, {"alt_agl_m": T}, "always(alt_agl_m < )")
    assert set(SIGNALS) >= {"alt_agl_m", "v_down_mps", "tilt_deg", "throttle_cmd", "lrf_accepted", "phase",
                            "decel_margin_m", "est_alt_error_m", "propellant_used_kg"}


@pytest.fixture(scope="module")
def m2_flights():
    """The M2 case with the gate fix (no contingency): first LRF fix at 1,000 m lands, at 400 m
    crashes; as flown (latching gate) the first fix is rejected for good."""
    from harness.campaign.spec import build_scenario
    from harness.campaign.worker import fly_on_rig, warm_up

    warm_up()
    gate_fix = {"flight_params": {"LRF_GATE_POLICY": 1, "CONTINGENCY_ENABLE": 0}}
    out = {}
    for name, ov in (("lands", {**gate_fix, "faults.0.acquire_altitude_m": 1000.0}),
                     ("crashes", {**gate_fix, "faults.0.acquire_altitude_m": 400.0}),
                     ("as_flown", {"flight_params": "AS_FLOWN", "faults.0.acquire_altitude_m": 900.0})):
        out[name] = fly_on_rig(build_scenario("ispace-m2", ov, 1), "loopback")
    return out


def test_touchdown_robustness_on_real_descents_is_the_speed_margin(m2_flights):
    land, crash = m2_flights["lands"], m2_flights["crashes"]
    assert land.landed and crash.outcome == "crashed"
    r_land = robustness(land, "touchdown_vertical")
    r_crash = robustness(crash, "touchdown_vertical")
    assert r_land.value == pytest.approx(2.0 - land.touchdown.v_vertical) and r_land.value > 0
    assert r_crash.value == pytest.approx(2.0 - crash.touchdown.v_vertical) and r_crash.value < -10.0
    assert r_crash.t_worst_s == pytest.approx(float(crash.telemetry["t_s"][-1]))
    env = robustness(crash, "touchdown_envelope")
    assert env.value == pytest.approx(min(2.0 - crash.touchdown.v_vertical, 0.5 - crash.touchdown.v_horizontal,
                                          12.0 - crash.touchdown.tilt_deg))
    # the point of no return comes before the crash, above 10 m
    pnr = robustness(crash, "no_point_of_no_return")
    assert pnr.value < 0 and pnr.t_worst_s < crash.touchdown.t_s
    assert robustness(land, "no_point_of_no_return").value > 0


def test_lrf_acceptance_after_acquisition_breaks_only_with_the_latching_gate(m2_flights):
    fixed = robustness(m2_flights["lands"], "lrf_accepted_after_acquisition")
    latched = robustness(m2_flights["as_flown"], "lrf_accepted_after_acquisition")
    assert fixed.value > 0
    # the as-flown gate never accepts: waiting from the first valid sample to the end of the run
    tm = m2_flights["as_flown"].telemetry
    first = float(tm["t_s"][np.nonzero(tm["lrf_valid"] > 0)[0][0]])
    assert latched.value == pytest.approx(5.0 - (float(tm["t_s"][-1]) - first))
    assert latched.value < 0


def test_assert_requirement_reports_robustness_and_worst_instant(m2_flights):
    r = assert_requirement(m2_flights["lands"], "touchdown_vertical")
    assert r.value > 0
    with pytest.raises(AssertionError) as exc:
        assert_requirement(m2_flights["crashes"], "touchdown_vertical")
    msg = str(exc.value)
    assert "touchdown_vertical violated: robustness -" in msg and "m/s" in msg
    assert f"worst at t={m2_flights['crashes'].touchdown.t_s:.2f} s" in msg or "worst at t=" in msg
    with pytest.raises(AssertionError, match=r"required >= 5"):
        assert_requirement(m2_flights["lands"], "always(throttle_cmd <= 1)", min_robustness=5.0)
    assert_requirement(m2_flights["lands"], "always((alt_agl_m < 50) implies (v_down_mps < 10))")


def test_no_touchdown_breaks_the_touchdown_limits_without_bound():
    from types import SimpleNamespace

    from harness.requirements import robustness_all
    from harness.scenario_files import terminal_descent

    n = 10
    tm = {c: np.zeros(n) for c in ("altitude_m", "v_up_mps", "v_horizontal_mps", "tilt_deg", "throttle_cmd",
                                   "thrust_n", "engine_on", "est_alt_m", "truth_alt_site_m", "lrf_valid",
                                   "lrf_status", "mode", "mass_kg", "gravity_mps2")}
    tm["t_s"] = np.arange(n) * 0.02
    tm["altitude_m"] += 100.0
    tm["mass_kg"] += 900.0
    tm["gravity_mps2"] += 1.62
    res = SimpleNamespace(telemetry=tm, touchdown=None, thrust_max_n=4000.0, scenario=terminal_descent(),
                          deceleration_margin=lambda: tm["altitude_m"].copy())
    td, within = robustness_all(res, ["touchdown_vertical", "eventually[0:0.1](alt_agl_m <= 0.5)"])
    assert td.value == -math.inf
    assert within.value == pytest.approx(-99.5)
