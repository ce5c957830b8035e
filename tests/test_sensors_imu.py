"""IMU model: delta-v / delta-angle of resting and thrusting bodies, errors, reproducibility."""

import math

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.frames import G0, MOON_GM, MOON_RADIUS, SiteFrame, vnorm
from harness.lander import load_lander
from harness.plant import ActuatorCommand, Plant, initial_state
from harness.terrain import flat
from sensor_models.imu import Imu, ImuConfig, ImuReading

SITE = SiteFrame()
G_SURF = MOON_GM / MOON_RADIUS ** 2


def ideal(**kw):
    return Imu(ImuConfig.ideal().replace(**kw), np.random.default_rng(0))


def test_resting_body_senses_lunar_gravity_up():
    """A lander standing on the surface feels the support force: specific
    force = +g along body +z (upright). Ideal IMU, 1 s in 50 steps: dv = g * 1 s
    (1e-12), dtheta = 0."""
    imu = ideal()
    for _ in range(50):
        imu.accumulate((0.0, 0.0, G_SURF), (0.0, 0.0, 0.0), 0.02)
    r = imu.read()
    assert isinstance(r, ImuReading) and r.valid
    assert r.dt_s == pytest.approx(1.0, abs=1e-12)
    assert r.dv_body == pytest.approx((0.0, 0.0, G_SURF), abs=1e-12)
    assert r.dtheta_body == (0.0, 0.0, 0.0)
    # read resets
    r2 = imu.read()
    assert r2.dv_body == (0.0, 0.0, 0.0) and r2.dt_s == 0.0 and not r2.valid


def test_free_fall_senses_nothing():
    L = load_lander()
    p = Plant(L, flat(SITE), initial_state(SITE, L, 5000.0))
    imu = ideal()
    for _ in range(100):
        p.step(ActuatorCommand(0.0, False, (0.0, 0.0, 0.0)), 0.02)
        imu.accumulate_from_plant(p)
    assert imu.read().dv_body == (0.0, 0.0, 0.0)


def test_thrusting_body_dv_matches_rocket_equation():
    """Ideal engine at full thrust for 20 s in free space: the summed IMU
    delta-v equals Isp g0 ln(m0/m1) (the integral of T/m) and the plant's
    velocity change, to 1e-9 relative (the plant's step-mean specific force
    is the Simpson quadrature of its RK4 stages)."""
    L = load_lander().replace(engine_time_constant_s=0.0, throttle_slew_per_s=math.inf,
                              thrust_misalignment_rad=0.0)
    st = initial_state(SITE, L, 100e3, throttle=1.0)
    p = Plant(L, flat(SITE), st, gm=0.0)
    imu = ideal()
    total = np.zeros(3)
    for k in range(1000):
        p.step(ActuatorCommand(1.0, True, (0.0, 0.0, 0.0)), 0.02)
        imu.accumulate_from_plant(p)
        if k % 5 == 4:   # the flight code reads at 10 Hz here
            total += imu.read().dv_body
    ve = L.isp_s * G0
    dv_exact = ve * math.log(st.mass_kg / p.state.mass_kg)
    assert total[2] == pytest.approx(dv_exact, rel=1e-9)
    assert abs(total[0]) < 1e-12 and abs(total[1]) < 1e-12
    assert vnorm(tuple(a - b for a, b in zip(p.state.v_mci, st.v_mci))) == pytest.approx(dv_exact, rel=1e-9)


def test_thrusting_with_engine_lag_matches_velocity_change():
    """Lagged engine (tau = 0.15 s) starting from off, gm = 0, no rotation:
    the IMU's delta-v still equals the plant's velocity change (1e-6 rel)."""
    L = load_lander().replace(thrust_misalignment_rad=0.0)
    st = initial_state(SITE, L, 100e3)
    p = Plant(L, flat(SITE), st, gm=0.0)
    imu = ideal()
    total = 0.0
    for k in range(200):
        p.step(ActuatorCommand(0.6, True, (0.0, 0.0, 0.0)), 0.02)
        imu.accumulate_from_plant(p)
        total += imu.read().dv_body[2]
    dv = vnorm(tuple(a - b for a, b in zip(p.state.v_mci, st.v_mci)))
    assert total == pytest.approx(dv, rel=1e-6)


def test_rotating_body_delta_angle():
    """Constant 0.1 rad/s about z for 2 s: dtheta_z = 0.2 rad (1e-12)."""
    L = load_lander().replace(inertia_body_kg_m2=((500.0, 0, 0), (0, 600.0, 0), (0, 0, 700.0)),
                              inertia_dry_body_kg_m2=None)
    p = Plant(L, flat(SITE), initial_state(SITE, L, 5000.0, w_body=(0.0, 0.0, 0.1)), gm=0.0)
    imu = ideal()
    for _ in range(100):
        p.step(ActuatorCommand(0.0, False, (0.0, 0.0, 0.0)), 0.02)
        imu.accumulate_from_plant(p)
    assert imu.read().dtheta_body == pytest.approx((0.0, 0.0, 0.2), abs=1e-12)


