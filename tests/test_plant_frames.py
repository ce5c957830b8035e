"""Frame and quaternion conventions the flight code relies on."""

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from harness.frames import (MOON_GM, MOON_RADIUS, G0, SiteFrame, quat_conj, quat_from_axis_angle,
                            quat_from_dcm, quat_mul, quat_normalize, quat_rotate,
                            quat_rotate_inv, quat_to_dcm, tilt_quat, vdot)


def close(a, b, tol=1e-12):
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def test_constants():
    assert (MOON_GM, MOON_RADIUS, G0) == (4.9028e12, 1737400.0, 9.80665)


def test_quaternions_match_scipy():
    rng = np.random.default_rng(3)
    for _ in range(50):
        q = quat_normalize(tuple(rng.normal(size=4)))
        v = tuple(rng.normal(size=3))
        # scipy is scalar last
        R = Rotation.from_quat([q[1], q[2], q[3], q[0]])
        assert close(quat_rotate(q, v), R.apply(v), 1e-12)
        assert close(quat_rotate_inv(q, quat_rotate(q, v)), v, 1e-12)
        assert np.allclose(np.array(quat_to_dcm(q)), R.as_matrix(), atol=1e-12)
        q2 = quat_from_dcm(quat_to_dcm(q))
        assert abs(abs(sum(a * b for a, b in zip(q, q2))) - 1.0) < 1e-12
        p = quat_normalize(tuple(rng.normal(size=4)))
        # composition: rotate(p*q, v) = rotate(p, rotate(q, v))
        assert close(quat_rotate(quat_mul(p, q), v), quat_rotate(p, quat_rotate(q, v)), 1e-12)
        assert close(quat_mul(q, quat_conj(q)), (1.0, 0.0, 0.0, 0.0), 1e-12)


def test_axis_angle_right_handed():
    q = quat_from_axis_angle((0, 0, 1), math.pi / 2)
    assert close(quat_rotate(q, (1, 0, 0)), (0, 1, 0))


def test_default_site_axes():
    s = SiteFrame()
    assert close(s.up_mci, (1, 0, 0)) and close(s.east_mci, (0, 1, 0)) and close(s.north_mci, (0, 0, 1))
    assert s.r_mci == (1737400.0, 0.0, 0.0)
    q = s.q_upright()
    assert close(quat_rotate(q, (0, 0, 1)), s.up_mci)      # body z = up
    assert close(quat_rotate(q, (1, 0, 0)), s.east_mci)    # body x = east
    assert close(quat_rotate(q, (0, 1, 0)), s.north_mci)   # body y = north


def test_site_enu_round_trip_and_orthonormal():
    s = SiteFrame(math.radians(-20.0), math.radians(135.0))
    E, N, U = s.east_mci, s.north_mci, s.up_mci
    for a in (E, N, U):
        assert abs(vdot(a, a) - 1) < 1e-15
    assert abs(vdot(E, N)) < 1e-15 and abs(vdot(E, U)) < 1e-15 and abs(vdot(N, U)) < 1e-15
    # east x north = up (right handed ENU)
    cx = (E[1] * N[2] - E[2] * N[1], E[2] * N[0] - E[0] * N[2], E[0] * N[1] - E[1] * N[0])
    assert close(cx, U)
    r = s.to_mci(123.0, -456.0, 789.0)
    assert close(s.from_mci(r), (123.0, -456.0, 789.0), 1e-8)
    v = s.vel_to_mci(1.0, 2.0, 3.0)
    assert close(s.vel_from_mci(v), (1.0, 2.0, 3.0), 1e-12)
    q = s.q_upright()
    assert close(quat_rotate(q, (0, 0, 1)), U)


def test_tilt_helpers():
    s = SiteFrame()
    q = s.q_tilted(math.radians(30.0), math.pi / 2)  # toward east
    z = quat_rotate(q, (0, 0, 1))
    assert vdot(z, s.up_mci) == pytest.approx(math.cos(math.radians(30)))
    assert vdot(z, s.east_mci) == pytest.approx(math.sin(math.radians(30)))
    q = s.q_tilted(0.2, 0.0)  # toward north
    assert vdot(quat_rotate(q, (0, 0, 1)), s.north_mci) == pytest.approx(math.sin(0.2))
    q = tilt_quat(s.q_upright(), 0.1)  # about body x: z leans to -y (south)
    assert vdot(quat_rotate(q, (0, 0, 1)), s.north_mci) == pytest.approx(-math.sin(0.1))
    q = s.q_thrust_along((1.0, -1.0, 0.0))
    assert close(quat_rotate(q, (0, 0, 1)), (2 ** -0.5, -(2 ** -0.5), 0.0))


def test_surface_projection():
    s = SiteFrame()
    p = s.surface_point_mci(1000.0, -2000.0, 500.0)
    assert math.sqrt(vdot(p, p)) == pytest.approx(MOON_RADIUS + 500.0)
    assert close(s.surface_en(p), (1000.0, -2000.0), 1e-8)
