"""Laser rangefinder model: geometry, timing (rate, latency), validity, noise, reproducibility."""

import math

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.frames import MOON_RADIUS, SiteFrame, quat_rotate, vnorm
from harness.lander import load_lander
from harness.plant import ActuatorCommand, Plant, PlantState, initial_state
from harness.terrain import crater_rim_step, flat
from sensor_models.lrf import LaserRangefinder, LrfConfig, LrfReading

SITE = SiteFrame()
EXACT = dict(noise_sigma_m=0.0, noise_frac=0.0)


def lrf(rng_seed=0, **kw):
    cfg = LrfConfig(**{**EXACT, **kw})
    return LaserRangefinder(cfg, np.random.default_rng(rng_seed), (0.0, 0.0, -1.0), (0.0, 0.0, 0.0))


def sphere_slant_range(h, tilt, R=MOON_RADIUS):
    """Exact range from height h along a ray tilted by `tilt` from the nadir to a sphere of radius R."""
    r0 = R + h
    b = -r0 * math.cos(tilt)
    return -b - math.sqrt(b * b - (r0 * r0 - R * R))


@pytest.mark.parametrize("tilt_deg", [0.0, 10.0, 30.0, 45.0])
def test_flat_range_at_tilt_is_h_over_cos(tilt_deg):
    """Range over flat terrain at a known tilt = h / cos(tilt). The sphere
    curves away under a tilted beam, adding about (h tan t)^2 / (2 R cos t)
    (0.11 m at 1 km and 30 deg, 0.41 m at 45 deg): compare with h/cos(tilt)
    within 1.1 times that term, and with the exact ray-sphere range to 1e-6 m."""
    h, tilt = 1000.0, math.radians(tilt_deg)
    ref = load_lander()
    st = initial_state(SITE, ref, h, tilt_rad=tilt, tilt_azimuth_rad=0.7)
    r = lrf().update(0.0, st, flat(SITE))
    assert r.valid and r.new and r.sample_t_s == 0.0
    curv = (h * math.tan(tilt)) ** 2 / (2 * MOON_RADIUS * math.cos(tilt))
    assert abs(r.range_m - h / math.cos(tilt)) <= 1.1 * curv + 1e-6
    assert r.range_m == pytest.approx(sphere_slant_range(h, tilt), abs=1e-6)


def test_lrf_mounting_offset_and_boresight_from_lander():
    ref = load_lander()
    st = initial_state(SITE, ref, 500.0)
    sensor = LaserRangefinder(LrfConfig(**EXACT), np.random.default_rng(0),
                              ref.lrf_boresight_body, ref.lrf_position_body_m)
    r = sensor.update(0.0, st, flat(SITE))
    # upright: the LRF sits 0.6 m below the centre of mass
    assert r.range_m == pytest.approx(500.0 + ref.lrf_position_body_m[2], abs=1e-6)


def test_min_max_range_and_no_hit():
    st = initial_state(SITE, load_lander(), 5000.0)
    assert not lrf(max_range_m=4000.0).update(0.0, st, flat(SITE)).valid
    assert lrf(max_range_m=6000.0).update(0.0, st, flat(SITE)).valid
    assert not lrf(min_range_m=6000.0, max_range_m=7000.0).update(0.0, st, flat(SITE)).valid
    # pointing at the sky
    st_up = initial_state(SITE, load_lander(), 5000.0, tilt_rad=math.pi)
    r = lrf().update(0.0, st_up, flat(SITE))
    assert not r.valid and r.range_m == 0.0 and r.new


def descend(plant_v_up=-10.0, h0=1000.0):
    """A plant in zero gravity descending at constant speed: true range = h0 + v t."""
    L = load_lander()
    st = initial_state(SITE, L, h0, v_up=plant_v_up)
    return Plant(L, flat(SITE), st, gm=0.0)


