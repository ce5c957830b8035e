"""Plant verification against analytic solutions and conserved quantities.

Each test states its tolerance and why it is what it is.
"""

import math

import numpy as np
import pytest

from harness.frames import (G0, MOON_GM, MOON_RADIUS, SiteFrame, quat_rotate,
                            vcross, vdot, vnorm)
from harness.lander import LanderSpec, load_lander
from harness.plant import (ActuatorCommand, Plant, PlantState, engine_throttle_profile,
                           initial_state)
from harness.terrain import flat

SITE = SiteFrame()
OFF = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))


def ideal_engine(lander, **kw):
    """Reference lander with an ideal engine (no lag, no slew limit, no misalignment)."""
    return lander.replace(engine_time_constant_s=0.0, throttle_slew_per_s=math.inf,
                          thrust_misalignment_rad=0.0, **kw)


@pytest.fixture(scope="module")
def ref():
    return load_lander("reference")


# --------------------------------------------------------------- orbit
def test_circular_orbit_100km_conserves_energy_and_momentum(ref):
    """Circular orbit at 100 km, one full period with dt = 1 s.

    Tolerances: RK4's global error scales as (dt/T)^4 ~ 4e-16 per orbit here;
    we allow 1e-10 relative in specific energy and angular momentum, and 1 m
    in closing the orbit (round-off over 7,000 steps is ~1e-6 m)."""
    r0 = MOON_RADIUS + 100e3
    v0 = math.sqrt(MOON_GM / r0)
    period = 2 * math.pi * math.sqrt(r0 ** 3 / MOON_GM)
    st = PlantState(0.0, (r0, 0.0, 0.0), (0.0, v0 * math.cos(0.3), v0 * math.sin(0.3)),
                    SITE.q_upright(), (0.0, 0.0, 0.0), 0.0, 100.0, 10.0)
    p = Plant(ref, flat(SITE), st)

    def energy(s):
        return 0.5 * vdot(s.v_mci, s.v_mci) - MOON_GM / vnorm(s.r_mci)

    e0, h0 = energy(p.state), vcross(p.state.r_mci, p.state.v_mci)
    m0 = p.state.mass_kg
    assert m0 == ref.dry_mass_kg + 110.0  # the plant derives mass from its parts
    n = int(period // 1.0)
    for _ in range(n):
        p.step(OFF, 1.0)
    p.step(OFF, period - n * 1.0)
    s = p.state
    assert s.t_s == pytest.approx(period, abs=1e-9)
    assert abs(energy(s) - e0) / abs(e0) < 1e-10
    h = vcross(s.r_mci, s.v_mci)
    assert vnorm(tuple(a - b for a, b in zip(h, h0))) / vnorm(h0) < 1e-10
    assert vnorm(tuple(a - b for a, b in zip(s.r_mci, st.r_mci))) < 1.0
    assert abs(vnorm(s.r_mci) - r0) < 0.01
    assert s.mass_kg == m0  # engine off: no propellant used
    assert not p.touched_down


# ---------------------------------------------------------- free fall
def radial_fall_time(r0, r, gm=MOON_GM):
    """Exact time to fall from rest at r0 to r in a point-mass field
    (radial Kepler orbit): t = sqrt(r0^3 / 2GM) (sqrt(x(1-x)) + acos(sqrt x)), x = r/r0."""
    x = r / r0
    return math.sqrt(r0 ** 3 / (2 * gm)) * (math.sqrt(x * (1 - x)) + math.acos(math.sqrt(x)))


def test_vertical_free_fall_from_5km_matches_radial_kepler(ref):
    """Drop from rest at 5 km; compare every step with the exact radial
    Kepler fall and the touchdown instant/speed with the closed form.

    Tolerances: 1e-6 s in the time at which each radius is reached (RK4 at
    dt = 0.1 s is ~1e-10 accurate); contact is found to |h| < 1 mm, i.e.
    <= 1e-5 s at ~127 m/s; impact speed within 1e-4 m/s."""
    h0 = 5000.0
    st = initial_state(SITE, ref, h0)
    p = Plant(ref, flat(SITE), st)
    r0 = MOON_RADIUS + h0
    while not p.touched_down:
        s = p.step(OFF, 0.1)
        if not p.touched_down:
            assert s.t_s == pytest.approx(radial_fall_time(r0, vnorm(s.r_mci)), abs=1e-6)
        # a radial fall stays radial
        assert vnorm(vcross(s.r_mci, s.v_mci)) / (vnorm(s.r_mci) * vnorm(s.v_mci) + 1e-30) < 1e-12
    td = p.touchdown_state
    assert p.altitude_agl() == pytest.approx(0.0, abs=1e-3)
    assert td.t_s == pytest.approx(radial_fall_time(r0, MOON_RADIUS), abs=1e-5)
    v_exact = math.sqrt(2 * MOON_GM * (1 / MOON_RADIUS - 1 / r0))
    assert vnorm(td.v_mci) == pytest.approx(v_exact, abs=1e-4)
    # uniform-g sanity check (differs by the gravity gradient: ~0.3 %)
    g = MOON_GM / MOON_RADIUS ** 2
    assert vnorm(td.v_mci) == pytest.approx(math.sqrt(2 * g * h0), rel=5e-3)
    # after touchdown the plant does not move
    t_td = p.state.t_s
    p.step(OFF, 0.1)
    assert p.state.t_s == t_td


def test_touchdown_over_raised_flat_terrain(ref):
    """Contact is detected against the terrain, not the sphere: 100 m above a
    50 m plateau falls 50 m (uniform-g closed form within 0.1 % there)."""
    st = initial_state(SITE, ref, 100.0)
    p = Plant(ref, flat(SITE, 50.0), st)
    while not p.touched_down:
        p.step(OFF, 0.02)
    g = MOON_GM / (MOON_RADIUS + 75.0) ** 2
    assert p.state.t_s == pytest.approx(math.sqrt(2 * 50.0 / g), rel=1e-3)
    assert p.altitude_agl() == pytest.approx(0.0, abs=1e-3)


# ------------------------------------------------------ rocket equation
def full_thrust_in_free_space(ref, **initial):
    """An ideal-engine lander 100 km up, upright, engine already at full throttle, gravity off
    (gm = 0): ``(lander, initial state, plant, the full-thrust command)``."""
    L = ideal_engine(ref)
    st = initial_state(SITE, L, 100e3, throttle=1.0, **initial)
    return L, st, Plant(L, flat(SITE), st, gm=0.0), ActuatorCommand(1.0, True, (0.0, 0.0, 0.0))


def test_constant_thrust_burn_matches_rocket_equation(ref):
    """Free space (gm = 0), ideal engine at full thrust for 60 s.

    m1 = m0 - T t / (Isp g0) and dv = Isp g0 ln(m0/m1) exactly; RK4 with
    the closed-form mass integrates T/m(t) with error ~1e-12 relative. Allow
    1e-9 relative."""
    L, st, p, on = full_thrust_in_free_space(ref)
    for _ in range(600):
        p.step(on, 0.1)
    s = p.state
    ve = L.isp_s * G0
    m0 = st.mass_kg
    m1 = m0 - L.thrust_max_n * 60.0 / ve
    assert s.mass_kg == pytest.approx(m1, rel=1e-12)
    assert s.propellant_kg == pytest.approx(st.propellant_kg - L.thrust_max_n * 60.0 / ve, rel=1e-12)
    dv = vnorm(tuple(a - b for a, b in zip(s.v_mci, st.v_mci)))
    assert dv == pytest.approx(ve * math.log(m0 / m1), rel=1e-9)
    # along body +z = local up (upright attitude), no rotation induced
    up = SITE.up_mci
    assert vdot(tuple(a - b for a, b in zip(s.v_mci, st.v_mci)), up) == pytest.approx(dv, rel=1e-12)
    assert vnorm(s.w_body) < 1e-15
    # distance: x(t) = ve [ (t - m/mdot) ln(m0/m) ... ] closed form
    mdot = L.thrust_max_n / ve
    t = 60.0
    x = ve * (t - (m1 / mdot) * math.log(m0 / m1))
    dr = vdot(tuple(a - b for a, b in zip(s.r_mci, st.r_mci)), up)
    assert dr == pytest.approx(x, rel=1e-9)


def test_propellant_depletion_cuts_thrust_at_the_right_instant(ref):
    """5 kg of propellant at full thrust lasts 5 * ve / T = 3.92 s; the step
    is split there. Delta-v must equal ve ln(m0/(m0-5)) to 1e-9."""
    L, st, p, on = full_thrust_in_free_space(ref, propellant_kg=5.0)
    for _ in range(100):
        p.step(on, 0.1)
    s = p.state
    ve = L.isp_s * G0
    assert s.propellant_kg == 0.0
    assert p.flameout and s.thrust_n == 0.0
    dv = vnorm(tuple(a - b for a, b in zip(s.v_mci, st.v_mci)))
    assert dv == pytest.approx(ve * math.log(st.mass_kg / (st.mass_kg - 5.0)), rel=1e-9)
    p.step(on, 0.1)
    assert p.state.thrust_n == 0.0


# ------------------------------------------------------------- engine
def test_engine_first_order_lag_matches_closed_form(ref):
    """Step from 0 to throttle 0.8 with tau = 0.15 s, no slew limit:
    f(t) = 0.8 (1 - exp(-t/tau)); propellant used = T_max/ve * 0.8 (t - tau(1 - e^-t/tau)).
    Exact (closed-form engine state): 1e-12 on f, 1e-9 relative on mass."""
    L = ref.replace(throttle_slew_per_s=math.inf, thrust_misalignment_rad=0.0)
    st = initial_state(SITE, L, 100e3)
    p = Plant(L, flat(SITE), st, gm=0.0)
    cmd = ActuatorCommand(0.8, True, (0.0, 0.0, 0.0))
    tau = L.engine_time_constant_s
    for k in range(1, 51):
        s = p.step(cmd, 0.01)
        t = 0.01 * k
        assert s.throttle == pytest.approx(0.8 * (1 - math.exp(-t / tau)), abs=1e-12)
    ve = L.isp_s * G0
    used = L.thrust_max_n / ve * 0.8 * (0.5 - tau * (1 - math.exp(-0.5 / tau)))
    # Simpson on an exponential with h = 5 ms: relative error ~ (h/tau)^4/180 ~ 1e-8
    assert st.propellant_kg - p.state.propellant_kg == pytest.approx(used, rel=1e-7)


def test_engine_slew_limit_min_max_throttle_and_off(ref):
    L = ref.replace(engine_time_constant_s=0.0, throttle_slew_per_s=0.5)
    st = initial_state(SITE, L, 100e3)
    p = Plant(L, flat(SITE), st, gm=0.0)
    # command 1.0: ramps at 0.5 / s
    for k in range(1, 11):
        s = p.step(ActuatorCommand(1.0, True, (0.0, 0.0, 0.0)), 0.1)
        assert s.throttle == pytest.approx(min(1.0, 0.05 * k), abs=1e-12)
    # below minimum throttle while on: clamped to throttle_min
    for _ in range(40):
        s = p.step(ActuatorCommand(0.01, True, (0.0, 0.0, 0.0)), 0.1)
    assert s.throttle == pytest.approx(L.throttle_min, abs=1e-12)
    # above max: clamped to throttle_max
    L2 = L.replace(throttle_max=0.9)
    p2 = Plant(L2, flat(SITE), st.replace(throttle=0.9, thrust_n=0.9 * L2.thrust_max_n), gm=0.0)
    s = p2.step(ActuatorCommand(5.0, True, (0.0, 0.0, 0.0)), 0.1)
    assert s.throttle == pytest.approx(0.9)
    # engine off ramps down to zero, NaN command is treated as 0 (-> min while on)
    for _ in range(30):
        s = p.step(ActuatorCommand(0.7, False, (0.0, 0.0, 0.0)), 0.1)
    assert s.throttle == 0.0 and s.thrust_n == 0.0
    s = p.step(ActuatorCommand(float("nan"), True, (float("nan"), 0.0, 0.0)), 0.1)
    assert s.throttle == pytest.approx(0.05) and math.isfinite(s.r_mci[0])


def test_engine_profile_function():
    f = engine_throttle_profile(0.0, 1.0, 0.2, 1.0)
    # slew-limited until |u - f| = slew * tau = 0.2, i.e. t1 = 0.8 s
    assert f(0.4) == pytest.approx(0.4)
    assert f(0.8) == pytest.approx(0.8)
    assert f(0.8 + 0.2) == pytest.approx(1.0 - 0.2 * math.exp(-1.0))
    g = engine_throttle_profile(0.5, 0.5, 0.2, 1.0)
    assert g(3.0) == 0.5


def test_thrust_misalignment_gives_side_force_and_torque(ref):
    L = ref.replace(engine_time_constant_s=0.0, throttle_slew_per_s=math.inf,
                    thrust_misalignment_rad=0.01, thrust_misalignment_azimuth_rad=0.0,
                    thrust_point_body_m=(0.0, 0.0, -1.0),
                    inertia_body_kg_m2=((500.0, 0, 0), (0, 600.0, 0), (0, 0, 700.0)),
                    inertia_dry_body_kg_m2=None)
    st = initial_state(SITE, L, 100e3, throttle=1.0)
    p = Plant(L, flat(SITE), st, gm=0.0)
    p.step(ActuatorCommand(1.0, True, (0.0, 0.0, 0.0)), 0.01)
    f = p.specific_force_body()
    assert f[0] / f[2] == pytest.approx(math.tan(0.01), rel=1e-9)
    # torque = r x F = (0,0,-1) x (T sin a, 0, T cos a) = (0, -T sin a, 0): negative y rate
    w = p.state.w_body
    assert w[1] < 0.0 and abs(w[0]) < 1e-6 * abs(w[1])
    # dw_y/dt = -T sin(a) * 1 m / I_yy (ignoring the tiny mass change over 10 ms)
    assert w[1] == pytest.approx(-L.thrust_max_n * math.sin(0.01) / 600.0 * 0.01, rel=1e-3)


# --------------------------------------------------------------- RCS
def test_rcs_torque_limits_rate_and_propellant(ref):
    """Command 1000 N m about x: clamped to 40 N m. Pure couple: w_x = tau/I t
    (I_xy coupling gives a small w_y), RCS propellant = tau/(L Isp_rcs g0) t."""
    L = ref.replace(inertia_body_kg_m2=((500.0, 0, 0), (0, 600.0, 0), (0, 0, 700.0)),
                    inertia_dry_body_kg_m2=None)
    st = initial_state(SITE, L, 100e3)
    p = Plant(L, flat(SITE), st, gm=0.0)
    for _ in range(100):
        p.step(ActuatorCommand(0.0, False, (1000.0, 0.0, 0.0)), 0.01)
    s = p.state
    assert s.w_body[0] == pytest.approx(40.0 / 500.0 * 1.0, rel=1e-12)
    used = 40.0 / L.rcs_lever_arm_m[0] / (L.rcs_isp_s * G0) * 1.0
    assert st.rcs_propellant_kg - s.rcs_propellant_kg == pytest.approx(used, rel=1e-12)
    assert s.propellant_kg == st.propellant_kg
    assert vnorm(tuple(a - b for a, b in zip(s.v_mci, st.v_mci))) < 1e-12  # no force
    # no RCS propellant: no torque
    p2 = Plant(L, flat(SITE), st.replace(rcs_propellant_kg=0.0), gm=0.0)
    p2.step(ActuatorCommand(0.0, False, (10.0, 10.0, 10.0)), 1.0)
    assert p2.state.w_body == (0.0, 0.0, 0.0)


# -------------------------------------------------------- torque-free
@pytest.mark.parametrize("I", [((300.0, 10.0, -5.0), (10.0, 420.0, 8.0), (-5.0, 8.0, 510.0)),
                               ((300.0, 0.0, 0.0), (0.0, 420.0, 0.0), (0.0, 0.0, 510.0))],
                         ids=["products-of-inertia", "principal-axes"])
def test_torque_free_spin_conserves_angular_momentum(I):
    """Asymmetric body (with products of inertia) spinning near its
    intermediate axis (a tumbling, strongly non-linear motion): the inertial
    angular momentum vector and the rotational energy are conserved.
    dt = 5 ms for 60 s; RK4 local error ~ (w dt)^5: allow 1e-9 relative.
    Run with a full inertia tensor and with principal axes (fast path)."""
    L = LanderSpec(name="spinner", dry_mass_kg=500.0, propellant_mass_kg=0.0,
                   inertia_body_kg_m2=I, thrust_max_n=1000.0, throttle_min=0.1,
                   throttle_max=1.0, isp_s=300.0, rcs_propellant_mass_kg=0.0)
    st = initial_state(SITE, L, 100e3, w_body=(0.05, 0.8, 0.03), propellant_kg=0.0,
                       q_mci_body=(0.9, 0.1, -0.3, 0.2))
    p = Plant(L, flat(SITE), st, gm=0.0)
    Im = np.array(I)

    def momentum(s):
        hb = Im @ np.array(s.w_body)
        return np.array(quat_rotate(s.q_mci_body, tuple(hb)))

    def energy(s):
        w = np.array(s.w_body)
        return 0.5 * w @ Im @ w

    H0, E0 = momentum(p.state), energy(p.state)
    wmax_change = 0.0
    for _ in range(12000):
        s = p.step(OFF, 0.005)
        wmax_change = max(wmax_change, abs(s.w_body[1] - 0.8))
    assert wmax_change > 0.5  # it really tumbles
    H = momentum(p.state)
    assert np.linalg.norm(H - H0) / np.linalg.norm(H0) < 1e-9
    assert abs(energy(p.state) - E0) / E0 < 1e-9
    q = p.state.q_mci_body
    assert abs(sum(c * c for c in q) - 1.0) < 1e-14


# ----------------------------------------------------- specific force
def test_specific_force_and_gravity(ref):
    st = initial_state(SITE, ref, 0.0 + 1000.0, throttle=0.5)
    p = Plant(ref, flat(SITE), st)
    g = p.local_gravity()
    assert vnorm(g) == pytest.approx(MOON_GM / (MOON_RADIUS + 1000.0) ** 2, rel=1e-12)
    assert vdot(g, SITE.up_mci) < 0
    f = p.specific_force_body_now()
    assert f[2] == pytest.approx(0.5 * ref.thrust_max_n / st.mass_kg * math.cos(ref.thrust_misalignment_rad), rel=1e-12)
    assert p.thrust_max_n == ref.thrust_max_n
    assert p.altitude_agl() == pytest.approx(1000.0, abs=1e-6)


def test_inertia_follows_mass(ref):
    I_wet = ref.inertia_at_mass(ref.wet_mass_kg)
    I_dry = ref.inertia_at_mass(ref.dry_mass_kg)
    assert I_wet == ref.inertia_body_kg_m2
    assert I_dry == ref.inertia_dry_body_kg_m2


def test_moon_rotation_surface_hover_stays_over_the_site(ref):
    """With Moon rotation on, a lander that starts at rest relative to the
    surface at 10 m and falls for 2 s lands (almost) where it started
    in the Moon-fixed frame, and the terrain view follows the rotation."""
    st = initial_state(SITE, ref, 10.0, moon_rotation=True)
    v_surf = vnorm(st.v_mci)
    assert v_surf == pytest.approx(2.6617e-6 * MOON_RADIUS, rel=1e-3)  # 4.62 m/s
    p = Plant(ref, flat(SITE), st, moon_rotation=True)
    while not p.touched_down:
        p.step(OFF, 0.05)
    from harness.frames import moon_fixed_from_mci
    rf = moon_fixed_from_mci(p.state.r_mci, p.state.t_s)
    e, n, u = SITE.from_mci(rf)
    assert abs(e) < 0.01 and abs(n) < 0.01   # Coriolis drift over 3.5 s: ~1e-5 m


def test_initial_state_conventions(ref):
    st = initial_state(SITE, ref, 15000.0, -400e3, 1000.0, 1700.0, 0.0, -10.0,
                       propellant_kg="powered_descent")
    assert st.mass_kg == pytest.approx(1000.0)
    # horizontal velocity is horizontal at the lander's own position
    up_here = tuple(c / vnorm(st.r_mci) for c in st.r_mci)
    assert vdot(st.v_mci, up_here) == pytest.approx(-10.0, abs=1e-9)
    assert vnorm(st.r_mci) - MOON_RADIUS == pytest.approx(15000.0, abs=1e-6)
    e, n = SITE.surface_en(st.r_mci)
    assert e == pytest.approx(-400e3, abs=1e-6) and n == pytest.approx(1000.0, abs=1e-6)
    # upright attitude there: body z = local up
    assert vdot(quat_rotate(st.q_mci_body, (0, 0, 1)), up_here) == pytest.approx(1.0, abs=1e-12)
    st2 = initial_state(SITE, ref, 3000.0, propellant_kg="terminal_descent")
    assert st2.mass_kg == pytest.approx(700.0)


def test_principal_axis_fast_path_matches_general_euler():
    """The diagonal-inertia fast path and the general 3x3 path integrate the
    same motion: a product of inertia of 1e-9 kg m^2 forces the general path;
    after 20 s of tumbling with RCS torque the rates agree to 1e-9 rad/s."""
    base = dict(name="x", dry_mass_kg=500.0, propellant_mass_kg=0.0, thrust_max_n=1000.0,
                throttle_min=0.1, throttle_max=1.0, isp_s=300.0, rcs_propellant_mass_kg=10.0)
    Ld = LanderSpec(inertia_body_kg_m2=((300.0, 0, 0), (0, 420.0, 0), (0, 0, 510.0)), **base)
    Lg = LanderSpec(inertia_body_kg_m2=((300.0, 1e-9, 0), (1e-9, 420.0, 0), (0, 0, 510.0)), **base)
    out = []
    for L in (Ld, Lg):
        st = initial_state(SITE, L, 100e3, w_body=(0.3, 0.2, -0.1), propellant_kg=0.0)
        p = Plant(L, flat(SITE), st, gm=0.0)
        assert p._diag == (L is Ld)
        for _ in range(2000):
            p.step(ActuatorCommand(0.0, False, (5.0, -3.0, 1.0)), 0.01)
        out.append(p.state.w_body)
    assert max(abs(a - b) for a, b in zip(*out)) < 1e-9


def test_clock_is_start_plus_steps_times_dt_not_a_running_sum():
    """t = t0 + n dt exactly (a running sum of 20 ms steps is off by 6e-10 s after 50,000 steps
    and 6e-8 s after 350,000); a new step size starts a new origin at the current time."""
    from harness.frames import SiteFrame
    from harness.lander import load_lander
    from harness.plant import ActuatorCommand, Plant, initial_state
    from harness.terrain import flat

    site = SiteFrame()
    lander = load_lander("reference")
    st = initial_state(site, lander, 100e3, propellant_kg="terminal_descent", t_s=123.4)
    p = Plant(lander, flat(site), st, gm=0.0)
    off = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
    n, dt = 50_000, 0.02
    running = 123.4
    for _ in range(n):
        p.step(off, dt)
        running += dt
    assert p.state.t_s == 123.4 + n * dt
    assert running != 123.4 + n * dt          # what the running sum would have given
    t_switch = p.state.t_s
    for _ in range(1000):
        p.step(off, 0.001)
    assert p.state.t_s == t_switch + 1000 * 0.001
