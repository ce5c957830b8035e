"""Navigation (fsw_nav.c) against closed-form answers, through cffi: the strapdown terms
(rotation correction to delta-v, attitude series, coning/sculling under a constant-rate
rotation while thrusting) and the 2-state altitude Kalman filter (covariance propagation and
update, gate). Each test pins one term, so a sign or gain error fails a named test."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cfsw import Q_UP, params, qrot

SITE_R = 1737400.0


def make_nav(ffi, lib, gm=0.0, **over):
    """A reset navigation state; ``gm`` replaces the configured GM (0: no gravity, so velocity
    changes are the rotated delta-v alone)."""
    p = params(ffi, lib, **over)
    nav = ffi.new("fsw_nav_t *")
    lib.fsw_nav_reset(nav, p)
    nav.cfg.gm = gm
    return nav


def q_angle_axis(q):
    q = np.asarray(q, float)
    q = q / np.linalg.norm(q)
    s = np.linalg.norm(q[1:])
    return 2.0 * math.atan2(s, q[0]), (q[1:] / s if s > 0 else np.zeros(3))


def propagate(ffi, lib, nav, dv, dth, dt):
    lib.fsw_nav_propagate(nav, [float(x) for x in dv], [float(x) for x in dth], float(dt))


# ------------------------------------------------------------------ strapdown terms
def test_rotation_correction_adds_half_dtheta_cross_dv(ffi_lib):
    ffi, lib = ffi_lib
    nav = make_nav(ffi, lib)
    v0 = np.array(list(nav.v))
    propagate(ffi, lib, nav, (1.0, 0.0, 0.0), (0.0, 0.0, 0.1), 0.1)   # identity attitude
    dv = np.array(list(nav.v)) - v0
    assert dv == pytest.approx([1.0, 0.05, 0.0], abs=1e-6)          # dv + 1/2 dtheta x dv


def test_delta_v_is_rotated_by_the_attitude_at_the_start_of_the_interval(ffi_lib):
    ffi, lib = ffi_lib
    nav = make_nav(ffi, lib)
    nav.q = list(Q_UP)                        # body +z along MCI +x
    v0 = np.array(list(nav.v))
    propagate(ffi, lib, nav, (0.0, 0.0, 2.0), (0.0, 0.0, 0.0), 0.1)
    assert np.array(list(nav.v)) - v0 == pytest.approx([2.0, 0.0, 0.0], abs=1e-6)


@pytest.mark.parametrize("theta", [0.02, 0.1, 0.3])
def test_sculling_constant_rate_rotation_with_inertially_fixed_thrust(ffi_lib, theta):
    """Body spins at constant rate w about z for dt while the specific force stays fixed in
    inertial space (a along x). The accelerometer integrates the rotating force:
    dv_b = a/w (sin th, -(1 - cos th), 0); the true inertial delta-v is (a dt, 0, 0). With the
    1/2 dtheta x dv term the error is O(th^2/12) a dt; without it the y error is th/2 a dt."""
    ffi, lib = ffi_lib
    a, dt = 3.0, 0.5
    w = theta / dt
    dv_b = np.array([a / w * math.sin(theta), -a / w * (1.0 - math.cos(theta)), 0.0])
    nav = make_nav(ffi, lib)
    v0 = np.array(list(nav.v))
    propagate(ffi, lib, nav, dv_b, (0.0, 0.0, theta), dt)
    dv = np.array(list(nav.v)) - v0
    # closed form of what the first-order correction gives: (x', y') below, exact in theta
    x_exp = a / w * math.sin(theta) + 0.5 * theta * a / w * (1.0 - math.cos(theta))
    y_exp = -a / w * (1.0 - math.cos(theta)) + 0.5 * theta * a / w * math.sin(theta)
    assert dv[0] == pytest.approx(x_exp, rel=1e-6) and dv[1] == pytest.approx(y_exp, abs=2e-6 * a * dt)
    assert np.linalg.norm(dv - [a * dt, 0, 0]) <= (theta ** 2 / 12 * 1.2 + 1e-6) * a * dt
    angle, axis = q_angle_axis(list(nav.q))
    assert angle == pytest.approx(theta, abs=theta ** 5 / 400 + 2e-6) and axis == pytest.approx([0, 0, 1], abs=1e-6)


def test_coning_sculling_many_steps_thrust_along_spinning_body_axis(ffi_lib):
    """Thrust fixed in the body (a along body x) while the body turns at constant rate w about
    z for a quarter turn: inertial delta-v = a/w (sin wT, 1 - cos wT, 0). The strapdown
    (mid-interval delta-v, attitude series) reproduces it to O((w dt)^2); dropping or flipping
    the rotation correction leaves an error of order w dt / 2."""
    ffi, lib = ffi_lib
    a, w, dt = 2.0, 0.5, 0.1
    n = int(round(math.pi / 2 / (w * dt)))
    T = n * dt
    nav = make_nav(ffi, lib)
    v0 = np.array(list(nav.v))
    for _ in range(n):
        propagate(ffi, lib, nav, (a * dt, 0.0, 0.0), (0.0, 0.0, w * dt), dt)
    dv = np.array(list(nav.v)) - v0
    exact = a / w * np.array([math.sin(w * T), 1.0 - math.cos(w * T), 0.0])
    assert np.linalg.norm(dv - exact) < 1e-3 * np.linalg.norm(exact)   # (w dt)^2/24 ~ 1e-4 rel
    angle, axis = q_angle_axis(list(nav.q))
    assert angle == pytest.approx(w * T, abs=1e-5) and axis[2] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("theta", [0.2, 0.5, 0.8])
def test_attitude_series_step_matches_the_exact_rotation(ffi_lib, theta):
    """q <- q (x) (1 - th^2/8, th/2 (1 - th^2/24) n), normalised: the rotation angle is
    2 atan(th/2 (1 - th^2/24) / (1 - th^2/8)) = th + O(th^5). Dropping either series term
    makes an error of ~th^3/8 (0.016 rad at 0.5 rad)."""
    ffi, lib = ffi_lib
    axis = np.array([1.0, -2.0, 2.0]) / 3.0
    nav = make_nav(ffi, lib)
    propagate(ffi, lib, nav, (0.0, 0.0, 0.0), theta * axis, 0.1)
    series = 2 * math.atan(theta / 2 * (1 - theta ** 2 / 24) / (1 - theta ** 2 / 8))
    got, ax = q_angle_axis(list(nav.q))
    assert got == pytest.approx(series, abs=3e-6)
    assert abs(got - theta) < theta ** 5 / 400 + 3e-6
    assert ax == pytest.approx(axis, abs=1e-6)
    assert np.array(list(nav.w_body)) == pytest.approx(theta * axis / 0.1, rel=1e-6)


def test_translation_trapezoid_with_point_mass_gravity(ffi_lib):
    ffi, lib = ffi_lib
    gm = 4.9028e12
    nav = make_nav(ffi, lib, gm=gm)
    r0, v0, dt = np.array([SITE_R + 1000.0, 0, 0]), np.array([-10.0, 5.0, 0.0]), 0.5
    nav.r, nav.v = list(r0), list(v0)
    propagate(ffi, lib, nav, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), dt)
    g = -gm / np.linalg.norm(r0) ** 3 * r0
    v1 = v0 + g * dt
    assert np.array(list(nav.v)) == pytest.approx(v1, abs=1e-9)
    assert np.array(list(nav.r)) == pytest.approx(r0 + 0.5 * (v0 + v1) * dt, abs=1e-6)


def test_non_positive_interval_changes_nothing(ffi_lib):
    ffi, lib = ffi_lib
    nav = make_nav(ffi, lib)
    before = bytes(ffi.buffer(nav))
    propagate(ffi, lib, nav, (1.0, 2.0, 3.0), (0.1, 0.0, 0.0), 0.0)
    propagate(ffi, lib, nav, (1.0, 2.0, 3.0), (0.1, 0.0, 0.0), -0.1)
    assert bytes(ffi.buffer(nav)) == before


# ------------------------------------------------------------------ altitude filter
def test_covariance_propagation_is_F_P_Ft_plus_Q(ffi_lib):
    ffi, lib = ffi_lib
    psd = 0.3
    nav = make_nav(ffi, lib, NAV_ACC_PSD=psd)
    nav.p00, nav.p01, nav.p11 = 40.0, -3.0, 2.5
    dt = 0.7
    P = np.array([[40.0, -3.0], [-3.0, 2.5]])
    F = np.array([[1.0, dt], [0.0, 1.0]])
    Q = psd * np.array([[dt ** 3 / 3, dt ** 2 / 2], [dt ** 2 / 2, dt]])
    Pn = F @ P @ F.T + Q
    propagate(ffi, lib, nav, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), dt)
    assert [nav.p00, nav.p01, nav.p11] == pytest.approx([Pn[0, 0], Pn[0, 1], Pn[1, 1]], rel=1e-6)


def nav_over_site(ffi, lib, h, vr, **over):
    """Upright over the site (body +z = MCI +x = up, boresight body -z = nadir), no lever arm."""
    nav = make_nav(ffi, lib, gm=4.9028e12, LRF_POS_X=0.0, LRF_POS_Y=0.0, LRF_POS_Z=0.0, **over)
    nav.q = list(Q_UP)
    nav.r = [SITE_R + h, 0.0, 0.0]
    nav.v = [vr, 0.0, 0.0]
    return nav


@pytest.mark.parametrize("lat", [0.0, 0.25])
def test_lrf_update_is_the_closed_form_kalman_update(ffi_lib, lat):
    ffi, lib = ffi_lib
    sig, rel = 1.5, 0.004
    nav = nav_over_site(ffi, lib, 500.0, -12.0, LRF_SIGMA=sig, LRF_SIGMA_REL=rel, LRF_GATE_MIN=100.0)
    P = np.array([[90.0, 6.0], [6.0, 4.0]])
    nav.p00, nav.p01, nav.p11 = P[0, 0], P[0, 1], P[1, 1]
    rng = 505.0
    H = np.array([[1.0, -lat]])
    x = np.array([500.0, -12.0])
    y = rng - (H @ x)[0]
    R = (sig + rel * rng) ** 2
    S = (H @ P @ H.T)[0, 0] + R
    K = (P @ H.T)[:, 0] / S
    xn = x + K * y
    Pn = P - np.outer(K, H @ P)
    st = lib.fsw_nav_lrf_update(nav, rng, lat)
    assert st == 1   # ACCEPTED
    assert nav.lrf_innovation == pytest.approx(y, abs=2e-4)
    assert lib.fsw_nav_alt(nav) == pytest.approx(xn[0], abs=2e-3)
    assert lib.fsw_nav_vr(nav) == pytest.approx(xn[1], abs=1e-4)
    assert [nav.p00, nav.p01, nav.p11] == pytest.approx([Pn[0, 0], Pn[0, 1], Pn[1, 1]], rel=1e-5)


def test_gate_is_nsigma_times_sqrt_S_with_a_floor(ffi_lib):
    ffi, lib = ffi_lib
    P00, sig, nsig = 100.0, 2.0, 3.0
    gate = nsig * math.sqrt(P00 + sig ** 2)   # 30.6 m
    for dy, status in ((gate - 0.3, 1), (gate + 0.3, 2)):      # ACCEPTED, REJECTED
        nav = nav_over_site(ffi, lib, 400.0, 0.0, LRF_SIGMA=sig, LRF_SIGMA_REL=0.0, LRF_GATE_NSIGMA=nsig,
                            LRF_GATE_MIN=1.0, LRF_GATE_POLICY=1)
        nav.p00, nav.p01, nav.p11 = P00, 0.0, 1.0
        assert lib.fsw_nav_lrf_update(nav, 400.0 + dy, 0.0) == status, dy
    # the floor LRF_GATE_MIN wins over a small n sigma
    nav = nav_over_site(ffi, lib, 400.0, 0.0, LRF_SIGMA=sig, LRF_SIGMA_REL=0.0, LRF_GATE_NSIGMA=nsig,
                        LRF_GATE_MIN=gate + 5.0, LRF_GATE_POLICY=1)
    nav.p00, nav.p01, nav.p11 = P00, 0.0, 1.0
    assert lib.fsw_nav_lrf_update(nav, 400.0 + gate + 3.0, 0.0) == 1


def test_off_nadir_range_and_curvature_drop(ffi_lib):
    """Slant range r at angle a off nadir: height r cos a minus the sphere's drop (r sin a)^2 / (2 R)."""
    ffi, lib = ffi_lib
    a = 0.4
    nav = nav_over_site(ffi, lib, 3000.0, 0.0, LRF_GATE_MIN=1e4)
    # tilt the body by a about MCI y: the boresight (body -z) leaves nadir by a
    tilt = (math.cos(a / 2), 0.0, math.sin(a / 2), 0.0)
    q = np.array([tilt[0] * Q_UP[0] - tilt[2] * Q_UP[2], 0.0, tilt[0] * Q_UP[2] + tilt[2] * Q_UP[0], 0.0])
    nav.q = list(q)
    b = qrot(q, np.array([0.0, 0.0, -1.0]))
    assert -b[0] == pytest.approx(math.cos(a), abs=1e-6)
    rng = 3100.0
    lib.fsw_nav_lrf_update(nav, rng, 0.0)
    z = rng * math.cos(a) - (rng * math.sin(a)) ** 2 / (2 * SITE_R)
    assert nav.lrf_meas_alt == pytest.approx(z, abs=2e-3)


