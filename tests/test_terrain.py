"""Terrain: flat sphere, height fields (bilinear), craters, the M1 rim step, file loading, ray casting."""

import math

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.frames import MOON_RADIUS, SiteFrame, vnorm
from harness.terrain import (HeightField, RotatingTerrain, Terrain, crater, crater_profile,
                             crater_rim_step, crater_rim_step_profile, flat, procedural_craters)

SITE = SiteFrame()


def down_from(site, east, north, alt):
    """Origin at alt above the sphere over (east, north), ray straight down."""
    o = site.surface_point_mci(east, north, alt)
    n = vnorm(o)
    return o, tuple(-c / n for c in o)


def tilted(down, rng, tilt_max_rad):
    """``down`` tilted by a random angle up to ``tilt_max_rad`` towards a random horizontal
    direction at the site (unit vector, MCI); draws the tilt, then the azimuth, from ``rng``."""
    tilt = rng.uniform(0, tilt_max_rad)
    az = rng.uniform(0, 2 * math.pi)
    h = tuple(math.cos(az) * SITE.north_mci[i] + math.sin(az) * SITE.east_mci[i] for i in range(3))
    d = tuple(math.cos(tilt) * down[i] + math.sin(tilt) * h[i] for i in range(3))
    return tuple(c / vnorm(d) for c in d)


def brute_force_hit(terrain, o, d, max_range, step=0.5):
    """Dense sampling reference: first sample below the terrain, refined by bisection."""
    R = terrain.site.radius_m

    def g(t):
        p = tuple(o[i] + t * d[i] for i in range(3))
        return vnorm(p) - R - terrain.height_at(p)
    t = 0.0
    while t < max_range:
        if g(t + step) <= 0:
            a, b = t, t + step
            for _ in range(60):
                m = 0.5 * (a + b)
                if g(m) > 0:
                    a = m
                else:
                    b = m
            return 0.5 * (a + b)
        t += step
    return None


def test_protocol_conformance():
    for t in (flat(SITE), crater(SITE), RotatingTerrain(flat(SITE))):
        assert isinstance(t, Terrain)


def test_flat_ray_cast_exact():
    t = flat(SITE)
    o, d = down_from(SITE, 0.0, 0.0, 2500.0)
    assert t.ray_cast(o, d, 1e5) == pytest.approx(2500.0, abs=1e-9)
    assert t.ray_cast(o, d, 2000.0) is None                   # beyond max range
    assert t.ray_cast(o, tuple(-c for c in d), 1e7) is None   # pointing up
    assert t.ray_cast(SITE.to_mci(0, 0, -1.0), d, 1e5) == 0.0  # origin below ground
    # horizontal ray at 100 m: hits the horizon? no, the sphere curves away
    assert t.ray_cast(o, (0.0, 1.0, 0.0), 1e6) is None
    assert flat(SITE, 30.0).ray_cast(o, d, 1e5) == pytest.approx(2470.0, abs=1e-9)


def test_height_field_bilinear_exact_on_a_plane():
    """A tilted plane is reproduced exactly by bilinear interpolation."""
    e = np.arange(-500.0, 501.0, 10.0)
    E, N = np.meshgrid(e, e)
    z = 0.05 * E - 0.02 * N + 7.0
    hf = HeightField(SITE, z, 10.0, (e[0], e[0]), base_height_m=-3.0)
    rng = np.random.default_rng(0)
    for x, y in rng.uniform(-499, 499, size=(100, 2)):
        assert hf.height_en(x, y) == pytest.approx(0.05 * x - 0.02 * y + 7.0, abs=1e-9)
        p = SITE.surface_point_mci(x, y, 1000.0)
        assert hf.height_at(p) == pytest.approx(0.05 * x - 0.02 * y + 7.0, abs=1e-6)
    assert hf.height_en(600.0, 0.0) == -3.0   # outside: base height
    xs = rng.uniform(-700, 700, size=200)
    ys = rng.uniform(-700, 700, size=200)
    vec = hf.heights_en(xs, ys)
    assert np.allclose(vec, [hf.height_en(a, b) for a, b in zip(xs, ys)], atol=1e-9)


