"""Assertions in the language of the domain. Each failure message states the numbers and times.

    from harness.assertions import assert_touchdown, assert_deceleration_margin
    res = fly(scenario)
    assert_touchdown(res)                       # envelope of the scenario, or pass your own
    assert_deceleration_margin(res, min_margin_m=50)
"""
from __future__ import annotations

import numpy as np

from harness import protocol as p


class FlightAssertionError(AssertionError):
    """A closed-loop expectation that did not hold; the message carries the evidence."""


def _fail(result, text: str):
    raise FlightAssertionError(f"{text}\n  {result.verdict()}")


def assert_touchdown(result, envelope=None, *, position_error_max_m: float | None = None) -> None:
    """The lander touched down inside the envelope (vertical and horizontal speed, tilt) and,
    if given, within ``position_error_max_m`` of the site."""
    env = envelope or result.scenario.envelope
    td = result.touchdown
    if td is None:
        _fail(result, f"no touchdown: run ended as {result.outcome} at t={result.sim_time_s:.2f} s"
                      + (f" ({result.error})" if result.error else ""))
    problems = []
    if td.v_vertical > env.v_vertical_max:
        problems.append(f"vertical speed {td.v_vertical:.2f} m/s > {env.v_vertical_max} m/s")
    if td.v_horizontal > env.v_horizontal_max:
        problems.append(f"horizontal speed {td.v_horizontal:.2f} m/s > {env.v_horizontal_max} m/s")
    if td.tilt_deg > env.tilt_max_deg:
        problems.append(f"tilt {td.tilt_deg:.1f} deg > {env.tilt_max_deg} deg")
    if position_error_max_m is not None and td.position_error_m > position_error_max_m:
        problems.append(f"{td.position_error_m:.1f} m from the site > {position_error_max_m} m")
    if problems:
        _fail(result, f"touchdown at t={td.t_s:.2f} s outside the envelope: " + "; ".join(problems))


def assert_fuel_margin(result, min_kg: float) -> None:
    """At least ``min_kg`` of main propellant left at touchdown (or at the end of the run)."""
    left = result.touchdown.propellant_kg if result.touchdown else None
    if left is None:
        tm = result.telemetry
        _fail(result, f"no touchdown to measure the fuel margin at (run ended {result.outcome} at "
                      f"t={float(tm['t_s'][-1]) if tm['t_s'].size else 0:.2f} s)")
    if left < min_kg:
        _fail(result, f"fuel margin {left:.1f} kg at touchdown t={result.touchdown.t_s:.2f} s < {min_kg} kg")


def assert_deceleration_margin(result, min_margin_m: float = 0.0) -> None:
    """At every instant, full thrust could still slow the lander to the envelope's touchdown speed
    with at least ``min_margin_m`` of height to spare (no point of no return)."""
    margin = result.deceleration_margin()
    if not margin.size:
        _fail(result, "no telemetry recorded")
    tm = result.telemetry
    i = int(np.argmin(margin))
    if margin[i] < min_margin_m:
        pnr = result.point_of_no_return()
        where = (f"; point of no return at t={pnr['t_s']:.2f} s ({pnr['altitude_m']:.0f} m up, "
                 f"{pnr['v_down_mps']:.1f} m/s down)") if pnr else ""
        _fail(result, f"deceleration margin {margin[i]:.0f} m < {min_margin_m} m at t={tm['t_s'][i]:.2f} s "
                      f"({tm['altitude_m'][i]:.0f} m up, {-tm['v_up_mps'][i]:.1f} m/s down){where}")


def assert_lrf_accepted(result, max_ignored_s: float = 0.0) -> None:
    """Valid LRF samples were not ignored by the flight code for longer than ``max_ignored_s``."""
    tm = result.telemetry
    ignored = (tm["lrf_valid"] > 0) & (tm["lrf_new"] > 0) & np.isin(
        tm["lrf_status"], (p.LrfStatus.REJECTED, p.LrfStatus.LATCHED_OUT))
    idx = np.nonzero(ignored)[0]
    if not idx.size:
        return
    # longest stretch of consecutive ignored samples (gaps shorter than 1 s join a stretch)
    t = tm["t_s"][idx]
    breaks = np.nonzero(np.diff(t) > 1.0)[0]
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, idx.size - 1]
    k = int(np.argmax(t[ends] - t[starts]))
    t0, t1 = float(t[starts[k]]), float(t[ends[k]])
    if t1 - t0 > max_ignored_s or (max_ignored_s == 0.0 and idx.size):
        n = int(ends[k] - starts[k] + 1)
        _fail(result, f"valid LRF samples ignored from t={t0:.2f} s ({tm['altitude_m'][idx[starts[k]]]:.0f} m up) "
                      f"to t={t1:.2f} s: {n} samples over {t1 - t0:.2f} s (allowed {max_ignored_s} s)")


def assert_estimate_error(result, max_error_m: float, *, below_altitude_m: float | None = None) -> None:
    """The flight code's altitude estimate stayed within ``max_error_m`` of truth (optionally only
    below ``below_altitude_m`` true altitude)."""
    tm = result.telemetry
    err = tm["est_alt_m"] - tm["truth_alt_site_m"]
    mask = np.isfinite(err)
    if below_altitude_m is not None:
        mask &= tm["altitude_m"] < below_altitude_m
    if not mask.any():
        _fail(result, "no altitude estimate in the telemetry to check")
    idx = np.nonzero(mask)[0]
    i = int(idx[np.argmax(np.abs(err[idx]))])
    if abs(err[i]) > max_error_m:
        scope = f" below {below_altitude_m} m" if below_altitude_m is not None else ""
        _fail(result, f"altitude estimate error {err[i]:+.1f} m at t={tm['t_s'][i]:.2f} s "
                      f"({tm['altitude_m'][i]:.0f} m up) exceeds {max_error_m} m{scope}")


def assert_requirement(result, requirement: str, min_robustness: float = 0.0):
    """The STL requirement (a ``harness.requirements.LIBRARY`` name or a formula) held with
    robustness >= ``min_robustness`` (its own units). Returns the Robustness; the failure message
    states the robustness and the instant of the worst violation."""
    from harness.requirements import robustness

    r = robustness(result, requirement)
    if not r.value >= min_robustness:
        tm = result.telemetry
        at = ""
        if r.t_worst_s is not None and tm["t_s"].size:
            i = int(np.argmin(np.abs(tm["t_s"] - r.t_worst_s)))
            at = (f"; worst at t={r.t_worst_s:.2f} s ({tm['altitude_m'][i]:.0f} m up, "
                  f"{-tm['v_up_mps'][i]:.1f} m/s down)")
        need = "" if min_robustness == 0.0 else f" (required >= {min_robustness:g})"
        _fail(result, f"requirement {r.requirement} violated: robustness {r.value:+.4g} {r.unit}{need}{at}\n"
                      f"  formula: {r.formula}")
    return r