def test_bias_scale_factor_saturation():
    imu = ideal(accel_bias_mps2=(0.01, -0.02, 0.0), gyro_bias_rad_s=(1e-4, 0.0, 0.0),
                accel_scale_factor=(0.0, 0.0, 1e-3), gyro_scale_factor=(0.0, 0.01, 0.0))
    for _ in range(10):
        imu.accumulate((0.0, 0.0, 2.0), (0.0, 0.5, 0.0), 0.1)
    r = imu.read()
    assert r.dv_body == pytest.approx((0.01, -0.02, 2.0 * 1.001), abs=1e-12)
    assert r.dtheta_body == pytest.approx((1e-4, 0.5 * 1.01, 0.0), abs=1e-12)
    sat = ideal(accel_saturation_mps2=50.0, gyro_saturation_rad_s=1.0)
    sat.accumulate((100.0, -100.0, 10.0), (5.0, -0.5, -3.0), 1.0)
    r = sat.read()
    assert r.dv_body == pytest.approx((50.0, -50.0, 10.0))
    assert r.dtheta_body == pytest.approx((1.0, -0.5, -1.0))


def test_turn_on_bias_is_drawn_from_the_generator():
    cfg = ImuConfig.tactical_grade()
    a = Imu(cfg, np.random.default_rng(3))
    b = Imu(cfg, np.random.default_rng(3))
    c = Imu(cfg, np.random.default_rng(4))
    assert a.accel_bias == b.accel_bias and a.accel_bias != c.accel_bias
    # 500 micro-g class
    assert max(abs(x) for x in a.accel_bias) < 5 * 500e-6 * G0


def test_noise_density_scales_with_sqrt_dt():
    """Noise density N: the increment over T has sd N sqrt(T) whether it is
    accumulated in 1 or 10 steps. 20,000 reads: sample sd within 3 % (> 4 sd)."""
    N_a, N_g = 1e-3, 1e-4
    for steps in (1, 10):
        imu = Imu(ImuConfig.ideal().replace(accel_noise_density=N_a, gyro_noise_density=N_g),
                  np.random.default_rng(steps))
        T = 0.02
        dv = []
        dth = []
        for _ in range(20000):
            for _ in range(steps):
                imu.accumulate((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), T / steps)
            r = imu.read()
            dv.append(r.dv_body)
            dth.append(r.dtheta_body)
        dv = np.array(dv)
        dth = np.array(dth)
        assert dv.std(axis=0) == pytest.approx([N_a * math.sqrt(T)] * 3, rel=0.03)
        assert dth.std(axis=0) == pytest.approx([N_g * math.sqrt(T)] * 3, rel=0.03)
        assert abs(dv.mean()) < 4 * N_a * math.sqrt(T) / math.sqrt(60000)


def test_lever_arm_centripetal():
    """IMU 0.5 m along body x, spinning at 1 rad/s about z: senses -w^2 r = -0.5 m/s^2 along x."""
    imu = Imu(ImuConfig.ideal().replace(position_body_m=(0.5, 0.0, 0.0)), np.random.default_rng(0))
    imu.accumulate((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), 1.0)
    assert imu.read().dv_body == pytest.approx((-0.5, 0.0, 0.0), abs=1e-15)


def test_faults_and_validity():
    imu = ideal(rate_hz=400.0)
    imu.accumulate((1.0, 2.0, 3.0), (0.1, 0.2, 0.3), 0.001)   # shorter than one IMU sample
    assert not imu.read().valid
    imu.accel_zero = True        # Luna-25: accelerometers read exactly zero
    imu.accumulate((1.0, 2.0, 3.0), (0.1, 0.2, 0.3), 0.02)
    r = imu.read()
    assert r.dv_body == (0.0, 0.0, 0.0) and r.dtheta_body != (0.0, 0.0, 0.0) and r.valid
    imu.failed = True
    imu.accumulate((1.0, 2.0, 3.0), (0.1, 0.2, 0.3), 0.02)
    assert not imu.read().valid


def test_quantisation_carries_residual():
    imu = ideal(dv_lsb_mps=0.01)
    outs = []
    for _ in range(100):
        imu.accumulate((0.0, 0.0, 0.123), (0.0, 0.0, 0.0), 0.02)
        outs.append(imu.read().dv_body[2])
    assert all(abs(round(o / 0.01) * 0.01 - o) < 1e-12 for o in outs)
    assert sum(outs) == pytest.approx(0.123 * 2.0, abs=0.01)


def test_seeded_reproducibility():
    def run(seed):
        imu = Imu(ImuConfig.tactical_grade(), np.random.default_rng(seed))
        out = []
        for k in range(300):
            imu.accumulate((0.0, 0.0, 1.6 + 0.01 * k), (0.01, 0.0, -0.01), 0.02)
            out.append(tuple(imu.read()))
        return out
    assert run(5) == run(5)
    assert run(5) != run(6)


def test_config_validation():
    with pytest.raises(ConfigError, match=r"rate_hz.*allowed"):
        ImuConfig(rate_hz=0.0)
    with pytest.raises(ConfigError, match=r"accel_bias_mps2.*3 finite numbers"):
        ImuConfig(accel_bias_mps2=(1.0, 2.0))
    with pytest.raises(ConfigError, match=r"scen.toml.*unknown key 'bias'"):
        ImuConfig.from_dict({"bias": 1.0}, source="scen.toml")
    with pytest.raises(ConfigError, match=r"accel_scale_factor"):
        ImuConfig(accel_scale_factor=(0.0, 0.0, 0.9))
