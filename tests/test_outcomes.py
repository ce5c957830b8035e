"""Outcome classes from the whole touchdown envelope (docs/scenarios.md, "Outcome classes"):
every quantity, both boundaries (landed limit and crash limit), just inside and just outside."""
from __future__ import annotations

import math

import pytest

from harness.runner import OUTCOMES, Touchdown, envelope_outcome
from harness.scenario import Envelope

ENV = Envelope()  # 2.0 m/s, 0.5 m/s, 12 deg, 2000 m, factor 2
EPS = 1e-9


def _td(v_vertical=1.0, v_horizontal=0.1, tilt_deg=2.0, position_error_m=10.0):
    return Touchdown(t_s=100.0, v_vertical=v_vertical, v_horizontal=v_horizontal, tilt_deg=tilt_deg,
                     position_error_m=position_error_m, propellant_kg=50.0)


def test_defaults_are_the_documented_values():
    assert (ENV.v_vertical_max, ENV.v_horizontal_max, ENV.tilt_max_deg, ENV.distance_max_m,
            ENV.hard_landing_factor) == (2.0, 0.5, 12.0, 2000.0, 2.0)
    assert {"landed", "off-site", "hard-landing", "crashed"} <= set(OUTCOMES)


def test_well_inside_is_landed():
    assert envelope_outcome(_td(), ENV) == "landed"


@pytest.mark.parametrize("quantity, limit", [("v_vertical", 2.0), ("v_horizontal", 0.5), ("tilt_deg", 12.0)])
def test_landed_boundary_of_each_speed_and_tilt(quantity, limit):
    assert envelope_outcome(_td(**{quantity: limit}), ENV) == "landed"  # the limit itself is inside
    assert envelope_outcome(_td(**{quantity: limit - EPS}), ENV) == "landed"
    assert envelope_outcome(_td(**{quantity: limit + EPS}), ENV) == "hard-landing"


@pytest.mark.parametrize("quantity, limit", [("v_vertical", 2.0), ("v_horizontal", 0.5), ("tilt_deg", 12.0)])
def test_crash_boundary_of_each_speed_and_tilt(quantity, limit):
    assert envelope_outcome(_td(**{quantity: 2 * limit}), ENV) == "hard-landing"
    assert envelope_outcome(_td(**{quantity: 2 * limit - EPS}), ENV) == "hard-landing"
    assert envelope_outcome(_td(**{quantity: 2 * limit + EPS}), ENV) == "crashed"


def test_distance_boundary():
    assert envelope_outcome(_td(position_error_m=2000.0), ENV) == "landed"
    assert envelope_outcome(_td(position_error_m=2000.0 - EPS), ENV) == "landed"
    assert envelope_outcome(_td(position_error_m=2000.0 + 1e-6), ENV) == "off-site"


def test_distance_does_not_soften_a_hard_landing_or_crash():
    assert envelope_outcome(_td(v_vertical=3.0, position_error_m=5000.0), ENV) == "hard-landing"
    assert envelope_outcome(_td(v_vertical=30.0, position_error_m=5000.0), ENV) == "crashed"


def test_issue_13_touchdown_fast_sideways_far_away_is_a_crash():
    # measured on the old code: vertical speed alone decided, so this was "hard-landing"
    td = _td(v_vertical=1.9, v_horizontal=50.8, tilt_deg=8.0, position_error_m=4700.0)
    assert envelope_outcome(td, ENV) == "crashed"


def test_horizontal_speed_alone_can_crash_and_tilt_alone_can_crash():
    assert envelope_outcome(_td(v_horizontal=1.2), ENV) == "crashed"
    assert envelope_outcome(_td(tilt_deg=30.0), ENV) == "crashed"


def test_limits_come_from_the_scenario_envelope():
    tight = Envelope(v_vertical_max=1.0, v_horizontal_max=0.2, tilt_max_deg=5.0, distance_max_m=50.0,
                     hard_landing_factor=1.5)
    assert envelope_outcome(_td(v_vertical=1.4, v_horizontal=0.1, tilt_deg=2.0), tight) == "hard-landing"
    assert envelope_outcome(_td(v_vertical=1.6, v_horizontal=0.1, tilt_deg=2.0), tight) == "crashed"
    assert envelope_outcome(_td(v_vertical=0.5, v_horizontal=0.1, tilt_deg=2.0, position_error_m=60.0),
                            tight) == "off-site"


@pytest.mark.parametrize("quantity", ["v_vertical", "v_horizontal", "tilt_deg", "position_error_m"])
def test_non_finite_touchdown_values_are_a_crash(quantity):
    assert envelope_outcome(_td(**{quantity: math.nan}), ENV) == "crashed"