def test_rate_and_latency_deliver_samples_exactly_latency_old():
    """10 Hz LRF, 0.3 s latency, 50 Hz cycle: every new sample is delivered
    exactly 0.3 s after it was taken (to 1e-9 s), carries the true range at
    its sample time (1e-6 m), and samples are 0.1 s apart."""
    p = descend()
    sensor = lrf(rate_hz=10.0, latency_s=0.3)
    off = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
    r = sensor.update(0.0, p.state, p.terrain)
    assert not r.valid and not r.new   # nothing delivered before 0.3 s
    news = []
    for k in range(1, 201):
        p.step(off, 0.02)
        t = p.state.t_s
        r = sensor.update(t, p.state, p.terrain)
        if t < 0.3 - 1e-9:
            assert not r.new and not r.valid
        if r.new:
            news.append((t, r))
            assert t - r.sample_t_s == pytest.approx(0.3, abs=1e-9)
            assert r.range_m == pytest.approx(1000.0 - 10.0 * r.sample_t_s, abs=1e-6)
        else:
            # between samples the last one is repeated, flagged not new
            if news:
                assert r.sample_t_s == news[-1][1].sample_t_s
    stamps = [r.sample_t_s for _, r in news]
    assert np.allclose(np.diff(stamps), 0.1, atol=1e-9)
    assert len(news) == 38   # samples 0.0 .. 3.7 s delivered by t = 4.0 s


def test_samples_between_calls_use_the_state_at_their_own_time():
    """Cycle (0.05 s) not a multiple of the LRF period (0.03 s): each sample
    is taken at k * 0.03 s with the state extrapolated back to that instant."""
    p = descend(plant_v_up=-20.0)
    sensor = lrf(rate_hz=1 / 0.03, latency_s=0.0)
    off = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
    seen = []
    for _ in range(40):
        p.step(off, 0.05)
        r = sensor.update(p.state.t_s, p.state, p.terrain)
        if r.new:
            seen.append(r)
            assert r.range_m == pytest.approx(1000.0 - 20.0 * r.sample_t_s, abs=1e-6)
            assert p.state.t_s - r.sample_t_s < 0.03 + 1e-9
    assert sensor.samples_taken == int(2.0 / 0.03) + 1


def test_dropout_probability():
    st = initial_state(SITE, load_lander(), 1000.0)
    sensor = lrf(rate_hz=100.0, dropout_prob=0.3)
    n = valid = 0
    for k in range(20000):
        r = sensor.update(k * 0.01, st._replace(t_s=k * 0.01), flat(SITE))
        n += 1
        valid += r.valid
        if not r.valid:
            assert r.range_m == 0.0
    # binomial: sd = sqrt(0.3 * 0.7 / 20000) = 0.0032; allow 5 sd
    assert abs((n - valid) / n - 0.3) < 0.016


def test_noise_constant_plus_range_proportional():
    """sigma = sqrt(s0^2 + (k r)^2): 1 m and 0.2 % at 2 km -> 4.123 m.
    The sample standard deviation of 20,000 draws is within 3 % (5 sd)."""
    st = initial_state(SITE, load_lander(), 2000.0)
    cfg = LrfConfig(rate_hz=100.0, noise_sigma_m=1.0, noise_frac=0.002)
    sensor = LaserRangefinder(cfg, np.random.default_rng(42))
    vals = np.array([sensor.update(k * 0.01, st._replace(t_s=k * 0.01), flat(SITE)).range_m
                     for k in range(20000)])
    assert vals.mean() == pytest.approx(2000.0, abs=0.15)
    assert vals.std() == pytest.approx(math.sqrt(1.0 + 4.0 ** 2), rel=0.03)


def test_outliers():
    st = initial_state(SITE, load_lander(), 2000.0)
    cfg = LrfConfig(rate_hz=100.0, noise_sigma_m=0.0, noise_frac=0.0, outlier_prob=0.1, outlier_sigma_m=500.0)
    sensor = LaserRangefinder(cfg, np.random.default_rng(1))
    vals = np.array([sensor.update(k * 0.01, st._replace(t_s=k * 0.01), flat(SITE)).range_m
                     for k in range(10000)])
    frac = np.mean(np.abs(vals - 2000.0) > 1e-9)
    assert frac == pytest.approx(0.1, abs=0.015)


def test_acquisition_by_altitude_range_and_time():
    """M2: no valid output above 900 m true altitude (spec: 3 km)."""
    for kw, limit in ((dict(acquire_altitude_m=900.0), "alt"), (dict(acquire_range_m=700.0), "range"),
                      (dict(acquire_time_s=50.0), "time")):
        p = descend(plant_v_up=-15.0, h0=1500.0)
        sensor = lrf(rate_hz=10.0, **kw)
        off = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
        first = None
        for _ in range(3000):
            p.step(off, 0.02)
            r = sensor.update(p.state.t_s, p.state, p.terrain)
            if r.valid and first is None:
                first = r
            if first is not None:
                # once acquired, stays valid
                assert r.valid
            if p.state.t_s > 90.0:
                break
        assert first is not None
        h_first = 1500.0 - 15.0 * first.sample_t_s
        if limit == "alt":
            assert 900.0 - 1.5 < h_first <= 900.0
        elif limit == "range":
            assert 700.0 - 1.5 < first.range_m <= 700.0
        else:
            assert first.sample_t_s == pytest.approx(50.0)


