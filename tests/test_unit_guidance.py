"""Guidance (fsw_guidance.c) against closed-form answers, through cffi: each acceleration term's
direction and size in each phase, the braking time-to-go solver (start, Newton, floor), the
hand-over threshold, contingency entry from braking, the thrust-direction slew step, and the
approach/terminal descent-rate schedule. A perfect state is fed to fsw_guid_step() directly."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cfsw import GM, PARAMS, R_MOON, guid

IDLE, BRAKING, APPROACH, TERMINAL, TOUCHDOWN, CONTINGENCY = range(6)
SITE = np.array([R_MOON, 0.0, 0.0])
D = {k: r["default"] for k, r in PARAMS.items()}


def gin_for(ffi, r, v, dt=0.02, locked=1, site=SITE):
    rn = float(np.linalg.norm(r))
    gin = ffi.new("fsw_guid_in_t *")
    gin.alt = rn - R_MOON
    gin.up = list(map(float, r / rn))
    gin.v = list(map(float, v))
    gin.g = GM / rn ** 2
    gin.to_site = list(map(float, site - r)) if site is not None else [0.0, 0.0, 0.0]
    gin.radius = rn
    gin.dt = dt
    gin.lrf_locked = locked
    return gin


def step(ffi, lib, g, r, v, **kw):
    gin = gin_for(ffi, r, v, **kw)
    lib.fsw_guid_step(g, gin)
    return gin


def state_at(downrange, alt, v_east, v_up=0.0, v_north=0.0):
    """Position/velocity `downrange` m east of the site (negative: uprange); east = +y, north = +z."""
    th = downrange / R_MOON
    u = np.array([math.cos(th), math.sin(th), 0.0])
    e = np.array([-math.sin(th), math.cos(th), 0.0])
    return (R_MOON + alt) * u, v_east * e + v_up * u + v_north * np.array([0.0, 0.0, 1.0])


def vec(x):
    return np.array(list(x), float)


# ------------------------------------------------------------------ approach: vertical and horizontal terms
@pytest.mark.parametrize("vr", [-80.0, -40.0, -10.0, 5.0])
def test_approach_vertical_term_is_feedforward_plus_kv_times_rate_error(fc, vr):
    """No site (to_site 0): a_cmd = (a_ff + KV (v_ref - v_r)) up exactly, v_ref from the schedule."""
    ffi, lib = fc
    kv, alt = 0.8, 700.0
    g = guid(ffi, lib, GUID_KV=kv)
    r, v = state_at(0.0, alt, 0.0, v_up=vr)
    step(ffi, lib, g, r, v, site=None)
    assert g.phase == APPROACH
    v_sched = min(D["V_DESCENT_MAX"], math.sqrt(2 * D["A_PLAN"] * (alt - D["H_TERMINAL"])) + D["V_TERMINAL"])
    a_ff = D["A_PLAN"] if v_sched < D["V_DESCENT_MAX"] else 0.0
    assert g.v_ref == pytest.approx(-v_sched, rel=1e-5)
    a_up = a_ff + kv * (-v_sched - vr)
    up = r / np.linalg.norm(r)
    assert vec(g.a_cmd) == pytest.approx(a_up * up, abs=2e-4)
    gm = GM / np.linalg.norm(r) ** 2
    f = min(max(700.0 * (a_up + gm), D["THROTTLE_MIN"] * D["THRUST_MAX"]), D["THRUST_MAX"])
    assert g.throttle == pytest.approx(f / D["THRUST_MAX"], rel=1e-5)
    assert vec(g.thrust_dir) == pytest.approx(up, abs=1e-6)


def test_approach_horizontal_term_is_minus_kh_vh_and_tilts_against_the_motion(fc):
    ffi, lib = fc
    kh = 0.3
    g = guid(ffi, lib, GUID_KH=kh, GUID_AH_MAX=10.0, GUID_TILT_MAX=1.2)
    r, v = state_at(0.0, 700.0, 2.0, v_up=-40.0, v_north=-1.0)
    step(ffi, lib, g, r, v, site=None)
    up = r / np.linalg.norm(r)
    vh = v - (v @ up) * up
    a = vec(g.a_cmd)
    assert a - (a @ up) * up == pytest.approx(-kh * vh, abs=1e-5)
    # thrust: vertical force m (a_up + g), horizontal m a_h: the tilt is their ratio
    a_up = a @ up
    gm = GM / np.linalg.norm(r) ** 2
    fv = min(max(700.0 * (a_up + gm), D["THROTTLE_MIN"] * D["THRUST_MAX"]), D["THRUST_MAX"])
    fh = 700.0 * kh * np.linalg.norm(vh)
    assert fh < fv * math.tan(1.2)                      # not at the tilt limit
    d = vec(g.thrust_dir)
    assert math.atan2(np.linalg.norm(d - (d @ up) * up), d @ up) == pytest.approx(math.atan2(fh, fv), abs=1e-5)
    assert (d - (d @ up) * up) @ vh < 0


def test_horizontal_acceleration_limited_to_ah_max_and_tilt_to_tilt_max(fc):
    ffi, lib = fc
    g = guid(ffi, lib, GUID_KH=1.0, GUID_AH_MAX=0.7, GUID_TILT_MAX=1.4)
    r, v = state_at(0.0, 700.0, 30.0, v_up=-40.0)
    step(ffi, lib, g, r, v, site=None)
    up = r / np.linalg.norm(r)
    a = vec(g.a_cmd)
    assert np.linalg.norm(a - (a @ up) * up) == pytest.approx(0.7, rel=1e-5)
    g2 = guid(ffi, lib, GUID_KH=1.0, GUID_AH_MAX=50.0, GUID_TILT_MAX=0.2)
    step(ffi, lib, g2, r, v, site=None)
    assert math.acos(float(vec(g2.thrust_dir) @ up)) == pytest.approx(0.2, abs=2e-4)


@pytest.mark.parametrize("dist,branch", [(5000.0, "vmax"), (250.0, "sqrt"), (30.0, "linear")])
def test_site_targeting_velocity_reference_branches(fc, dist, branch):
    """|v_h ref| = min(APR_VH_MAX, sqrt(2 APR_AH_PLAN d), APR_KP d) toward the site; on the
    sqrt branch (moving toward the site) the planned deceleration is fed forward."""
    ffi, lib = fc
    kh = 0.5
    g = guid(ffi, lib, GUID_KH=kh, GUID_AH_MAX=50.0, APR_HOLD_ALT=0.0)
    r, v = state_at(-dist, 600.0, 1.0, v_up=-30.0)     # uprange, drifting toward the site (east)
    step(ffi, lib, g, r, v)
    up = r / np.linalg.norm(r)
    east = np.cross([0.0, 0.0, 1.0], up)
    to_site = SITE - r
    d = np.linalg.norm(to_site - (to_site @ up) * up)
    assert g.site_dist == pytest.approx(d, rel=1e-5)
    vs, vl = math.sqrt(2 * D["APR_AH_PLAN"] * d), D["APR_KP"] * d
    vref = min(D["APR_VH_MAX"], vs, vl)
    assert {"vmax": D["APR_VH_MAX"], "sqrt": vs, "linear": vl}[branch] == pytest.approx(vref)
    ff = -D["APR_AH_PLAN"] if branch == "sqrt" else 0.0
    a = vec(g.a_cmd)
    ah_east = (a - (a @ up) * up) @ east
    assert ah_east == pytest.approx(kh * (vref - 1.0) + ff, abs=5e-4)


# ------------------------------------------------------------------ descent-rate schedule
def test_schedule_closed_form_in_approach_contingency_and_terminal(fc):
    ffi, lib = fc
    g = guid(ffi, lib)
    c = ffi.addressof(g.cfg)
    aff = ffi.new("float *")
    for h in (31.0, 100.0, 600.0):
        v = lib.fsw_guid_v_down(c, APPROACH, h, aff)
        assert v == pytest.approx(math.sqrt(2 * D["A_PLAN"] * (h - D["H_TERMINAL"])) + D["V_TERMINAL"], rel=1e-5)
        assert aff[0] == D["A_PLAN"]
        hc = D["H_TERMINAL"] + D["CONT_H_MARGIN"]
        vc = lib.fsw_guid_v_down(c, CONTINGENCY, h, aff)
        exp = math.sqrt(2 * D["A_PLAN_CONT"] * (h - hc)) + D["V_TERMINAL"] if h > hc else D["V_TERMINAL"]
        assert vc == pytest.approx(min(exp, D["V_DESCENT_MAX_CONT"]), rel=1e-5)
        assert aff[0] == (D["A_PLAN_CONT"] if h > hc and exp < D["V_DESCENT_MAX_CONT"] else 0.0)
        assert lib.fsw_guid_v_down(c, TERMINAL, h, aff) == D["V_TERMINAL"] and aff[0] == 0.0
    assert lib.fsw_guid_v_down(c, APPROACH, 2000.0, aff) == D["V_DESCENT_MAX"] and aff[0] == 0.0
    assert lib.fsw_guid_v_down(c, APPROACH, D["H_TERMINAL"], aff) == D["V_TERMINAL"] and aff[0] == 0.0


def test_terminal_and_touchdown_thresholds(fc):
    ffi, lib = fc
    g = guid(ffi, lib)
    r, v = state_at(0.0, D["H_TERMINAL"] + 0.5, 0.0, v_up=-1.0)
    step(ffi, lib, g, r, v, site=None)
    assert g.phase == APPROACH
    r, v = state_at(0.0, D["H_TERMINAL"], 0.0, v_up=-1.0)           # exactly at H_TERMINAL: terminal
    gin = step(ffi, lib, g, r, v, site=None)
    assert gin.alt == D["H_TERMINAL"] and g.phase == TERMINAL and g.v_ref == pytest.approx(-D["V_TERMINAL"])
    r, v = state_at(0.0, D["TD_CUT_ALT"] + 0.05, 0.0, v_up=-1.0)
    step(ffi, lib, g, r, v, site=None)
    assert g.phase == TERMINAL and g.engine_on == 1
    r, v = state_at(0.0, D["TD_CUT_ALT"] - 0.05, 0.0, v_up=-1.0)
    step(ffi, lib, g, r, v, site=None)
    assert g.phase == TOUCHDOWN and g.engine_on == 0 and g.throttle == 0.0
    assert vec(g.a_cmd) == pytest.approx([0, 0, 0]) and vec(g.thrust_dir) == pytest.approx(r / np.linalg.norm(r))


def test_approach_hover_hold_accumulates_time_and_ends_after_hold_tmax(fc):
    ffi, lib = fc
    g = guid(ffi, lib, APR_HOLD_TMAX=1.0)
    r, v = state_at(-300.0, D["APR_HOLD_ALT"] + 0.5, 0.0)
    for k in range(49):
        step(ffi, lib, g, r, v, dt=0.02)
        assert g.v_ref == pytest.approx(0.0, abs=1.5) and not g.hold_done   # holding at APR_HOLD_ALT
    assert g.hold_t == pytest.approx(0.98, abs=1e-4)
    for k in range(3):
        step(ffi, lib, g, r, v, dt=0.02)
    assert g.hold_done == 1 and g.v_ref < -5.0


# ------------------------------------------------------------------ braking
def track_frame(r, v):
    rn = np.linalg.norm(r)
    up = r / rn
    ts = SITE - r
    dv = ts @ up
    dh = ts - dv * up
    dist = np.linalg.norm(dh)
    ed = dh / dist
    ec = np.cross(up, ed)
    theta = math.atan2(dist, rn + dv)
    return rn, up, ed, ec, rn * theta, dist


def cubic(T, dx, vd):
    J, afd, vfd = D["BRK_JERK"], -D["BRK_GATE_AH"], D["BRK_GATE_VH"]
    return ((J * T - 6 * afd) * T + 6 * (3 * vfd + vd)) * T - 24 * dx


def test_braking_time_to_go_solves_the_jerk_condition_from_the_first_cycle(fc):
    ffi, lib = fc
    g = guid(ffi, lib, MASS0=1000.0)
    r, v = state_at(-300e3, 14000.0, 1500.0, v_up=-5.0, v_north=3.0)
    step(ffi, lib, g, r, v)
    assert g.phase == BRAKING
    rn, up, ed, ec, xgo, dist = track_frame(r, v)
    dx, vd = xgo - D["BRK_GATE_RANGE"], v @ ed
    assert g.x_go == pytest.approx(xgo, rel=1e-5)
    T = g.tgo
    # four Newton steps from 2 dx / (vd + vf) reach the root of the cubic
    assert abs(cubic(T, dx, vd)) < 1e-4 * 24 * dx and 0.1 < T < 1e4


def test_braking_acceleration_terms_direction_and_size(fc):
    """a = 12 dp / T^2 - 6 (v_f + v) / T + a_f per track axis; thrust = a - g_eff with gravity,
    centrifugal (v_h^2 / r) and Coriolis (-v_r v_h / r) of the rotating track frame."""
    ffi, lib = fc
    m = 1000.0
    g = guid(ffi, lib, MASS0=m)
    r, v = state_at(-300e3, 14000.0, 1500.0, v_up=-20.0, v_north=8.0)
    gin = step(ffi, lib, g, r, v)
    rn, up, ed, ec, xgo, dist = track_frame(r, v)
    T = g.tgo
    vu, vd, vc = v @ up, v @ ed, v @ ec
    dx, dz = xgo - D["BRK_GATE_RANGE"], D["BRK_GATE_ALT"] - (rn - R_MOON)
    ad = 12 * dx / T ** 2 - 6 * (D["BRK_GATE_VH"] + vd) / T - D["BRK_GATE_AH"]
    au = 12 * dz / T ** 2 - 6 * (-D["BRK_GATE_VDOWN"] + vu) / T + D["BRK_GATE_AUP"]
    ac = -6 * vc / T
    a = vec(g.a_cmd)
    assert a @ ed == pytest.approx(ad, rel=1e-4) and a @ up == pytest.approx(au, abs=2e-4 + 1e-4 * abs(au))
    assert a @ ec == pytest.approx(ac, rel=1e-3) and ac < 0      # cross-track velocity nulled
    gm = gin.g
    tu = au + gm - (vd ** 2 + vc ** 2) / rn
    td = ad + vu * vd / rn
    tc = ac + vu * vc / rn
    F = m * (tu * up + td * ed + tc * ec)
    assert vec(g.thrust_dir) == pytest.approx(F / np.linalg.norm(F), abs=2e-5)   # first cycle: no slew
    assert g.throttle == pytest.approx(np.linalg.norm(F) / D["THRUST_MAX"], rel=1e-4)
    assert g.v_ref == pytest.approx(-D["BRK_GATE_VDOWN"])


def test_braking_next_cycle_starts_newton_from_tgo_minus_dt(fc):
    ffi, lib = fc
    g = guid(ffi, lib, MASS0=1000.0)
    r, v = state_at(-300e3, 14000.0, 1500.0)
    step(ffi, lib, g, r, v, dt=0.5)
    T0 = g.tgo
    step(ffi, lib, g, r + v * 0.5, v, dt=0.5)     # coasting half a second closer
    rn, up, ed, ec, xgo, dist = track_frame(r + v * 0.5, v)
    assert abs(cubic(g.tgo, xgo - D["BRK_GATE_RANGE"], v @ ed)) < 1e-4 * 24 * xgo
    assert g.tgo < T0


def test_tgo_floor_and_hand_over_threshold(fc):
    """T <= BRK_TGO_END hands over to approach in the same cycle (the approach law then
    commands); just above it, braking continues. Past the gate (dx < 0) T floors at 0.1 s."""
    ffi, lib = fc
    r, v = state_at(-300e3, 14000.0, 1500.0)
    g = guid(ffi, lib, MASS0=1000.0)
    step(ffi, lib, g, r, v)
    T = g.tgo
    g_hi = guid(ffi, lib, MASS0=1000.0, BRK_TGO_END=T * 0.999)
    step(ffi, lib, g_hi, r, v)
    assert g_hi.phase == BRAKING and g_hi.tgo == pytest.approx(T, rel=1e-6)
    g_lo = guid(ffi, lib, MASS0=1000.0, BRK_TGO_END=T * 1.001)
    step(ffi, lib, g_lo, r, v)
    assert g_lo.phase == APPROACH
    # past the gate: the along-track distance to go is negative; T floors at 0.1 s and hands over
    g2 = guid(ffi, lib, MASS0=1000.0, BRK_GATE_RANGE=5000.0, BRK_START_ALT=1000.0, BRK_TGO_END=0.1)
    r2, v2 = state_at(-3000.0, 6000.0, 300.0)
    step(ffi, lib, g2, r2, v2)
    assert g2.tgo == pytest.approx(0.1) and g2.phase == APPROACH


def test_braking_below_half_the_gate_hands_over_and_enters_contingency_without_lrf(fc):
    ffi, lib = fc
    r, v = state_at(-300e3, 14000.0, 1500.0)
    for locked, phase in ((0, CONTINGENCY), (1, APPROACH)):
        g = guid(ffi, lib, MASS0=1000.0, CONTINGENCY_ALT=2000.0)
        step(ffi, lib, g, r, v, locked=locked)
        assert g.phase == BRAKING
        r2, v2 = state_at(-100e3, 0.5 * D["BRK_GATE_ALT"] - 10.0, 300.0, v_up=-50.0)
        step(ffi, lib, g, r2, v2, locked=locked)
        assert g.phase == phase
        if phase == CONTINGENCY:
            assert g.v_ref == pytest.approx(-D["V_DESCENT_MAX_CONT"])


def test_slew_step_turns_exactly_rate_times_dt_toward_the_target(fc):
    ffi, lib = fc
    rate, dt = 0.05, 0.2
    g = guid(ffi, lib, MASS0=1000.0, BRK_RATE_MAX=rate)
    r, v = state_at(-300e3, 14000.0, 1500.0)
    step(ffi, lib, g, r, v, dt=dt)
    target = vec(g.thrust_dir)
    # start 0.3 rad away from the target, rotated about the track's cross axis
    rn, up, ed, ec, *_ = track_frame(r, v)
    k = ec
    d0 = target * math.cos(0.3) + np.cross(k, target) * math.sin(0.3) + k * (k @ target) * (1 - math.cos(0.3))
    g.thrust_dir = list(d0)
    step(ffi, lib, g, r, v, dt=dt)
    d1 = vec(g.thrust_dir)
    ang = lambda a, b: math.atan2(np.linalg.norm(np.cross(a, b)), a @ b)   # noqa: E731
    assert ang(d0, d1) == pytest.approx(rate * dt, abs=2e-5)
    assert ang(d1, target) == pytest.approx(0.3 - rate * dt, abs=5e-5)
    assert np.linalg.norm(d1) == pytest.approx(1.0, abs=1e-6)
    # within one step of the target: it is taken as is
    d_near = target * math.cos(0.005) + np.cross(k, target) * math.sin(0.005)
    g.thrust_dir = list(d_near)
    step(ffi, lib, g, r, v, dt=dt)
    assert vec(g.thrust_dir) == pytest.approx(target, abs=2e-6)


def test_burn_uses_the_rocket_equation_rate_and_only_while_the_engine_burns(fc):
    ffi, lib = fc
    g = guid(ffi, lib, MASS0=800.0, ISP=300.0, THRUST_MAX=5000.0)
    lib.fsw_guid_burn(g, 0.4, 2.0)
    assert g.mass == pytest.approx(800.0 - 0.4 * 5000.0 / (300.0 * 9.80665) * 2.0, rel=1e-6)
    g.engine_on = 0
    lib.fsw_guid_burn(g, 0.4, 2.0)
    assert g.mass == pytest.approx(800.0 - 0.4 * 5000.0 / (300.0 * 9.80665) * 2.0, rel=1e-6)
    g.engine_on = 1
    lib.fsw_guid_burn(g, 1.0, 1e6)
    assert g.mass == 1.0


def test_configure_takes_every_parameter_it_reads(fc):
    ffi, lib = fc
    par = dict(A_PLAN=1.7, V_DESCENT_MAX=55.0, V_TERMINAL=1.3, H_TERMINAL=27.0, TD_CUT_ALT=0.7, GUID_KV=0.9,
               GUID_KH=0.35, GUID_AH_MAX=1.9, GUID_TILT_MAX=0.4, CONTINGENCY_ENABLE=1, CONTINGENCY_ALT=1800.0,
               A_PLAN_CONT=2.7, V_DESCENT_MAX_CONT=22.0, CONT_H_MARGIN=45.0, THRUST_MAX=4500.0,
               THROTTLE_MIN=0.15, ISP=310.0, MASS0=812.0)
    g = guid(ffi, lib, **par)
    c = g.cfg
    got = (c.a_plan, c.v_max, c.v_term, c.h_term, c.td_cut, c.kv, c.kh, c.ah_max, c.cont_alt, c.a_cont,
           c.v_max_cont, c.cont_margin, c.thrust_max, c.throttle_min)
    want = (1.7, 55.0, 1.3, 27.0, 0.7, 0.9, 0.35, 1.9, 1800.0, 2.7, 22.0, 45.0, 4500.0, 0.15)
    assert got == pytest.approx(want, rel=1e-6)
    assert c.tan_tilt_max == pytest.approx(math.tan(0.4), rel=1e-5)
    assert c.inv_ve == pytest.approx(1.0 / (310.0 * 9.80665), rel=1e-6)
    assert c.cont_enable == 1 and guid(ffi, lib, CONTINGENCY_ENABLE=0).cfg.cont_enable == 0
    assert g.mass == pytest.approx(812.0) and g.phase == BRAKING and g.engine_on == 1 and g.started == 0
