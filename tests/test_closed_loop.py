"""Closed-loop descents: the same file runs on every rig (``pytest --rig NAME``).

Every test judges the flight code by the touchdown envelope and the requirements, whatever code
it is (the reference firmware_stub/, examples/simple_lander, a team's own). A test of how the
*reference* flight code behaves (e.g. "M2 as flown crashes": the reference code's as-flown LRF
policy) is marked ``@pytest.mark.requires("reference-fsw")`` and runs only on rigs that declare
that capability (loopback, host-pty, qemu-m4).
"""
import math

import numpy as np
import pytest

from harness.analysis import stopping_distance
from harness.link import replay_link_log
from harness.protocol import SENSORS_LRF_NEW, MsgType
from harness.assertions import (assert_deceleration_margin, assert_estimate_error, assert_fuel_margin,
                                assert_lrf_accepted, assert_touchdown)
from harness.scenario_files import load_scenario, terminal_descent


def test_nominal_terminal_descent_lands_inside_the_envelope(fly):
    res = fly(terminal_descent())
    assert res.outcome == "landed", res.verdict()
    assert_touchdown(res)  # <= 2 m/s vertical, <= 0.5 m/s horizontal, <= 12 deg
    assert_fuel_margin(res, 50.0)
    assert_deceleration_margin(res, min_margin_m=0.0)
    assert_lrf_accepted(res)
    # the flight code locked on the LRF and its estimate converged to truth near the ground
    assert_estimate_error(res, 5.0, below_altitude_m=100.0)
    assert res.link_stats["missed_cycles"] == 0


def test_lrf_samples_200_ms_old_still_land(fly):
    nominal = terminal_descent()
    res = fly(nominal.with_(name="terminal-lrf-latency", lrf=nominal.lrf.replace(latency_s=0.2)))
    assert res.outcome == "landed", res.verdict()
    assert_touchdown(res)
    assert_deceleration_margin(res)
    # every sample the flight code got was 200 ms old (read back from the raw link log) ...
    sent = [f for f in replay_link_log(res.artifacts / "link.log")["H>F"]
            if f.msg_type == MsgType.SENSORS and f.msg.flags & SENSORS_LRF_NEW]
    ages = {f.t_us - f.msg.lrf_sample_t_us for f in sent}
    assert len(sent) > 100 and ages == {200_000}, sorted(ages)[:5]
    # ... and the flight code compensated for it
    assert_estimate_error(res, 5.0, below_altitude_m=100.0)


@pytest.mark.requires("reference-fsw")  # the reference code's as-flown LRF policy crashes M2; other code may land
def test_m2_late_lrf_verdict_gives_the_point_of_no_return(fly):
    res = fly(load_scenario("ispace-m2", "as_flown"))
    assert res.outcome in ("crashed", "hard-landing"), res.verdict()
    first = res.first_valid_lrf()
    assert first is not None and first["altitude_m"] <= 900.0
    pnr = res.point_of_no_return()
    assert pnr is not None, res.verdict()
    assert pnr["t_s"] < res.touchdown.t_s
    assert f"point of no return at t={pnr['t_s']:.2f} s" in res.verdict()
    # physics check of the instant: from it on, full thrust cannot slow the lander to the
    # touchdown limit in the height left; just before it, it still could.
    tm = res.telemetry
    i = int(np.searchsorted(tm["t_s"], pnr["t_s"]))
    a_net = res.thrust_max_n / tm["mass_kg"] - tm["gravity_mps2"]
    d_stop = stopping_distance(-tm["v_up_mps"], a_net, v_final=res.scenario.envelope.v_vertical_max)
    assert d_stop[i] > tm["altitude_m"][i]
    assert i == 0 or d_stop[i - 1] <= tm["altitude_m"][i - 1]
    assert np.all(d_stop[i:] > tm["altitude_m"][i:])


def test_m2_late_lrf_with_reacquire_and_contingency_lands(fly):
    res = fly(load_scenario("ispace-m2", "fixed"))
    assert res.outcome == "landed", res.verdict()
    assert_touchdown(res)
    assert_deceleration_margin(res)


def test_run_summary_states_touchdown_numbers(fly):
    res = fly(terminal_descent())
    text = res.verdict()
    td, env = res.touchdown, res.scenario.envelope
    assert res.outcome == "landed" and text.splitlines()[0].endswith("LANDED")
    # each touchdown number as measured, next to its limit
    assert f"touchdown at t={td.t_s:.2f} s" in text
    assert f"vertical {td.v_vertical:.2f} m/s (limit {env.v_vertical_max})" in text
    assert f"horizontal {td.v_horizontal:.2f} m/s (limit {env.v_horizontal_max})" in text
    assert f"tilt {td.tilt_deg:.1f} deg (limit {env.tilt_max_deg})" in text
    assert f"{td.position_error_m:.0f} m from the site, {td.propellant_kg:.1f} kg propellant left" in text
    # and those numbers are the plant's state at contact: the last record of the telemetry
    tm = res.telemetry
    assert td.v_vertical == pytest.approx(-tm["v_up_mps"][-1], abs=0.05)
    assert td.tilt_deg == pytest.approx(tm["tilt_deg"][-1], abs=0.5)
    assert 0.0 < td.v_vertical <= env.v_vertical_max and td.t_s == pytest.approx(res.sim_time_s, abs=0.05)
    assert math.isfinite(res.real_time_factor)