def test_never_powered_im1():
    st = initial_state(SITE, load_lander(), 100.0)
    sensor = lrf(powered=False)
    assert not any(sensor.update(k * 0.1, st._replace(t_s=k * 0.1), flat(SITE)).valid for k in range(50))


def test_max_range_degrades_with_speed():
    """max range 3 km, degraded by 1 %/(m/s) above 44 m/s: at 66 m/s the
    effective maximum is 3000 (1 - 0.22) = 2340 m."""
    L = load_lander()
    kw = dict(max_range_m=3000.0, degrade_speed_mps=44.0, degrade_per_mps=0.01, degrade_floor=0.1)
    slow = initial_state(SITE, L, 2500.0, v_up=-40.0)
    fast = initial_state(SITE, L, 2500.0, v_up=-66.0)
    assert lrf(**kw).update(0.0, slow, flat(SITE)).valid
    assert not lrf(**kw).update(0.0, fast, flat(SITE)).valid
    assert lrf(**kw).update(0.0, initial_state(SITE, L, 2300.0, v_up=-66.0), flat(SITE)).valid


def test_m1_crater_rim_step_appears_in_lrf_range():
    """HAKUTO-R M1: flying toward the site at 5 km above the crater floor
    (2 km above the rim plateau), the LRF range jumps by about 3 km within a
    few seconds as the lander passes over the rim, and every sample equals
    the true range (noise off) to 1 cm. The lander pitches at v/r so that the
    LRF keeps pointing along the local vertical over the curved Moon."""
    L = load_lander().replace(inertia_body_kg_m2=((500.0, 0, 0), (0, 600.0, 0), (0, 0, 700.0)),
                              inertia_dry_body_kg_m2=None)
    terrain = crater_rim_step(SITE)
    st = initial_state(SITE, L, 5000.0, -17000.0, 0.0, 150.0, 0.0, 0.0, propellant_kg="terminal_descent",
                       w_body=(0.0, 150.0 / (MOON_RADIUS + 5000.0), 0.0))
    p = Plant(L, terrain, st, gm=0.0)   # no gravity: straight, level flight
    sensor = lrf(rate_hz=10.0, max_range_m=10000.0)
    off = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
    series = []
    while p.state.t_s < 30.0:
        p.step(off, 0.02)
        r = sensor.update(p.state.t_s, p.state, p.terrain)
        if r.new:
            assert r.valid
            s = p.state
            back = s.t_s - r.sample_t_s   # 0.02 s for the sample at t = 0, else ~0
            rk = tuple(s.r_mci[i] - s.v_mci[i] * back for i in range(3))
            true = vnorm(rk) - MOON_RADIUS - terrain.height_at(rk)
            assert r.range_m == pytest.approx(true, abs=0.01)
            series.append((r.sample_t_s, r.range_m))
    t, rng = np.array(series).T
    assert rng[0] == pytest.approx(2000.0, abs=60.0)     # over the plateau (rim lip decays)
    # over the floor; a straight (zero-g) path climbs d^2 / 2R above the sphere
    assert rng[-1] == pytest.approx(5000.0 + (150.0 * t[-1]) ** 2 / (2 * MOON_RADIUS), abs=1.0)
    # the jump: > 2.9 km within a 5 s window (750 m of ground track)
    jump = max(rng[j] - rng[i] for i in range(len(t)) for j in range(i, len(t)) if t[j] - t[i] <= 5.0)
    assert jump > 2900.0


def test_seeded_reproducibility():
    def run(seed):
        p = descend(plant_v_up=-10.0)
        cfg = LrfConfig(rate_hz=20.0, latency_s=0.05, noise_sigma_m=1.0, noise_frac=0.01,
                        dropout_prob=0.2, outlier_prob=0.05, outlier_sigma_m=100.0)
        sensor = LaserRangefinder(cfg, np.random.default_rng(seed))
        off = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
        out = []
        for _ in range(500):
            p.step(off, 0.02)
            out.append(tuple(sensor.update(p.state.t_s, p.state, p.terrain)))
        return out
    a, b, c = run(11), run(11), run(12)
    assert a == b          # bit for bit
    assert a != c