def test_reset_takes_every_state_and_filter_parameter(ffi_lib):
    """Distinct values for every parameter the reset reads: each one lands where it belongs."""
    ffi, lib = ffi_lib
    q = np.array([0.5, -0.3, 0.6, 0.2])
    par = dict(NAV_R0_X=1.1e6, NAV_R0_Y=-1.2e6, NAV_R0_Z=0.7e6, NAV_V0_X=11.0, NAV_V0_Y=-12.0, NAV_V0_Z=13.0,
               NAV_Q0_W=q[0], NAV_Q0_X=q[1], NAV_Q0_Y=q[2], NAV_Q0_Z=q[3], NAV_SIGMA_H0=37.0, NAV_SIGMA_VR0=3.5,
               SITE_R_X=1.0e6, SITE_R_Y=1.2e6, SITE_R_Z=-0.6e6, GM=4.5e12, NAV_ACC_PSD=0.07, LRF_SIGMA=1.7,
               LRF_SIGMA_REL=0.003, LRF_GATE_NSIGMA=4.5, LRF_GATE_MIN=12.0, LRF_REACQ_TOL=6.0, LRF_REACQ_N=7,
               LRF_GATE_POLICY=0, LRF_BORE_X=0.2, LRF_BORE_Y=-0.1, LRF_BORE_Z=-0.9, LRF_POS_X=0.3,
               LRF_POS_Y=-0.4, LRF_POS_Z=-0.7, LRF_MAX_OFFNADIR=0.6)
    nav = make_nav(ffi, lib, gm=4.5e12, **par)
    assert list(nav.r) == [1.1e6, -1.2e6, 0.7e6] and list(nav.v) == [11.0, -12.0, 13.0]
    assert list(nav.q) == pytest.approx(list(q / np.linalg.norm(q)), abs=1e-7)
    assert (nav.p00, nav.p01, nav.p11) == pytest.approx((37.0 ** 2, 0.0, 3.5 ** 2))
    c = nav.cfg
    assert c.site_radius == pytest.approx(math.sqrt(1.0e12 + 1.44e12 + 0.36e12), rel=1e-15)
    assert (c.acc_psd, c.lrf_sigma, c.lrf_sigma_rel, c.gate_nsigma, c.gate_min, c.reacq_tol) == pytest.approx(
        (0.07, 1.7, 0.003, 4.5, 12.0, 6.0), rel=1e-6)
    assert (c.reacq_n, c.gate_policy) == (7, 0)
    b = np.array([0.2, -0.1, -0.9])
    assert list(c.bore_body) == pytest.approx(list(b / np.linalg.norm(b)), abs=1e-7)
    assert list(c.lrf_pos_body) == pytest.approx([0.3, -0.4, -0.7], abs=1e-7)
    assert c.cos_max_offnadir == pytest.approx(math.cos(0.6), abs=1e-6)
    assert nav.lrf_status == 0 and nav.latched_out == 0 and nav.lrf_accepts == 0
    assert lib.fsw_nav_alt(nav) == pytest.approx(np.linalg.norm([1.1e6, -1.2e6, 0.7e6]) - c.site_radius)
    assert lib.fsw_nav_gravity(nav) == pytest.approx(4.5e12 / (1.21e12 + 1.44e12 + 0.49e12), rel=1e-6)


def test_zero_boresight_falls_back_to_body_minus_z(ffi_lib):
    ffi, lib = ffi_lib
    nav = make_nav(ffi, lib, LRF_BORE_X=0.0, LRF_BORE_Y=0.0, LRF_BORE_Z=0.0)
    assert list(nav.cfg.bore_body) == [0.0, 0.0, -1.0]


def test_local_vertical_and_radial_speed(ffi_lib):
    ffi, lib = ffi_lib
    nav = make_nav(ffi, lib)
    r = np.array([1.0e6, -1.3e6, 0.4e6])
    v = np.array([30.0, 20.0, -10.0])
    nav.r, nav.v = list(r), list(v)
    up = ffi.new("float[3]")
    lib.fsw_nav_up(nav, up)
    assert list(up) == pytest.approx(list(r / np.linalg.norm(r)), abs=1e-7)
    assert lib.fsw_nav_vr(nav) == pytest.approx(float(v @ r / np.linalg.norm(r)), rel=1e-6)
    nav.r = [0.0, 0.0, 0.0]
    lib.fsw_nav_up(nav, up)
    assert list(up) == [1.0, 0.0, 0.0] and lib.fsw_nav_vr(nav) == 0.0 and lib.fsw_nav_gravity(nav) == 0.0