def test_height_field_returns_crater_profile():
    """The crater height field matches the analytic bowl + rim profile.
    Tolerance: bilinear error of a parabola with curvature 2(d+h)/R^2 on a
    5 m grid is (d+h)/R^2 * (dx^2 + dy^2) / 4 = 0.0075 m; near the rim kink, within
    one cell, the error is bounded by the slope times the cell size."""
    R, d, h = 400.0, 80.0, 16.0
    hf = crater(SITE, (200.0, -100.0), R, d, h, spacing_m=5.0)
    for r in np.linspace(0, 0.95 * R, 20):
        for ang in (0.0, 1.0, 2.5):
            x = 200.0 + r * math.cos(ang)
            y = -100.0 + r * math.sin(ang)
            assert hf.height_en(x, y) == pytest.approx(crater_profile(r, R, d, h), abs=0.01)
    for r in np.linspace(1.05 * R, 3.0 * R, 10):
        assert hf.height_en(200.0 + r, -100.0) == pytest.approx(crater_profile(r, R, d, h), abs=0.05)
    assert crater_profile(0.0, R, d, h) == -d
    assert crater_profile(R, R, d, h) == pytest.approx(h)
    assert hf.height_en(200.0, -100.0) == pytest.approx(-d, abs=1e-9)
    # a vertical LRF ray over the crater centre sees the floor
    o, dn = down_from(SITE, 200.0, -100.0, 1000.0)
    assert hf.ray_cast(o, dn, 5000.0) == pytest.approx(1000.0 + d, abs=1e-2)


def test_crater_rim_step_profile_and_heights():
    hf = crater_rim_step(SITE)
    assert hf.base_height_m == 3000.0
    for r in (0.0, 5000.0, 14000.0, 14400.0, 14600.0, 14900.0, 15000.0, 15500.0, 17000.0):
        assert hf.height_en(-r, 0.0) == pytest.approx(float(crater_rim_step_profile(r)), abs=30.0)
    assert hf.height_en(0.0, 0.0) == 0.0
    assert hf.height_en(-30000.0, 0.0) == 3000.0    # far outside: plateau
    # ~3 km step across the rim
    assert hf.height_en(-15100.0, 0.0) - hf.height_en(-14400.0, 0.0) > 2900.0


def test_ray_cast_matches_brute_force_on_crater_field():
    hf = procedural_craters(SITE, np.random.default_rng(7), extent_m=2000.0, spacing_m=10.0,
                            n_craters=40, min_radius_m=20.0, max_radius_m=300.0)
    rng = np.random.default_rng(1)
    for _ in range(25):
        e0, n0 = rng.uniform(-1500, 1500, size=2)
        alt = rng.uniform(50, 800)
        o, down = down_from(SITE, e0, n0, alt)
        d = tilted(down, rng, math.radians(60))  # up to 60 deg in a random horizontal direction
        got = hf.ray_cast(o, d, 5000.0)
        ref = brute_force_hit(hf, o, d, 5000.0)
        if ref is None:
            assert got is None
        else:
            assert got == pytest.approx(ref, abs=0.01)


def test_ray_cast_crosses_the_rim_wall():
    """A shallow ray from over the floor toward the wall hits the wall, not the floor beyond."""
    hf = crater_rim_step(SITE)
    o, _ = down_from(SITE, -13000.0, 0.0, 1000.0)
    d = tuple(-SITE.east_mci[i] for i in range(3))   # horizontal, toward the wall (west)
    got = hf.ray_cast(o, d, 10000.0)
    ref = brute_force_hit(hf, o, d, 10000.0, step=1.0)
    assert got == pytest.approx(ref, abs=0.01)
    assert 1000.0 < got < 2000.0


def test_save_load_round_trip(tmp_path):
    hf = crater(SITE, (0.0, 0.0), 300.0, 60.0, 12.0, spacing_m=10.0, base_height_m=2.0)
    p = tmp_path / "hf.npz"
    hf.save(p)
    hf2 = HeightField.load(p)
    assert np.array_equal(hf2.heights, hf.heights)
    assert hf2.extent_m == hf.extent_m and hf2.base_height_m == 2.0
    assert hf2.height_en(33.0, -71.0) == hf.height_en(33.0, -71.0)
    # .npy: spacing must be given
    q = tmp_path / "hf.npy"
    np.save(q, hf.heights)
    with pytest.raises(ConfigError, match="spacing_m"):
        HeightField.load(q)
    hf3 = HeightField.load(q, site=SITE, spacing_m=10.0, origin_en_m=(hf.origin_east_m, hf.origin_north_m),
                           base_height_m=2.0)
    assert hf3.height_en(33.0, -71.0) == hf.height_en(33.0, -71.0)
    # bad files
    np.savez(tmp_path / "bad.npz", z=hf.heights, spacing_m=10.0)
    with pytest.raises(ConfigError, match="heights"):
        HeightField.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "neg.npz", heights=hf.heights, spacing_m=-1.0)
    with pytest.raises(ConfigError, match=r"neg.npz.*spacing_m.*allowed: > 0"):
        HeightField.load(tmp_path / "neg.npz")
    with pytest.raises(ConfigError, match="not found"):
        HeightField.load(tmp_path / "missing.npz")


def test_procedural_craters_reproducible_and_keep_clear():
    a = procedural_craters(SITE, np.random.default_rng(5), extent_m=1000.0, n_craters=30, keep_clear_m=100.0)
    b = procedural_craters(SITE, np.random.default_rng(5), extent_m=1000.0, n_craters=30, keep_clear_m=100.0)
    c = procedural_craters(SITE, np.random.default_rng(6), extent_m=1000.0, n_craters=30, keep_clear_m=100.0)
    assert np.array_equal(a.heights, b.heights)
    assert not np.array_equal(a.heights, c.heights)
    assert a.min_height_m < 0.0 < a.max_height_m