def test_config_validation():
    with pytest.raises(ConfigError, match=r"dropout_prob.*allowed: 0 <= dropout_prob <= 1"):
        LrfConfig(dropout_prob=1.5)
    with pytest.raises(ConfigError, match=r"min_range_m.*max_range_m"):
        LrfConfig(min_range_m=100.0, max_range_m=50.0)
    with pytest.raises(ConfigError, match=r"scenario.toml.*unknown key 'rate'"):
        LrfConfig.from_dict({"rate": 10.0}, source="scenario.toml")
    with pytest.raises(ConfigError, match=r"scenario.toml.*latency_s"):
        LrfConfig.from_dict({"latency_s": -1.0}, source="scenario.toml")
    assert LrfConfig.from_dict({"rate_hz": 20.0}).rate_hz == 20.0


@pytest.mark.parametrize("rate_hz, latency_s, cycle_s", [(10.0, 0.0, 0.02), (10.0, 0.15, 0.02), (7.0, 0.05, 0.02),
                                                          (50.0, 0.0, 0.02), (1 / 0.03, 0.0, 0.05)])
def test_skipping_calls_before_next_event_gives_the_same_readings(rate_hz, latency_s, cycle_s):
    """A caller that asks the LRF only from ``next_event_t_s`` on (and then samples with
    ``take_samples`` from r, v, q) gets the very reading objects' values of one that calls
    ``update`` every cycle, noise, dropouts and outliers included, and skips the cycles in
    between (at 10 Hz in a 50 Hz loop, 3 of every 5)."""
    cfg = dict(rate_hz=rate_hz, latency_s=latency_s, noise_sigma_m=1.0, noise_frac=0.01, dropout_prob=0.2,
               outlier_prob=0.1, outlier_sigma_m=50.0, acquire_altitude_m=950.0)
    every, by_event = lrf(7, **cfg), lrf(7, **cfg)
    p = descend(plant_v_up=-20.0)
    off = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
    event_t, held, calls, n = -math.inf, None, 0, 400
    for _ in range(n):
        s = p.state
        ref = every.update(s.t_s, s, p.terrain)
        if s.t_s >= event_t:
            calls += 1
            if by_event.due(s.t_s):
                by_event.take_samples(s.t_s, s.t_s, s.r_mci, s.v_mci, s.q_mci_body, p.terrain)
            held = by_event.deliver(s.t_s)
            event_t = by_event.next_event_t_s
        assert held == ref, s.t_s
        p.step(off, cycle_s)
    assert any(r.valid for r in (held, ref)) and every.samples_taken == by_event.samples_taken
    if rate_hz * cycle_s < 1.0:   # slower than the loop: some cycles skipped
        assert calls < n
    if (rate_hz, latency_s, cycle_s) == (10.0, 0.0, 0.02):   # the sample's cycle and the next one
        assert calls == 2 * n // 5


def test_take_samples_is_update_without_a_plant_state():
    p = descend(plant_v_up=-20.0)
    a, b = lrf(3, noise_sigma_m=2.0), lrf(3, noise_sigma_m=2.0)
    off = ActuatorCommand(0.0, False, (0.0, 0.0, 0.0))
    for _ in range(60):
        s = p.state
        r = a.update(s.t_s, s, p.terrain)
        if b.due(s.t_s):
            b.take_samples(s.t_s, s.t_s, list(s.r_mci), list(s.v_mci), list(s.q_mci_body), p.terrain)
        assert b.deliver(s.t_s) == r
        p.step(off, 0.02)
    assert a.samples_taken == b.samples_taken == 12


def test_config_cannot_be_swapped_after_construction():
    """A sample reads the configuration's values as the LRF kept them when built: the config
    cannot be replaced afterwards (it would be half applied)."""
    sensor = lrf(max_range_m=4000.0)
    with pytest.raises(AttributeError):
        sensor.config = LrfConfig(max_range_m=6000.0)
    st = initial_state(SITE, load_lander(), 5000.0)
    assert sensor.config.max_range_m == 4000.0 and not sensor.update(0.0, st, flat(SITE)).valid
