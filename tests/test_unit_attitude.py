"""Attitude control (fsw_attitude.c) against closed-form answers, through cffi: the pointing
error vector (axis z x d, size 2 sin(err/2)), PD torque and per-axis clamp, the throttle gate,
for thrust directions near upright, far from upright and inverted, in a rotated body."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cfsw import PARAMS, params, qmul, qrot

D = {k: r["default"] for k, r in PARAMS.items()}
BIG = 1.0e5


def att(ffi, lib, q, w, d, throttle=0.6, **over):
    p = params(ffi, lib, **over)
    c = ffi.new("fsw_att_cfg_t *")
    lib.fsw_att_configure(c, p)
    out = ffi.new("fsw_att_out_t *")
    lib.fsw_att_step(c, [float(x) for x in q], [float(x) for x in w], [float(x) for x in d], throttle, out)
    return out


ID = (1.0, 0.0, 0.0, 0.0)
UNCLAMPED = dict(RCS_TMAX_X=BIG, RCS_TMAX_Y=BIG, RCS_TMAX_Z=BIG)


def expected_error(d_body):
    """Rotation vector from body +z to the unit vector d: axis z x d, magnitude 2 sin(err/2)."""
    d = np.asarray(d_body, float) / np.linalg.norm(d_body)
    err = math.acos(max(-1.0, min(1.0, d[2])))
    axis = np.cross([0.0, 0.0, 1.0], d)
    n = np.linalg.norm(axis)
    return axis / n * 2 * math.sin(err / 2) if n > 0 else np.zeros(3)


@pytest.mark.parametrize("deg", [5.0, 30.0, 90.0, 120.0, 170.0, 177.0])
@pytest.mark.parametrize("az", [0.0, 1.0, 2.5])
def test_error_is_two_sin_half_angle_about_z_cross_d(fc, deg, az):
    ffi, lib = fc
    kp = 3.0
    e = math.radians(deg)
    d = np.array([math.sin(e) * math.cos(az), math.sin(e) * math.sin(az), math.cos(e)])
    out = att(ffi, lib, ID, (0, 0, 0), d, ATT_KP=kp, ATT_KD=0.0, **UNCLAMPED)
    assert np.array(list(out.torque_body)) == pytest.approx(kp * expected_error(d), abs=2e-5 * kp * 2)
    assert out.cos_err == pytest.approx(math.cos(e), abs=1e-6)


def test_inverted_exactly_turns_about_body_x_with_full_magnitude(fc):
    ffi, lib = fc
    out = att(ffi, lib, ID, (0, 0, 0), (0.0, 0.0, -1.0), ATT_KP=5.0, ATT_KD=0.0, **UNCLAMPED)
    assert list(out.torque_body) == pytest.approx([10.0, 0.0, 0.0])
    assert out.cos_err == -1.0


@pytest.mark.parametrize("az", [0.3, 2.0, -2.0])
def test_nearly_inverted_turns_toward_the_target_with_full_magnitude(fc, az):
    """Within 2.6 deg of inverted (d_z < -0.999) the axis is z x d normalised, magnitude 2."""
    ffi, lib = fc
    s = 0.02
    d = np.array([s * math.cos(az), s * math.sin(az), -math.sqrt(1 - s * s)])
    out = att(ffi, lib, ID, (0, 0, 0), d, ATT_KP=5.0, ATT_KD=0.0, **UNCLAMPED)
    axis = np.cross([0, 0, 1.0], d)
    assert np.array(list(out.torque_body)) == pytest.approx(10.0 * axis / np.linalg.norm(axis), abs=1e-4)


def test_damping_opposes_the_rate_on_every_axis_and_roll_is_only_damped(fc):
    ffi, lib = fc
    w = (0.1, -0.2, 0.3)
    out = att(ffi, lib, ID, w, (0.0, 0.0, 1.0), ATT_KP=7.0, ATT_KD=11.0, **UNCLAMPED)
    assert list(out.torque_body) == pytest.approx([-1.1, 2.2, -3.3], rel=1e-6)


def test_pd_torque_in_a_rotated_body(fc):
    """The desired MCI direction is taken into the body with q_mci_body (inverse rotation)."""
    ffi, lib = fc
    q = qmul((math.cos(0.4), math.sin(0.4), 0.0, 0.0), (math.cos(0.6), 0.0, 0.0, math.sin(0.6)))
    d_body = np.array([0.3, -0.5, 0.7])
    d_body /= np.linalg.norm(d_body)
    d_mci = qrot(q, d_body)
    w = np.array([0.05, 0.02, -0.01])
    kp, kd = 4.0, 9.0
    out = att(ffi, lib, q, w, d_mci, ATT_KP=kp, ATT_KD=kd, **UNCLAMPED)
    assert np.array(list(out.torque_body)) == pytest.approx(kp * expected_error(d_body) - kd * w, abs=1e-4)
    assert out.cos_err == pytest.approx(d_body[2], abs=1e-6)


def test_torque_is_clamped_per_axis_to_its_own_limit(fc):
    ffi, lib = fc
    d = (math.sin(1.0) * 0.6, math.sin(1.0) * 0.8, math.cos(1.0))
    out = att(ffi, lib, ID, (0.0, 0.0, 2.0), d, ATT_KP=1000.0, ATT_KD=1000.0,
              RCS_TMAX_X=12.0, RCS_TMAX_Y=34.0, RCS_TMAX_Z=5.0)
    e = expected_error(d)
    assert e[0] < 0 < e[1]
    assert list(out.torque_body) == pytest.approx([-12.0, 34.0, -5.0])


def test_unnormalised_and_zero_desired_direction(fc):
    ffi, lib = fc
    out = att(ffi, lib, ID, (0, 0, 0), (0.0, 30.0, 30.0), ATT_KP=1.0, ATT_KD=0.0, **UNCLAMPED)
    assert list(out.torque_body) == pytest.approx(list(expected_error((0, 1, 1))), abs=1e-5)
    out = att(ffi, lib, ID, (0, 0, 0), (0.0, 0.0, 0.0), ATT_KP=1.0, ATT_KD=0.0, **UNCLAMPED)
    assert list(out.torque_body) == [0.0, 0.0, 0.0] and out.cos_err == 1.0


@pytest.mark.parametrize("err", [0.2, 0.49, 0.51, 1.5, 3.1])
def test_throttle_gate_holds_throttle_min_beyond_the_tilt_threshold(fc, err):
    ffi, lib = fc
    thr_gate = 0.5
    d = (math.sin(err), 0.0, math.cos(err))
    for throttle in (0.1, 0.9):
        out = att(ffi, lib, ID, (0, 0, 0), d, throttle=throttle, ATT_TILT_THR=thr_gate)
        exp = throttle if err < thr_gate else min(throttle, D["THROTTLE_MIN"])
        assert out.throttle == pytest.approx(exp), (err, throttle)


def test_configure_takes_every_parameter_it_reads(fc):
    ffi, lib = fc
    p = ffi.new("fsw_params_t *")
    lib.fsw_params_defaults(p)
    for k, v in dict(ATT_KP=123.0, ATT_KD=456.0, RCS_TMAX_X=11.0, RCS_TMAX_Y=22.0, RCS_TMAX_Z=33.0,
                     ATT_TILT_THR=0.8, THROTTLE_MIN=0.17).items():
        assert lib.fsw_param_set(p, PARAMS[k]["id"], v, ffi.NULL) == 0
    c = ffi.new("fsw_att_cfg_t *")
    lib.fsw_att_configure(c, p)
    assert (c.kp, c.kd, *c.tmax, c.throttle_min) == pytest.approx((123.0, 456.0, 11.0, 22.0, 33.0, 0.17), rel=1e-6)
    assert c.cos_thr == pytest.approx(math.cos(0.8), abs=1e-6)
