"""Braking guidance and site targeting of the C flight code (fsw_guidance.c), through cffi.

The braking law is Apollo-style explicit guidance (quadratic acceleration profile to the
high gate, time-to-go from the along-track jerk condition) in the local track frame; see
docs/flight-code.md. These tests drive fsw_guid_step() directly with a perfect state:
a point-mass lander in MCI over a spherical Moon, thrust along the commanded direction
(no attitude lag), so they check the law itself, not the attitude loop or the navigation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from cfsw import G0, GM, R_MOON, guid
IDLE, BRAKING, APPROACH, TERMINAL, TOUCHDOWN, CONTINGENCY = range(6)
SITE = np.array([R_MOON, 0.0, 0.0])


def state_at(downrange, alt, v_east, v_up=0.0):
    """Position/velocity `downrange` m east of the site (negative: uprange), flying east (+y)."""
    th = downrange / R_MOON
    u = np.array([math.cos(th), math.sin(th), 0.0])
    e = np.array([-math.sin(th), math.cos(th), 0.0])
    return (R_MOON + alt) * u, v_east * e + v_up * u


def step(ffi, lib, g, r, v, dt=0.02, locked=1):
    rn = float(np.linalg.norm(r))
    up = r / rn
    gin = ffi.new("fsw_guid_in_t *")
    gin.alt = rn - R_MOON
    gin.up = list(map(float, up))
    gin.v = list(map(float, v))
    gin.g = GM / rn ** 2
    gin.to_site = list(map(float, SITE - r))
    gin.radius = rn
    gin.dt = dt
    gin.lrf_locked = locked
    lib.fsw_guid_step(g, gin)
    return g


def pdi():
    return state_at(-450e3, 15000.0, 1690.0)


# ------------------------------------------------------------------ helpers
def test_atan2_series_matches_libm(fc):
    ffi, lib = fc
    for a in np.linspace(0.0, 3.1, 200):
        for n in (1.0, 1e-3, 2e6):
            got = lib.fsw_guid_atan2_pos(n * math.sin(a), n * math.cos(a))
            assert got == pytest.approx(a, abs=1e-6 if a < 2.5 else 1e-5), (a, n)  # float near pi
    assert lib.fsw_guid_atan2_pos(0.0, 0.0) == 0.0


# ------------------------------------------------------------------ phase entry
def test_pdi_state_starts_braking_retrograde_near_planned_throttle(fc):
    ffi, lib = fc
    g = guid(ffi, lib, MASS0=1000.0)
    r, v = pdi()
    step(ffi, lib, g, r, v)
    assert g.phase == BRAKING and g.engine_on == 1
    d = np.array(list(g.thrust_dir))
    up = r / np.linalg.norm(r)
    east = v / np.linalg.norm(v)
    assert float(d @ east) < -0.95           # retrograde-ish
    assert 0.0 < float(d @ up) < 0.3         # a little lift: centrifugal ~ gravity at 1.69 km/s
    # the BRK_JERK profile: ~0.5 at PDI, rising to ~0.8 at 3 minutes, then down (margin to max thrust)
    assert 0.4 < g.throttle < 0.9
    assert 450.0 < g.tgo < 650.0             # ~10 minutes to the high gate
    assert g.x_go == pytest.approx(450e3 * (R_MOON + 15000.0) / R_MOON, rel=2e-3)


@pytest.mark.parametrize("alt,v_east,over", [
    (3000.0, 15.0, {}),                      # terminal-descent start: approach
    (15000.0, 100.0, {}),                    # slow: approach
    (15000.0, 1690.0, {"BRK_ENABLE": 0}),    # braking disabled
])
def test_braking_only_from_a_powered_descent_start(fc, alt, v_east, over):
    ffi, lib = fc
    g = guid(ffi, lib, **over)
    r, v = state_at(-1200.0 if alt < 5000 else -450e3, alt, v_east, -60.0 if alt < 5000 else 0.0)
    assert step(ffi, lib, g, r, v).phase == APPROACH


def test_no_site_vector_means_no_braking_and_no_targeting(fc):
    ffi, lib = fc
    g = guid(ffi, lib)
    gin = ffi.new("fsw_guid_in_t *")  # to_site all zero (e.g. a caller without a site)
    gin.alt, gin.up, gin.v, gin.g, gin.lrf_locked = 15000.0, [1.0, 0.0, 0.0], [0.0, 1690.0, 0.0], 1.6, 1
    lib.fsw_guid_step(g, gin)
    assert g.phase == APPROACH


def test_thrust_direction_slews_at_most_brk_rate_max(fc):
    ffi, lib = fc
    g = guid(ffi, lib, MASS0=1000.0, BRK_RATE_MAX=0.05)
    r, v = pdi()
    step(ffi, lib, g, r, v)
    d0 = np.array(list(g.thrust_dir))
    # a state with a very different command (far too high and fast downward): the direction may turn only 1 mrad
    r2, v2 = state_at(-450e3, 15000.0, 1690.0, v_up=-300.0)
    step(ffi, lib, g, r2, v2, dt=0.02)
    d1 = np.array(list(g.thrust_dir))
    ang = math.asin(float(np.linalg.norm(np.cross(d0, d1))))   # float directions: asin of the cross is precise
    assert 0.0009 < ang <= 0.05 * 0.02 * 1.05


# ------------------------------------------------------------------ closed loop on a point mass
def fly_braking(ffi, lib, r, v, m0=1000.0, dt=0.1, **over):
    g = guid(ffi, lib, MASS0=m0, **over)
    m = m0
    tmax, tmin = 4000.0, 0.2
    log = []
    t = 0.0
    while t < 900.0:
        step(ffi, lib, g, r, v, dt=dt)
        rn = np.linalg.norm(r)
        up = r / rn
        log.append(dict(t=t, phase=g.phase, tgo=g.tgo, thr=g.throttle, alt=rn - R_MOON,
                        d=np.array(list(g.thrust_dir)), r=r.copy(), v=v.copy(), m=m))
        if g.phase != BRAKING:
            break
        thr = min(max(g.throttle, tmin), 1.0)
        a = thr * tmax / m * np.array(list(g.thrust_dir)) - GM * r / rn ** 3
        v = v + a * dt
        r = r + v * dt
        m -= thr * tmax / (320.0 * G0) * dt
        lib.fsw_guid_burn(g, thr, dt)
        t += dt
    return g, log


def track(r, v):
    """(downrange to the site along the ground, altitude, along-track speed, vertical speed)."""
    rn = np.linalg.norm(r)
    up = r / rn
    th = math.atan2(np.linalg.norm(np.cross(up, SITE / R_MOON)), float(up @ SITE) / R_MOON)
    e = np.cross(np.array([0.0, 0.0, 1.0]), up)
    return R_MOON * th, rn - R_MOON, float(v @ e), float(v @ up)


def test_braking_reaches_the_high_gate_and_hands_over_to_approach(fc):
    ffi, lib = fc
    r, v = pdi()
    g, log = fly_braking(ffi, lib, r, v)
    end = log[-1]
    assert end["phase"] == APPROACH, "braking did not hand over"
    # hand-over at BRK_TGO_END = 10 s before the gate (2,500 m up, 800 m uprange, 20 m/s, 40 m/s down)
    x, h, vd, vu = track(end["r"], end["v"])
    assert 450.0 < end["t"] < 650.0
    assert 2700.0 < h < 3100.0 and 800.0 < x < 1400.0, (h, x)
    assert 15.0 < vd < 40.0 and -50.0 < vu < -30.0, (vd, vu)
    # the thrust never saturates (margin kept), altitude stays well above the gate before the end
    thr = [e["thr"] for e in log]
    assert max(thr) < 0.95 and min(e["alt"] for e in log) > 2500.0
    # propellant: ~430-450 kg of the 550 kg load for the braking phase
    assert 400.0 < 1000.0 - end["m"] < 460.0


def test_time_to_go_converges_and_counts_down(fc):
    ffi, lib = fc
    r, v = pdi()
    _, log = fly_braking(ffi, lib, r, v)
    tg = np.array([e["tgo"] for e in log if e["phase"] == BRAKING])
    ts = np.array([e["t"] for e in log if e["phase"] == BRAKING])
    # after the first seconds T + t is constant to a few seconds: the predicted arrival time does not wander
    arrival = tg + ts
    settled = arrival[ts > 20.0]
    assert settled.max() - settled.min() < 5.0
    assert abs(arrival[-1] - (ts[-1] + tg[-1])) < 1e-6 and tg[-1] <= 10.0 + 0.2


def test_thrust_turns_slowly_through_the_braking_phase(fc):
    ffi, lib = fc
    r, v = pdi()
    _, log = fly_braking(ffi, lib, r, v)
    brk = [e for e in log if e["phase"] == BRAKING]   # (the last entry is the approach law's first command)
    rates = [math.asin(min(1.0, float(np.linalg.norm(np.cross(a["d"], b["d"]))))) / 0.1 for a, b in zip(brk[1:], brk[2:])]
    assert max(rates) <= 0.05 * 1.05
    # pitch from near-horizontal at PDI to within ~35 deg of vertical at the hand-over
    def tilt(e):
        return math.degrees(math.acos(float(e["d"] @ (e["r"] / np.linalg.norm(e["r"])))))
    assert tilt(brk[1]) > 75.0 and tilt(brk[-1]) < 40.0


def test_curvature_is_in_the_frame_the_same_law_from_further_out(fc):
    ffi, lib = fc
    # 500 km out: more track curvature (16.5 deg), the gate is still reached
    r, v = state_at(-500e3, 15000.0, 1690.0)
    _, log = fly_braking(ffi, lib, r, v)
    x, h, vd, vu = track(log[-1]["r"], log[-1]["v"])
    assert log[-1]["phase"] == APPROACH and 2600.0 < h < 3200.0 and 700.0 < x < 1500.0


# ------------------------------------------------------------------ site targeting
def test_approach_steers_toward_the_site(fc):
    ffi, lib = fc
    g = guid(ffi, lib)
    r, v = state_at(-1000.0, 2000.0, 0.0, v_up=-40.0)
    step(ffi, lib, g, r, v)
    assert g.phase == APPROACH
    east = np.cross([0.0, 0.0, 1.0], r / np.linalg.norm(r))          # local east
    assert float(np.array(list(g.thrust_dir)) @ east) > 0.05      # tilted toward the site (east)
    # with APR_VH_MAX = 0 only the horizontal velocity is nulled (no tilt at zero velocity)
    g0 = guid(ffi, lib, APR_VH_MAX=0.0)
    step(ffi, lib, g0, r, v)
    assert abs(float(np.array(list(g0.thrust_dir)) @ east)) < 1e-6


def test_approach_holds_altitude_until_over_the_site(fc):
    ffi, lib = fc
    g = guid(ffi, lib)
    r, v = state_at(-300.0, 100.0, 0.0)
    step(ffi, lib, g, r, v)
    assert g.phase == APPROACH and g.v_ref == pytest.approx(0.0)     # hover: site 300 m away
    g2 = guid(ffi, lib)
    r, v = state_at(-5.0, 100.0, 0.0)
    step(ffi, lib, g2, r, v)
    assert g2.v_ref < -10.0                                          # over the site: descend
    g3 = guid(ffi, lib, APR_HOLD_ALT=0.0)
    r, v = state_at(-300.0, 100.0, 0.0)
    step(ffi, lib, g3, r, v)
    assert g3.v_ref < -10.0                                          # hold disabled
