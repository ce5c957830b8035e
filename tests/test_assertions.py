"""The domain assertions pass on a good descent and fail, with numbers, on a bad one."""
import pytest

from harness.assertions import (FlightAssertionError, assert_deceleration_margin, assert_estimate_error,
                                assert_fuel_margin, assert_lrf_accepted, assert_touchdown)
from harness.rigs import open_rig
from harness.scenario import Envelope
from harness.scenario_files import load_scenario, terminal_descent


@pytest.fixture(scope="module")
def nominal():
    with open_rig("loopback") as up:
        return up.fly(terminal_descent())


@pytest.fixture(scope="module")
def m2():
    with open_rig("loopback") as up:
        return up.fly(load_scenario("ispace-m2", "as_flown"))


def test_all_pass_on_the_nominal_descent(nominal):
    assert_touchdown(nominal, position_error_max_m=2000)
    assert_fuel_margin(nominal, 50.0)
    assert_deceleration_margin(nominal, 0.0)
    assert_lrf_accepted(nominal, max_ignored_s=0.0)
    assert_estimate_error(nominal, 5.0, below_altitude_m=500)


def test_touchdown_fails_naming_each_violated_limit(nominal, m2):
    with pytest.raises(FlightAssertionError, match=r"vertical speed \d+\.\d\d m/s > 0.1 m/s"):
        assert_touchdown(nominal, Envelope(v_vertical_max=0.1))
    err = nominal.touchdown.position_error_m
    with pytest.raises(FlightAssertionError, match=rf"{err:.1f} m from the site > {err / 2} m"):
        assert_touchdown(nominal, position_error_max_m=err / 2)
    with pytest.raises(FlightAssertionError, match=r"touchdown at t=\d+\.\d\d s outside the envelope"):
        assert_touchdown(m2)


def test_fuel_margin_fails_with_the_propellant_left(nominal):
    left = nominal.touchdown.propellant_kg
    with pytest.raises(FlightAssertionError, match=rf"fuel margin {left:.1f} kg at touchdown"):
        assert_fuel_margin(nominal, left + 1.0)


def test_deceleration_margin_fails_with_the_point_of_no_return(m2):
    pnr = m2.point_of_no_return()
    with pytest.raises(FlightAssertionError, match=rf"point of no return at t={pnr['t_s']:.2f} s"):
        assert_deceleration_margin(m2)


def test_lrf_acceptance_fails_saying_from_when_and_how_long(m2):
    ig = m2.lrf_ignored()
    with pytest.raises(FlightAssertionError, match=rf"valid LRF samples ignored from t={ig['from_t_s']:.2f} s"):
        assert_lrf_accepted(m2, max_ignored_s=1.0)


def test_estimate_error_fails_with_the_error_and_its_time(m2):
    with pytest.raises(FlightAssertionError, match=r"altitude estimate error \+1\d\d\d\.\d m at t="):
        assert_estimate_error(m2, 100.0)
