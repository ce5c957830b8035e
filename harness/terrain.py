"""Terrain: the reference sphere plus a height field around the landing site.

Every terrain answers two questions, both in MCI metres:

* ``height_at(r_mci)``: terrain height (m) above the reference sphere
  (radius ``site.radius_m``) at the foot of the radial line through r_mci.
* ``ray_cast(origin_mci, dir_mci, max_range_m)``: distance (m) along the ray
  to the first terrain intersection, or ``None`` when there is none within
  ``max_range_m``. An origin already at or below the terrain returns 0.0.

Map projection: a point is located on a height field by its *radial*
projection onto the reference sphere, expressed in the site's tangent-plane
(east, north) coordinates (``SiteFrame.surface_en``). Grid distances equal
surface distances to within (d/R)^2 / 6 (3e-5 at 15 km from the site).

Height fields store heights in a 2-D array indexed ``[i_north, j_east]``;
``heights[0, 0]`` is at (``origin_east_m``, ``origin_north_m``); spacing
``(d_east_m, d_north_m)``. Between samples: bilinear interpolation. Outside
the grid: ``base_height_m``.

Terrains are defined in the Moon-fixed frame (= MCI at t = 0). With Moon
rotation on, use the plant's ``plant.terrain`` view (a ``RotatingTerrain``),
which rotates queries into the Moon-fixed frame at the plant's time.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Annotated, Literal, Optional, Protocol, runtime_checkable

import numpy as np
from pydantic import Field, model_validator

from .errors import ConfigError
from .jit import compile_kernel
from .validation import KeyProblem, Model, validate, value_text
from .frames import SiteFrame, moon_fixed_from_mci, MOON_ROTATION_RATE


@runtime_checkable
class Terrain(Protocol):
    site: SiteFrame
    min_height_m: float
    max_height_m: float

    def height_at(self, r_mci) -> float: ...

    def ray_cast(self, origin_mci, dir_mci, max_range_m: float) -> Optional[float]: ...


# ------------------------------------------------------------- helpers
def _sphere_hit(ox, oy, oz, dx, dy, dz, radius):
    """Smallest t >= 0 where |o + t d| = radius (d unit), for a ray starting
    outside the sphere; None if it misses. Numerically stable form."""
    r0 = math.sqrt(ox * ox + oy * oy + oz * oz)
    b = ox * dx + oy * dy + oz * dz
    c = (r0 - radius) * (r0 + radius)
    if c <= 0.0:
        return 0.0
    if b >= 0.0:
        return None  # moving away from the centre, outside: no hit
    disc = b * b - c
    if disc < 0.0:
        return None
    return c / (-b + math.sqrt(disc))


def _sphere_exit(ox, oy, oz, dx, dy, dz, radius):
    """Largest t where the ray leaves a sphere it starts inside of."""
    b = ox * dx + oy * dy + oz * dz
    r0sq = ox * ox + oy * oy + oz * oz
    c = r0sq - radius * radius
    disc = b * b - c
    if disc < 0.0:
        return 0.0
    return -b + math.sqrt(disc)


def _unit(d):
    n = math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    return d[0] / n, d[1] / n, d[2] / n


_MARCH_NOT_FINITE = -2  # height_field_march's iterations when a point of the ray is not finite


def _clearance_at(t, ox, oy, oz, dx, dy, dz, R, e0, e1, e2, n0, n1, n2, oe, on, inv_de, inv_dn, base, nx, nx1,
                  ny1, z):
    """``height_field_march``'s clearance (m) over the terrain at distance ``t`` (m) along the ray,
    and the grid coordinates (fx, fy) of that point's radial projection: ``height_at`` written
    out (the same operations in the same order). (NaN, NaN, NaN) when fx or fy is not finite."""
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
    rn = math.sqrt(px * px + py * py + pz * pz)
    k = R / rn
    fx = ((e0 * px + e1 * py + e2 * pz) * k - oe) * inv_de
    fy = ((n0 * px + n1 * py + n2 * pz) * k - on) * inv_dn
    if not (abs(fx) < math.inf and abs(fy) < math.inf):
        return math.nan, math.nan, math.nan
    if fx < 0.0 or fy < 0.0 or fx > nx1 or fy > ny1:
        h = base
    else:
        j = int(fx)
        i = int(fy)
        if j >= nx1:
            j = nx1 - 1
        if i >= ny1:
            i = ny1 - 1
        ax = fx - j
        ay = fy - i
        c = i * nx + j
        z00 = z[c]
        z01 = z[c + 1]
        z10 = z[c + nx]
        z11 = z[c + nx + 1]
        h = (z00 + ax * (z01 - z00)) + ay * ((z10 + ax * (z11 - z10)) - (z00 + ax * (z01 - z00)))
    return rn - R - h, fx, fy


def height_field_march(ox, oy, oz, dx, dy, dz, max_range_m, tol_m, t0, top, rr,
                       R, bottom, tile_len, min_step, e0, e1, e2, n0, n1, n2, oe, on, inv_de, inv_dn, base,
                       nx, ny, T, nty, ntx, z, tiles):
    """``HeightField.ray_cast`` from where the ray (from (ox, oy, oz), direction (dx, dy, dz) unit,
    MCI, m) enters the top sphere (radius ``top``) at t0 (m), ``rr`` the radius of that point
    (m): the march to the end of its span and the refinement of the crossing. The grid's
    constants (``HeightField._march_grid``): R the reference radius, ``bottom`` the radius of
    the lowest terrain, ``tile_len`` and ``min_step`` (m), the site's east and north axes, the
    grid's origin (m), inverse spacings (1/m), base height (m), size, slope tiles' size and count.
    Returns (t, iterations): t the distance (m) to the terrain, -1.0 for none; iterations the
    march steps for ``last_iterations`` (-1: leave it as it was).

    The clearance over the terrain at a point of the ray (``_clearance_at``: ``height_at``,
    ``height_en`` on the radial projection) and the slope bound there (``local_slope``) are
    written out, the same operations in the same order as those methods (the same bits). Plain arithmetic that numba
    compiles as it stands (``load_march_kernel``; heights ``z`` indexed flat, slope tiles
    ``tiles[i][j]``): compiled, a point costs no Python float operations. A point of the ray that
    is not finite (where CPython's int() would raise, and compiled code would go on with garbage)
    ends it with (NaN, _MARCH_NOT_FINITE)."""
    # the ray cannot hit after it passes the bottom sphere or leaves the top sphere
    t_end = max_range_m
    tb = _sphere_hit(ox, oy, oz, dx, dy, dz, bottom)
    if tb is not None and tb < t_end:
        t_end = tb
    p00, p01, p02 = ox + t0 * dx, oy + t0 * dy, oz + t0 * dz
    tx = _sphere_exit(p00, p01, p02, dx, dy, dz, top) + t0
    if tx < t_end:
        t_end = tx
    # Direction-dependent Lipschitz bound of g(t) = altitude - terrain
    # height along the ray: |d alt/dt| <= cos(theta) and the horizontal
    # rate <= sin(theta) (theta: angle to the local vertical at entry),
    # each loosened by `marg` for the turn of the local vertical over the
    # ray (<= span / R). The slope bound S holds within one tile of the
    # current point, so a step may not move further than that sideways.
    cth = abs(p00 * dx + p01 * dy + p02 * dz) / rr
    sth = math.sqrt(max(0.0, 1.0 - cth * cth))
    span = min(t_end - t0, 4.0 * R)
    marg = min(1.0, span / R + 1e-6)
    cv = min(1.0, cth + marg)
    sh = min(1.0, sth + marg)
    max_step = tile_len / sh
    # Near the surface, safe steps shrink geometrically; below min_step
    # (a quarter cell along the ray) the march goes on at min_step and brackets
    # the crossing instead: only grazing rays can step over a feature thinner
    # than that.
    nx1 = nx - 1
    ny1 = ny - 1
    entry = True
    at_end = False   # tn is the end of the ray's span (t_end)
    it = 0           # steps taken
    t = g = S = gn = 0.0
    tn = t0
    while True:
        # clearance gn (m) over the terrain and slope bound Sn around the point at tn
        gn, fx, fy = _clearance_at(tn, ox, oy, oz, dx, dy, dz, R, e0, e1, e2, n0, n1, n2, oe, on, inv_de, inv_dn,
                                   base, nx, nx1, ny1, z)
        if fx != fx:
            return math.nan, _MARCH_NOT_FINITE
        ti = (int(math.floor(fy)) + 1) // T + 2
        tj = (int(math.floor(fx)) + 1) // T + 2
        Sn = tiles[ti][tj] if 0 <= ti < nty and 0 <= tj < ntx else 0.0
        if entry:
            if gn <= 0.0:
                return (t0 if t0 <= max_range_m else -1.0), -1
            entry = False
            t, g, S = tn, gn, Sn
        else:
            if at_end:   # the last look, at the end point
                if gn >= tol_m:
                    return -1.0, 0
                if gn > 0.0:   # the bottom sphere itself is the surface here
                    return (tn if tn <= max_range_m else -1.0), 0
            if gn <= 0.0:
                break   # t (g > 0) and tn (gn <= 0) bracket the crossing
            t, g, S = tn, gn, Sn
            it += 1
            if it == 1000000:
                return -1.0, 0
        if g < tol_m:
            return (t if t <= max_range_m else -1.0), it
        step = g / (cv + S * sh)
        if step > max_step:
            step = max_step
        if step < min_step:
            step = min_step
        tn = t + step
        at_end = tn > t_end
        if at_end:
            if t_end <= t:
                return -1.0, 0
            tn = t_end

    # Illinois regula falsi on the clearance, from ta (ga > 0) and tb (gb <= 0)
    ta, ga, tb, gb = t, g, tn, gn
    side = 0
    for _ in range(200):
        if tb - ta < tol_m * 1e-3:
            break
        tc = (ta * gb - tb * ga) / (gb - ga)
        if not (ta < tc < tb):
            tc = 0.5 * (ta + tb)
        gc, fx, fy = _clearance_at(tc, ox, oy, oz, dx, dy, dz, R, e0, e1, e2, n0, n1, n2, oe, on, inv_de, inv_dn,
                                   base, nx, nx1, ny1, z)
        if fx != fx:
            return math.nan, _MARCH_NOT_FINITE
        if abs(gc) < tol_m:
            ta = tb = tc
            break
        if gc > 0.0:
            ta, ga = tc, gc
            if side == 1:
                gb *= 0.5
            side = 1
        else:
            tb, gb = tc, gc
            if side == -1:
                ga *= 0.5
            side = -1
    t = 0.5 * (ta + tb)
    return (t if t <= max_range_m else -1.0), 0


_MARCH = None


def load_march_kernel():
    """``(kernel, compiled)``: height_field_march compiled by numba (once per process; the machine
    code is cached next to this file), or the plain-Python function when numba is not installed or
    ``NUMBA_DISABLE_JIT=1``. No fastmath: IEEE arithmetic in the written order, as CPython does it
    (the same bits; tests/test_terrain.py)."""
    global _MARCH
    if _MARCH is None:
        def sig(nb):
            f8, i8 = nb.float64, nb.int64
            heights = nb.types.Array(f8, 1, "C", readonly=True)
            return nb.types.Tuple((f8, i8))(*(f8,) * 26, *(i8,) * 5, heights, f8[:, ::1])
        _MARCH = compile_kernel(height_field_march, sig, (_sphere_hit, _sphere_exit, _clearance_at))
    return _MARCH


# ---------------------------------------------------------------- flat
class FlatTerrain:
    """The reference sphere raised by a constant ``height_m``. Exact ray cast."""

    def __init__(self, site: SiteFrame | None = None, height_m: float = 0.0):
        self.site = site if site is not None else SiteFrame()
        self.height_m = float(height_m)
        self.min_height_m = self.max_height_m = self.height_m
        self.radius_m = self.site.radius_m + self.height_m  # the surface sphere's radius, m

    def height_at(self, r_mci) -> float:
        return self.height_m

    def altitude(self, r_mci) -> float:
        x, y, z = r_mci
        return math.sqrt(x * x + y * y + z * z) - self.radius_m

    def ray_cast(self, origin_mci, dir_mci, max_range_m: float) -> Optional[float]:
        # _unit and _sphere_hit written out (the same operations in the same order: the same
        # bits; the LRF casts once per sample, and the two calls cost a third of the cast)
        d0, d1, d2 = dir_mci
        n = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        dx, dy, dz = d0 / n, d1 / n, d2 / n
        ox, oy, oz = origin_mci
        radius = self.radius_m
        r0 = math.sqrt(ox * ox + oy * oy + oz * oz)
        b = ox * dx + oy * dy + oz * dz
        c = (r0 - radius) * (r0 + radius)
        if c <= 0.0:
            return None if 0.0 > max_range_m else 0.0  # the origin is at or below the surface
        if b >= 0.0:
            return None  # moving away from the centre, outside: no hit
        disc = b * b - c
        if disc < 0.0:
            return None
        t = c / (-b + math.sqrt(disc))
        if t > max_range_m:
            return None
        return t


def flat(site: SiteFrame | None = None, height_m: float = 0.0) -> FlatTerrain:
    """Flat terrain: the reference sphere (plus an optional constant height)."""
    return FlatTerrain(site, height_m)


# ---------------------------------------------------------- height field
#: the most a compressed height-field file (.npz) may unpack to, bytes: a small file can claim
#: (and a compressed one can hold) far more than memory
HEIGHT_FIELD_MAX_BYTES = 2 * 1024 ** 3


class HeightField:
    """Heights (m above the reference sphere) on a regular east/north grid.

    Parameters
    ----------
    site : SiteFrame whose tangent plane carries the grid.
    heights : 2-D array, ``heights[i_north, j_east]``.
    spacing_m : grid spacing, scalar or ``(d_east_m, d_north_m)``.
    origin_en_m : (east, north) of ``heights[0, 0]``; default: grid centred
        on the site.
    base_height_m : height outside the grid.
    """

    def __init__(self, site: SiteFrame | None, heights, spacing_m,
                 origin_en_m=None, base_height_m: float = 0.0):
        self.site = site if site is not None else SiteFrame()
        z = np.ascontiguousarray(np.asarray(heights, dtype=np.float64))
        if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 2:
            raise ConfigError(f"height field: heights must be a 2-D array of at least 2x2, got shape {z.shape}")
        if not np.all(np.isfinite(z)):
            raise ConfigError("height field: heights contain NaN or infinity; allowed: finite values")
        sp = np.broadcast_to(np.asarray(spacing_m, dtype=float), (2,))
        if not (np.all(np.isfinite(sp)) and np.all(sp > 0)):
            raise ConfigError(f"height field: spacing_m = {spacing_m!r}; allowed: > 0 (m)")
        self.heights = z
        self.heights.setflags(write=False)
        self.ny, self.nx = z.shape
        self.d_east_m, self.d_north_m = float(sp[0]), float(sp[1])
        if origin_en_m is None:
            origin_en_m = (-0.5 * (self.nx - 1) * self.d_east_m,
                           -0.5 * (self.ny - 1) * self.d_north_m)
        self.origin_east_m, self.origin_north_m = float(origin_en_m[0]), float(origin_en_m[1])
        self.base_height_m = float(base_height_m)
        self.min_height_m = float(min(z.min(), self.base_height_m))
        self.max_height_m = float(max(z.max(), self.base_height_m))
        # Lipschitz bound of the interpolated surface (m/m), grid padded with base.
        zp = np.pad(z, 1, constant_values=self.base_height_m)
        ge = np.abs(np.diff(zp, axis=1)).max() / self.d_east_m
        gn = np.abs(np.diff(zp, axis=0)).max() / self.d_north_m
        self.max_slope = float(math.hypot(ge, gn))
        self._build_slope_tiles(zp)
        self._flat = memoryview(z.reshape(-1))
        self._inv_de = 1.0 / self.d_east_m
        self._inv_dn = 1.0 / self.d_north_m
        s = self.site
        self._E, self._N = s.east_mci, s.north_mci
        self._R = s.radius_m
        # height_field_march's grid constants (min_step: a quarter cell); heights and slope tiles as
        # arrays for the compiled march, as a memoryview and lists (Python floats) for the
        # interpreted one
        grid = (self._R, self._R + self.min_height_m, self._tile_len, 0.25 * min(self.d_east_m, self.d_north_m),
                *self._E, *self._N, self.origin_east_m, self.origin_north_m, self._inv_de, self._inv_dn,
                self.base_height_m, self.nx, self.ny, self._TILE, *self._ntiles)
        self._march_grid = grid + (z.reshape(-1), np.array(self._slope_tiles, dtype=np.float64))
        self._march_grid_interpreted = grid + (self._flat, self._slope_tiles)

    _TILE = 16  # cells per slope tile

    def _build_slope_tiles(self, zp):
        """Local Lipschitz bounds for the ray march: for each tile of
        _TILE x _TILE cells, the largest gradient magnitude of the bilinear
        surface in that tile *and its 8 neighbours* (so it bounds the slope
        anywhere within one tile width of a point in the tile). The grid is
        padded by one ring of base-height nodes; beyond that the surface is
        flat (slope 0)."""
        T = self._TILE
        dxe = np.abs(np.diff(zp, axis=1)) / self.d_east_m      # (ny+2, nx+1)
        dyn = np.abs(np.diff(zp, axis=0)) / self.d_north_m     # (ny+1, nx+2)
        cell = np.hypot(np.maximum(dxe[:-1, :], dxe[1:, :]),
                        np.maximum(dyn[:, :-1], dyn[:, 1:]))  # (ny+1, nx+1), padded cells
        nty = -(-cell.shape[0] // T)
        ntx = -(-cell.shape[1] // T)
        c = np.zeros((nty * T, ntx * T))
        c[:cell.shape[0], :cell.shape[1]] = cell
        tiles = c.reshape(nty, T, ntx, T).max(axis=(1, 3))
        tp = np.pad(tiles, 2)                    # tile (ti, tj) -> tp[ti + 2, tj + 2]
        nb = np.zeros_like(tp)
        for a in (-1, 0, 1):
            for b in (-1, 0, 1):
                nb = np.maximum(nb, np.roll(np.roll(tp, a, axis=0), b, axis=1))
        self._slope_tiles = nb.tolist()
        self._ntiles = (nb.shape[0], nb.shape[1])
        self._tile_len = T * min(self.d_east_m, self.d_north_m)

    def local_slope(self, east: float, north: float) -> float:
        """Upper bound of the surface slope within one tile of (east, north)."""
        ci = int(math.floor((north - self.origin_north_m) * self._inv_dn)) + 1
        cj = int(math.floor((east - self.origin_east_m) * self._inv_de)) + 1
        T = self._TILE
        ti = ci // T + 2
        tj = cj // T + 2
        ny, nx = self._ntiles
        if 0 <= ti < ny and 0 <= tj < nx:
            return self._slope_tiles[ti][tj]
        return 0.0

    # ---------------------------------------------------------- queries
    @property
    def extent_m(self):
        """(east_min, east_max, north_min, north_max) of the grid."""
        return (self.origin_east_m, self.origin_east_m + (self.nx - 1) * self.d_east_m,
                self.origin_north_m, self.origin_north_m + (self.ny - 1) * self.d_north_m)

    def height_en(self, east: float, north: float) -> float:
        """Bilinear height at tangent-plane coordinates (east, north), m."""
        fx = (east - self.origin_east_m) * self._inv_de
        fy = (north - self.origin_north_m) * self._inv_dn
        nx = self.nx
        if fx < 0.0 or fy < 0.0 or fx > nx - 1 or fy > self.ny - 1:
            return self.base_height_m
        j = int(fx)
        i = int(fy)
        if j >= nx - 1:
            j = nx - 2
        if i >= self.ny - 1:
            i = self.ny - 2
        ax = fx - j
        ay = fy - i
        k = i * nx + j
        z = self._flat
        z00 = z[k]
        z01 = z[k + 1]
        z10 = z[k + nx]
        z11 = z[k + nx + 1]
        return (z00 + ax * (z01 - z00)) + ay * ((z10 + ax * (z11 - z10)) - (z00 + ax * (z01 - z00)))

    def height_at(self, r_mci) -> float:
        x, y, z = r_mci
        k = self._R / math.sqrt(x * x + y * y + z * z)
        E, N = self._E, self._N
        return self.height_en((E[0] * x + E[1] * y + E[2] * z) * k,
                              (N[0] * x + N[1] * y + N[2] * z) * k)

    def heights_en(self, east, north):
        """Vectorised bilinear heights for arrays of east/north (numpy)."""
        e = np.asarray(east, dtype=float)
        n = np.asarray(north, dtype=float)
        fx = (e - self.origin_east_m) * self._inv_de
        fy = (n - self.origin_north_m) * self._inv_dn
        inside = (fx >= 0) & (fy >= 0) & (fx <= self.nx - 1) & (fy <= self.ny - 1)
        j = np.clip(np.floor(fx).astype(int), 0, self.nx - 2)
        i = np.clip(np.floor(fy).astype(int), 0, self.ny - 2)
        ax = np.clip(fx - j, 0.0, 1.0)
        ay = np.clip(fy - i, 0.0, 1.0)
        z = self.heights
        top = z[i, j] + ax * (z[i, j + 1] - z[i, j])
        bot = z[i + 1, j] + ax * (z[i + 1, j + 1] - z[i + 1, j])
        h = top + ay * (bot - top)
        return np.where(inside, h, self.base_height_m)

    def ray_cast(self, origin_mci, dir_mci, max_range_m: float,
                 tol_m: float = 1e-3) -> Optional[float]:
        """First intersection of the ray with the terrain (m along the ray), or None.

        Method: skip to the sphere R + max height; then march with steps
        bounded by the clearance over a local Lipschitz bound of the surface
        (per 16 x 16-cell tile and its neighbours; such a step never passes
        through terrain), but at least a quarter grid cell; the first sample
        below the surface brackets the crossing, which Illinois regula falsi
        refines to ``tol_m``. The march and the refinement: ``height_field_march``
        (compiled by numba when it is there).
        """
        ox, oy, oz = origin_mci
        dx, dy, dz = _unit(dir_mci)
        R = self._R
        top = R + self.max_height_m + 1e-6
        t0 = _sphere_hit(ox, oy, oz, dx, dy, dz, top)
        if t0 is None or t0 > max_range_m:
            return None
        p0 = (ox + t0 * dx, oy + t0 * dy, oz + t0 * dz)
        # (x ** 2 is CPython's pow(), which compiled code would not reproduce bit for bit)
        rr = math.sqrt(p0[0] ** 2 + p0[1] ** 2 + p0[2] ** 2)
        march, compiled = load_march_kernel()
        t, it = march(ox, oy, oz, dx, dy, dz, max_range_m, tol_m, t0, top, rr,
                      *(self._march_grid if compiled else self._march_grid_interpreted))
        if it == _MARCH_NOT_FINITE:
            raise ValueError(f"ray cast: a point of the ray is not finite (origin {tuple(origin_mci)!r}, "
                             f"direction {tuple(dir_mci)!r}, m)")
        if it >= 0:
            self.last_iterations = it
        return None if t < 0.0 else t

    # --------------------------------------------------------- file I/O
    def save(self, path) -> None:
        """Write a .npz that :meth:`load` reads back (heights + metadata)."""
        s = self.site
        np.savez(path, heights=self.heights,
                 spacing_m=np.array([self.d_east_m, self.d_north_m]),
                 origin_en_m=np.array([self.origin_east_m, self.origin_north_m]),
                 base_height_m=np.array(self.base_height_m),
                 site_lat_rad=np.array(s.lat_rad), site_lon_rad=np.array(s.lon_rad),
                 site_radius_m=np.array(s.radius_m))

    @classmethod
    def load(cls, path, site: SiteFrame | None = None, spacing_m=None,
             origin_en_m=None, base_height_m=None) -> "HeightField":
        """Load a height field from ``.npz`` or ``.npy``.

        ``.npz`` keys: ``heights`` (2-D, m, ``[i_north, j_east]``, required),
        ``spacing_m`` (scalar or [d_east, d_north], m, required unless given
        as an argument), optional ``origin_en_m`` ([east, north] of
        heights[0, 0], m; default: centred on the site), ``base_height_m``
        (default 0), ``site_lat_rad``, ``site_lon_rad``, ``site_radius_m``
        (used when ``site`` is not given). ``.npy``: the heights array only;
        pass ``spacing_m`` (and optionally the rest) as arguments.
        Arguments override file metadata.
        """
        p = Path(path)
        try:
            data = np.load(p, allow_pickle=False)
        except FileNotFoundError:
            raise ConfigError(f"{p}: height field file not found") from None
        except (ValueError, OSError) as e:
            raise ConfigError(f"{p}: not a .npy/.npz height field: {e}") from None
        meta = {}
        if isinstance(data, np.lib.npyio.NpzFile):
            unpacked = sum(i.file_size for i in data.zip.infolist())  # what reading every array would take
            if unpacked > HEIGHT_FIELD_MAX_BYTES:
                data.close()
                raise ConfigError(f"{p}: the height field unpacks to {unpacked:,} bytes; allowed: at most "
                                  f"{HEIGHT_FIELD_MAX_BYTES:,} (a 10,000 x 10,000 float64 grid is 800 MB)")
            with data:
                meta = {k: data[k] for k in data.files}
            if "heights" not in meta:
                raise ConfigError(f"{p}: missing array 'heights' (2-D, m); keys present: {sorted(meta)}")
            unknown = set(meta) - {"heights", "spacing_m", "origin_en_m", "base_height_m",
                                   "site_lat_rad", "site_lon_rad", "site_radius_m"}
            if unknown:
                raise ConfigError(f"{p}: unknown key(s) {sorted(unknown)}; allowed: heights, spacing_m, "
                                  "origin_en_m, base_height_m, site_lat_rad, site_lon_rad, site_radius_m")
            heights = meta["heights"]
        else:
            heights = data
        # what each array may hold: real numbers, this many of them, finite (a DEM from elsewhere
        # may hold text, booleans, complex numbers or NaN; each named, not a traceback)
        sizes = {"spacing_m": (1, 2), "origin_en_m": (2,), "base_height_m": (1,), "site_lat_rad": (1,),
                 "site_lon_rad": (1,), "site_radius_m": (1,)}
        for key, arr in [("heights", np.asarray(heights)), *((k, np.asarray(meta[k])) for k in sizes if k in meta)]:
            if arr.dtype.kind not in "iuf":
                raise ConfigError(f"{p}: {key} holds {arr.dtype} values; allowed: real numbers")
            if key != "heights" and (arr.size not in sizes[key] or not np.all(np.isfinite(arr))):
                raise ConfigError(f"{p}: {key} = {arr.tolist()!r:.80}; allowed: {' or '.join(map(str, sizes[key]))} "
                                  f"finite number(s)")
        if "site_radius_m" in meta and not float(meta["site_radius_m"]) > 0:
            raise ConfigError(f"{p}: site_radius_m = {float(meta['site_radius_m'])}; allowed: > 0 (m)")
        if spacing_m is None:
            if "spacing_m" not in meta:
                raise ConfigError(f"{p}: field spacing_m missing (grid spacing, m; allowed: > 0); "
                                  "store it in the .npz or pass spacing_m=")
            spacing_m = meta["spacing_m"].tolist()
        if origin_en_m is None and "origin_en_m" in meta:
            origin_en_m = meta["origin_en_m"].tolist()
        if base_height_m is None:
            base_height_m = float(meta["base_height_m"]) if "base_height_m" in meta else 0.0
        if site is None:
            site = SiteFrame(float(meta.get("site_lat_rad", 0.0)), float(meta.get("site_lon_rad", 0.0)),
                             float(meta.get("site_radius_m", SiteFrame().radius_m)))
        try:
            return cls(site, heights, spacing_m, origin_en_m, base_height_m)
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None


# ----------------------------------------------------------- procedural
#: generated height fields kept per process: {(generator, site, its arguments): template}; a
#: campaign over a scenario with a [terrain] table builds the same grid for every run (~2-7 ms)
_GENERATED: dict[tuple, HeightField] = {}
#: the most the kept grids may hold together (bytes of heights), so a worker's memory stays bounded
GENERATED_KEEP_BYTES = 64 * 1024 ** 2


def _generated_once(generator):
    """A height-field generator (deterministic in its arguments) whose grid is computed once per
    process for each site and set of arguments. Every call returns a HeightField of its own (a
    shallow copy: its own per-flight state, e.g. ``last_iterations``) sharing the read-only
    heights and slope tiles of the first one, so no run sees another's state."""
    import copy
    import inspect

    sig = inspect.signature(generator)

    @functools.wraps(generator)
    def generate(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        site = bound.arguments.pop("site")
        s = site if site is not None else SiteFrame()
        key = (generator.__qualname__, s.lat_rad, s.lon_rad, s.radius_m, tuple(bound.arguments.items()))
        try:
            template = _GENERATED.get(key)
        except TypeError:  # an argument that cannot key a dict (a list): built for this call alone
            return generator(*args, **kwargs)
        if template is None:
            template = generator(*args, **kwargs)
            kept = sum(t.heights.nbytes for t in _GENERATED.values())
            if kept + template.heights.nbytes > GENERATED_KEEP_BYTES:
                _GENERATED.clear()
            if template.heights.nbytes <= GENERATED_KEEP_BYTES:
                _GENERATED[key] = template
        field = copy.copy(template)
        field.site = s  # (equal to the template's: same latitude, longitude and radius)
        return field

    return generate


def crater_profile(r_m, radius_m: float, depth_m: float, rim_height_m: float,
                   ejecta_exponent: float = 3.0, cutoff: float = 3.0):
    """Height (m, relative to the surrounding plain) of a simple crater at
    distance r from its centre: a parabolic bowl from ``-depth_m`` at the
    centre to ``+rim_height_m`` at the rim (r = radius), then a raised rim /
    ejecta blanket decaying like ``(r/radius)^-ejecta_exponent``, tapered to
    reach exactly 0 at ``cutoff`` radii (continuous everywhere)::

        x = r / radius
        x <= 1:       -depth + (depth + rim) x^2
        1 < x < c:    rim (x^-k - c^-k) / (1 - c^-k)
        x >= c:       0

    Works on floats and numpy arrays."""
    x = np.asarray(r_m, dtype=float) / radius_m
    inside = -depth_m + (depth_m + rim_height_m) * x * x
    ck = cutoff ** -ejecta_exponent
    xo = np.clip(x, 1.0, cutoff)
    outside = rim_height_m * (np.power(xo, -ejecta_exponent) - ck) / (1.0 - ck)
    out = np.where(x <= 1.0, inside, outside)
    return float(out) if out.ndim == 0 else out


def grid_coords(extent_m, spacing_m):
    """(east[nx], north[ny]) axes of a square grid covering +-extent_m around the site."""
    n = int(round(2.0 * extent_m / spacing_m)) + 1
    ax = -extent_m + spacing_m * np.arange(n)
    return ax, ax.copy()


def add_crater(heights, east_axis, north_axis, center_en_m, radius_m, depth_m,
               rim_height_m, ejecta_exponent: float = 3.0, influence: float = 3.0):
    """Add a crater (in place) to a heights[i_north, j_east] array."""
    ce, cn = center_en_m
    reach = influence * radius_m
    j0, j1 = np.searchsorted(east_axis, [ce - reach, ce + reach])
    i0, i1 = np.searchsorted(north_axis, [cn - reach, cn + reach])
    if j1 <= j0 or i1 <= i0:
        return heights
    E, N = np.meshgrid(east_axis[j0:j1], north_axis[i0:i1])
    r = np.hypot(E - ce, N - cn)
    heights[i0:i1, j0:j1] += crater_profile(r, radius_m, depth_m, rim_height_m, ejecta_exponent,
                                            influence)
    return heights


@_generated_once
def crater(site: SiteFrame | None = None, center_en_m=(0.0, 0.0), radius_m: float = 500.0,
           depth_m: float = 100.0, rim_height_m: float = 20.0, extent_m: float | None = None,
           spacing_m: float = 10.0, base_height_m: float = 0.0) -> HeightField:
    """A height field holding one crater (profile: :func:`crater_profile`)."""
    if extent_m is None:
        extent_m = max(abs(center_en_m[0]), abs(center_en_m[1])) + 4.0 * radius_m
    e, n = grid_coords(extent_m, spacing_m)
    z = np.full((n.size, e.size), float(base_height_m))
    add_crater(z, e, n, center_en_m, radius_m, depth_m, rim_height_m)
    return HeightField(site, z, spacing_m, (e[0], n[0]), base_height_m)


def procedural_craters(site: SiteFrame | None, rng: np.random.Generator, *,
                       extent_m: float = 5000.0, spacing_m: float = 10.0,
                       n_craters: int = 60, min_radius_m: float = 5.0,
                       max_radius_m: float = 400.0, slope_exponent: float = 2.0,
                       depth_ratio: float = 0.2, rim_ratio: float = 0.04,
                       keep_clear_m: float = 0.0, base_height_m: float = 0.0) -> HeightField:
    """A crater field: ``n_craters`` simple craters, centres uniform over the
    grid, radii from a truncated power law N(>r) ~ r^-slope_exponent (the
    lunar size-frequency distribution has slope ~2), depth = depth_ratio * D
    (fresh simple craters: ~0.2 D), rim height = rim_ratio * D. Craters whose
    rim would come within ``keep_clear_m`` of the site are skipped. Every
    draw comes from ``rng``."""
    e, n = grid_coords(extent_m, spacing_m)
    z = np.full((n.size, e.size), float(base_height_m))
    a = slope_exponent
    lo, hi = min_radius_m ** -a, max_radius_m ** -a
    for _ in range(int(n_craters)):
        u = rng.random()
        r = (lo + u * (hi - lo)) ** (-1.0 / a)
        ce, cn = rng.uniform(-extent_m, extent_m, size=2)
        if math.hypot(ce, cn) < keep_clear_m + 1.5 * r:
            continue
        d = 2.0 * r
        add_crater(z, e, n, (ce, cn), r, depth_ratio * d, rim_ratio * d)
    return HeightField(site, z, spacing_m, (e[0], n[0]), base_height_m)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@_generated_once
def crater_rim_step(site: SiteFrame | None = None, *, rim_radius_m: float = 15000.0,
                    step_m: float = 3000.0, wall_width_m: float = 500.0,
                    rim_lip_m: float = 100.0, spacing_m: float = 50.0,
                    margin_m: float = 3000.0) -> HeightField:
    """The HAKUTO-R M1 terrain: the site lies on the floor (height 0) of a
    large crater centred on it; the wall rises by ``step_m`` (default ~3 km)
    over ``wall_width_m`` at ``rim_radius_m`` from the site, topped by a
    raised lip of ``rim_lip_m`` that decays outward, then a plateau at
    ``step_m`` (also the height outside the grid). Any ground track toward the
    site crosses the rim ``rim_radius_m`` uprange, and an LRF looking down sees
    its range jump by about ``step_m`` as the lander passes over the rim.

    Radial profile: floor 0 for r < rim_radius - wall_width; smoothstep wall
    up to step_m + rim_lip at r = rim_radius; outside,
    step_m + rim_lip * exp(-(r - rim_radius) / wall_width).
    """
    extent = rim_radius_m + margin_m
    e, n = grid_coords(extent, spacing_m)
    E, N = np.meshgrid(e, n)
    r = np.hypot(E, N)
    top = step_m + rim_lip_m
    wall = top * _smoothstep((r - (rim_radius_m - wall_width_m)) / wall_width_m)
    outside = step_m + rim_lip_m * np.exp(-(r - rim_radius_m) / wall_width_m)
    z = np.where(r <= rim_radius_m, wall, outside)
    return HeightField(site, z, spacing_m, (e[0], n[0]), base_height_m=step_m)


def crater_rim_step_profile(r_m, *, rim_radius_m: float = 15000.0, step_m: float = 3000.0,
                            wall_width_m: float = 500.0, rim_lip_m: float = 100.0):
    """The analytic radial profile used by :func:`crater_rim_step` (for tests)."""
    r = np.asarray(r_m, dtype=float)
    top = step_m + rim_lip_m
    wall = top * _smoothstep((r - (rim_radius_m - wall_width_m)) / wall_width_m)
    outside = step_m + rim_lip_m * np.exp(-(r - rim_radius_m) / wall_width_m)
    return np.where(r <= rim_radius_m, wall, outside)


# ------------------------------------------------------- rotating view
class RotatingTerrain:
    """View of a Moon-fixed terrain from MCI when the Moon rotates.

    The plant keeps ``t_s`` current; queries are rotated into the Moon-fixed
    frame at that time (about MCI +z at ``omega_rad_s``)."""

    def __init__(self, terrain, omega_rad_s: float = MOON_ROTATION_RATE, t_s: float = 0.0):
        self.inner = terrain
        self.omega = float(omega_rad_s)
        self.t_s = float(t_s)
        self.site = terrain.site
        self.min_height_m = terrain.min_height_m
        self.max_height_m = terrain.max_height_m

    def height_at(self, r_mci) -> float:
        return self.inner.height_at(moon_fixed_from_mci(r_mci, self.t_s, self.omega))

    def ray_cast(self, origin_mci, dir_mci, max_range_m: float) -> Optional[float]:
        return self.inner.ray_cast(moon_fixed_from_mci(origin_mci, self.t_s, self.omega),
                                   moon_fixed_from_mci(dir_mci, self.t_s, self.omega),
                                   max_range_m)


# ----------------------------------------------------------- [terrain] tables of scenario files
# The schema of a scenario file's [terrain] table (harness/validation.py): one table per type,
# each key a keyword argument of that function, with the range it makes sense in.

MAX_GRID_SIDE = 2001  # cells per side of a generated height field (2001^2 x 8 B = 32 MB per array)


def _grid_side(extent_m: float, spacing_m: float) -> int:
    return int(round(2.0 * extent_m / spacing_m)) + 1


class _FlatTable(Model):
    type: Literal["flat"]
    height_m: float = Field(0.0, ge=-2e4, le=2e4, description="m above the reference sphere")


class _CraterTable(Model):
    type: Literal["crater"]
    center_en_m: Annotated[list[Annotated[float, Field(ge=-1e6, le=1e6)]], Field(min_length=2, max_length=2,
                                                                                  description="[east, north] m")] \
        = [0.0, 0.0]
    radius_m: float = Field(500.0, gt=0.0, le=1e5, description="m")
    depth_m: float = Field(100.0, ge=0.0, le=2e4, description="m")
    rim_height_m: float = Field(20.0, ge=0.0, le=1e4, description="m")
    extent_m: float | None = Field(None, gt=0.0, le=1e6, description="m, half-width of the grid")
    spacing_m: float = Field(10.0, gt=0.0, le=1e4, description="m")
    base_height_m: float = Field(0.0, ge=-2e4, le=2e4, description="m")

    @model_validator(mode="after")
    def _grid(self):
        ext = self.extent_m if self.extent_m is not None else \
            max(abs(self.center_en_m[0]), abs(self.center_en_m[1])) + 4.0 * self.radius_m
        if _grid_side(ext, self.spacing_m) > MAX_GRID_SIDE:
            raise KeyProblem("spacing_m", self.spacing_m,
                             f">= {2 * ext / (MAX_GRID_SIDE - 1):g} m for a {ext:g} m half-width (at most "
                             f"{MAX_GRID_SIDE} grid cells per side)")
        return self


class _CraterRimStepTable(Model):
    type: Literal["crater_rim_step"]
    rim_radius_m: float = Field(15000.0, gt=0.0, le=1e6, description="m")
    step_m: float = Field(3000.0, ge=-2e4, le=2e4, description="m")
    wall_width_m: float = Field(500.0, gt=0.0, le=1e5, description="m")
    rim_lip_m: float = Field(100.0, ge=0.0, le=1e4, description="m")
    spacing_m: float = Field(50.0, gt=0.0, le=1e4, description="m")
    margin_m: float = Field(3000.0, ge=0.0, le=1e6, description="m")

    @model_validator(mode="after")
    def _grid(self):
        ext = self.rim_radius_m + self.margin_m
        if _grid_side(ext, self.spacing_m) > MAX_GRID_SIDE:
            raise KeyProblem("spacing_m", self.spacing_m,
                             f">= {2 * ext / (MAX_GRID_SIDE - 1):g} m for rim_radius_m + margin_m = {ext:g} m "
                             f"(at most {MAX_GRID_SIDE} grid cells per side)")
        return self


TERRAIN_TABLES = {"flat": (_FlatTable, flat), "crater": (_CraterTable, crater),
                  "crater_rim_step": (_CraterRimStepTable, crater_rim_step)}


def terrain_from_table(table: dict, source: str):
    """A scenario's terrain function (``site -> terrain``) from its [terrain] table, or None for
    the flat default. ConfigError names the file, ``[terrain] key``, the value and the range."""
    if not table:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [terrain] must be a table; allowed: type = {', '.join(TERRAIN_TABLES)} "
                          f"and that type's keys")
    kind = table.get("type")
    if not isinstance(kind, str) or kind not in TERRAIN_TABLES:
        raise ConfigError(f"{source}: [terrain] type = {value_text(kind) if 'type' in table else '(missing)'} "
                          f"is invalid; allowed: {', '.join(TERRAIN_TABLES)}")
    model, fn = TERRAIN_TABLES[kind]
    kw = validate(model, table, source, where=("terrain",)).model_dump(exclude_unset=True)
    kw.pop("type")
    if "center_en_m" in kw:
        kw["center_en_m"] = tuple(kw["center_en_m"])
    if kind == "flat" and not kw:
        return None
    return functools.partial(fn, **kw)