def test_rotating_terrain_view():
    hf = crater(SITE, (0.0, 0.0), 300.0, 60.0, 12.0, spacing_m=10.0)
    rt = RotatingTerrain(hf, omega_rad_s=1e-3, t_s=0.0)
    p = SITE.surface_point_mci(0.0, 0.0, 500.0)
    assert rt.height_at(p) == pytest.approx(-60.0)
    rt.t_s = 10.0   # the Moon has turned 0.01 rad: the crater moved ~17 km east in MCI
    assert rt.height_at(p) == 0.0 or abs(rt.height_at(p)) < 1e-3
    from harness.frames import mci_from_moon_fixed
    assert rt.height_at(mci_from_moon_fixed(p, 10.0, 1e-3)) == pytest.approx(-60.0)


def test_local_slope_bounds_the_surface_gradient():
    """The per-tile slope bound used by the ray march is never below the
    actual gradient of the interpolated surface within one tile width."""
    hf = procedural_craters(SITE, np.random.default_rng(3), extent_m=1500.0, spacing_m=10.0,
                            n_craters=60, min_radius_m=10.0, max_radius_m=200.0)
    rng = np.random.default_rng(4)
    tile = hf._tile_len
    for _ in range(300):
        e, n = rng.uniform(-1700, 1700, size=2)
        bound = hf.local_slope(e, n)
        for _ in range(5):
            de, dn = rng.uniform(-tile, tile, size=2) * 0.99
            x, y = e + de, n + dn
            h = 0.01
            gx = (hf.height_en(x + h, y) - hf.height_en(x - h, y)) / (2 * h)
            gy = (hf.height_en(x, y + h) - hf.height_en(x, y - h)) / (2 * h)
            assert math.hypot(gx, gy) <= bound + 1e-6


def test_ray_cast_matches_brute_force_on_the_rim_step():
    hf = crater_rim_step(SITE)
    rng = np.random.default_rng(9)
    for _ in range(12):
        e0 = rng.uniform(-17000, -12000)
        alt = rng.uniform(3500, 7000)
        o, down = down_from(SITE, e0, rng.uniform(-500, 500), alt)
        d = tilted(down, rng, math.radians(50))
        got = hf.ray_cast(o, d, 15000.0)
        ref = brute_force_hit(hf, o, d, 15000.0, step=2.0)
        if ref is None:
            assert got is None
        else:
            assert got == pytest.approx(ref, abs=0.01)


def _casts(terrains, rays):
    """(range bits or None, last_iterations) of every ray cast on every terrain."""
    out = []
    for hf in terrains:
        hf.last_iterations = -7
        for o, d, max_range in rays:
            t = hf.ray_cast(o, d, max_range)
            out.append((None if t is None else float(t).hex(), hf.last_iterations))
    return out


def test_compiled_march_gives_the_interpreted_bits(monkeypatch):
    """The height-field march compiled by numba gives the very bits CPython gives running the same
    function (no fused multiply-adds, no reordering: a run's telemetry must not depend on whether
    numba is there), and leaves the same ``last_iterations``: rays from grazing to steep, from
    above, inside and below the terrain's heights, near and past the maximum range."""
    import harness.terrain as terrain_module

    kernel, compiled = terrain_module.load_march_kernel()
    if not compiled:
        pytest.skip("numba is not installed or NUMBA_DISABLE_JIT=1: nothing compiled to compare")
    terrains = [crater_rim_step(SITE),
                procedural_craters(SITE, np.random.default_rng(3), extent_m=3000.0, spacing_m=10.0,
                                   n_craters=80, min_radius_m=10.0, max_radius_m=400.0)]
    rng = np.random.default_rng(11)
    rays = []
    for _ in range(300):
        o, down = down_from(SITE, *rng.uniform(-18000, 18000, size=2), rng.choice([rng.uniform(-100, 200),
                                                                                    rng.uniform(200, 9000)]))
        rays.append((o, tilted(down, rng, rng.choice([0.3, 1.5, 1.58])), rng.choice([500.0, 5000.0, 40000.0])))
    compiled_casts = _casts(terrains, rays)
    monkeypatch.setattr(terrain_module, "_MARCH", (terrain_module.height_field_march, False))
    assert _casts(terrains, rays) == compiled_casts
    assert sum(c[0] is not None for c in compiled_casts) > 200  # (most rays hit)


def test_ray_cast_from_a_point_that_is_not_finite_is_refused():
    hf = crater_rim_step(SITE)
    o, down = down_from(SITE, 0.0, 0.0, 1000.0)
    with pytest.raises(ValueError, match="not finite"):
        hf.ray_cast((math.nan, o[1], o[2]), down, 5000.0)
