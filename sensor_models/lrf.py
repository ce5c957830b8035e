"""Laser rangefinder (LRF) model.

Measures the slant range (m) from the LRF along its boresight to the terrain
(ray cast against the plant's terrain). Timing:

* Samples are taken at ``rate_hz`` on the grid t_k = k / rate_hz (k = 0, 1, ...).
  ``update`` is called each flight cycle (or plant step) with the plant state
  at ``t_s``; every sample instant in (last call, t_s] is sampled, using the
  state extrapolated back linearly to the sample instant (exact when the call
  times are multiples of the sample period).
* A sample taken at t_k is delivered ``latency_s`` later, from a history
  buffer (never by sleeping): ``update`` returns the newest sample with
  t_k + latency_s <= t_s. ``LrfReading.new`` is true on the first call that
  delivers a given sample.
* ``next_event_t_s``: before this simulated time (s) no sample is due and the
  delivered reading stays the object last returned, so a caller may skip
  ``due``/``update``/``deliver`` for a cycle at t_s < next_event_t_s and keep
  that reading (a lower bound: a call at or after it may still change nothing).

Validity of a sample (``valid`` False, ``range_m`` 0.0 otherwise):

* powered (``LaserRangefinder.powered``; IM-1: never on) and acquired: the
  LRF has acquired once every configured acquisition condition holds at a
  sample: slant range <= ``acquire_range_m``, true altitude above the terrain
  <= ``acquire_altitude_m``, t >= ``acquire_time_s`` (None = condition not
  used). Once acquired it stays acquired.
* a terrain hit between ``min_range_m`` and the effective maximum range
  ``max_range_m * degradation(speed)``; degradation(v) = 1 for
  v <= ``degrade_speed_mps``, else max(``degrade_floor``,
  1 - ``degrade_per_mps`` * (v - degrade_speed_mps)); v = speed over the
  ground.
* not dropped: each sample is lost with probability ``dropout_prob``.

Noise: range + N(0, sigma), sigma = sqrt(noise_sigma_m^2 +
(noise_frac * range)^2) (independent constant and range-proportional parts);
with probability ``outlier_prob`` an extra N(0, outlier_sigma_m) error.
Every draw comes from the scenario's generator, a fixed number per sample
(drawn in blocks), so runs reproduce bit for bit.

Two ways to take a sample, the same bits: ``_sample`` in Python, over any terrain
(``update``, ``take_samples``), and ``flat_sample_kernel``, compiled by numba,
over flat terrain (``FlatTerrain``): ``update_from_vector``, which the closed loop
calls with the plant's state vector, takes the samples with the kernel when the
terrain is flat and numba compiles (``compiled_samples``), else with ``_sample``
(height fields, a rotating Moon's terrain view, no numba or NUMBA_DISABLE_JIT=1).
Both keep their state (draws, powered, acquired) in one model vector
(MODEL_FIELDS), so either may take the next sample.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace as _dc_replace
from typing import NamedTuple, Optional

import numpy as np

from harness.errors import ConfigError
from harness.jit import compile_kernel
from harness.terrain import FlatTerrain
from sensor_models._config import config_from_dict

_BLOCK = 256
_EVENT_MARGIN_S = 1e-6  # next_event_t_s comes this much (s) before the instant it stands for
_NEVER = -math.inf  # next_event_t_s when the next call is due at once


class LrfReading(NamedTuple):
    range_m: float      # slant range along the boresight, m (0.0 when not valid)
    valid: bool
    sample_t_s: float   # simulated time the range was measured, s
    new: bool           # first delivery of this sample


NO_READING = LrfReading(0.0, False, 0.0, False)

# Builds an LrfReading from a complete 4-tuple: ~1 us cheaper than the
# NamedTuple's Python-level _replace (update() runs every flight cycle).
_new_reading = tuple.__new__


@dataclass(frozen=True)
class LrfConfig:
    rate_hz: float = 10.0
    latency_s: float = 0.0
    min_range_m: float = 1.0
    max_range_m: float = 20000.0
    noise_sigma_m: float = 0.5          # constant 1-sigma part, m
    noise_frac: float = 0.001           # range-proportional 1-sigma part (0.1 % of range)
    dropout_prob: float = 0.0
    outlier_prob: float = 0.0
    outlier_sigma_m: float = 0.0
    acquire_range_m: Optional[float] = None
    acquire_altitude_m: Optional[float] = None
    acquire_time_s: Optional[float] = None
    degrade_speed_mps: float = math.inf
    degrade_per_mps: float = 0.0
    degrade_floor: float = 0.0
    powered: bool = True
    boresight_body: Optional[tuple] = None   # None: take it from the lander spec
    position_body_m: Optional[tuple] = None

    def __post_init__(self):
        src = "LrfConfig"
        def chk(name, lo, hi=math.inf, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < lo or v > hi:
                hi_t = "" if hi == math.inf else f" <= {hi:g}"
                raise ConfigError(f"{src}: field {name} = {v!r} is out of range; allowed: {lo:g} <= {name}{hi_t}")
        chk("rate_hz", 1e-6, 1e6)
        chk("latency_s", 0.0, 3600.0)
        chk("min_range_m", 0.0)
        chk("max_range_m", 0.0)
        chk("noise_sigma_m", 0.0)
        chk("noise_frac", 0.0, 1.0)
        chk("dropout_prob", 0.0, 1.0)
        chk("outlier_prob", 0.0, 1.0)
        chk("outlier_sigma_m", 0.0)
        chk("acquire_range_m", 0.0, allow_none=True)
        chk("acquire_altitude_m", -1e5, allow_none=True)
        chk("acquire_time_s", -math.inf, allow_none=True)
        chk("degrade_speed_mps", 0.0)
        chk("degrade_per_mps", 0.0)
        chk("degrade_floor", 0.0, 1.0)
        if self.min_range_m > self.max_range_m:
            raise ConfigError(f"{src}: field min_range_m = {self.min_range_m!r} is above max_range_m = "
                              f"{self.max_range_m!r}; allowed: 0 <= min_range_m <= max_range_m")

    @classmethod
    def from_dict(cls, d: dict, source: str = "LrfConfig") -> "LrfConfig":
        return config_from_dict(cls, d, source, "LRF")

    def replace(self, **kw) -> "LrfConfig":
        return _dc_replace(self, **kw)


class LaserRangefinder:
    """See the module docstring. ``boresight_body`` (unit) and
    ``position_body`` (m, from the centre of mass) are body-axis vectors,
    normally the lander spec's ``lrf_boresight_body`` / ``lrf_position_body_m``
    (the config's own values, when set, take precedence)."""

    def __init__(self, config: LrfConfig, rng: np.random.Generator,
                 boresight_body=(0.0, 0.0, -1.0), position_body=(0.0, 0.0, 0.0)):
        self._config = config
        self.rng = rng
        b = config.boresight_body if config.boresight_body is not None else boresight_body
        n = math.sqrt(sum(x * x for x in b))
        self.boresight_body = (b[0] / n, b[1] / n, b[2] / n)
        p = config.position_body_m if config.position_body_m is not None else position_body
        self.position_body = tuple(float(x) for x in p)
        self._offset = self.position_body != (0.0, 0.0, 0.0)  # the LRF is off the centre of mass
        self._cast_range_m = max(config.max_range_m, config.acquire_range_m or 0.0)
        self.period_s = 1.0 / config.rate_hz
        self._k_next = 0            # index of the next sample instant
        self.next_sample_t_s = 0.0  # and its time (s): ``update`` needs the plant state from then on
        self.next_event_t_s = -math.inf  # see the module docstring: the first call is due at once
        self._latency_s = config.latency_s
        self._degrades = config.degrade_speed_mps != math.inf  # the range can shrink with speed
        self._noise_var = config.noise_sigma_m ** 2  # constant part of the noise variance, m^2
        # the configuration's values a sample reads, as attributes of its own (the config is frozen
        # and ``config`` read-only, so they cannot go stale)
        self._min_range_m, self._max_range_m = config.min_range_m, config.max_range_m
        self._noise_frac = config.noise_frac
        self._dropout_prob = config.dropout_prob
        self._outlier_prob, self._outlier_sigma_m = config.outlier_prob, config.outlier_sigma_m
        self._acquire_range_m = config.acquire_range_m
        self._acquire_altitude_m = config.acquire_altitude_m
        self._acquire_time_s = config.acquire_time_s
        self._buf: deque = deque()  # pending samples, oldest first
        self._delivered: LrfReading = NO_READING
        # the model vector (MODEL_FIELDS) and the draws after it: what both ways of sampling keep
        # their state in (powered, acquired, the next draw), so either may take the next sample
        m = self._model = np.zeros(_MODEL_SIZE)
        m[_M_BORE:_M_BORE + 3] = self.boresight_body
        m[_M_POS:_M_POS + 3] = self.position_body
        m[_M_OFFSET] = self._offset
        m[[_M_CAST, _M_MIN, _M_MAX, _M_NOISE_VAR, _M_NOISE_FRAC, _M_DROPOUT, _M_OUTLIER_P, _M_OUTLIER_SIGMA]] = (
            self._cast_range_m, config.min_range_m, config.max_range_m, self._noise_var, config.noise_frac,
            config.dropout_prob, config.outlier_prob, config.outlier_sigma_m)
        for use, at, value in ((_M_BY_RANGE, _M_ACQ_RANGE, config.acquire_range_m),
                               (_M_BY_ALT, _M_ACQ_ALT, config.acquire_altitude_m),
                               (_M_BY_TIME, _M_ACQ_TIME, config.acquire_time_s)):
            m[use], m[at] = (0.0, 0.0) if value is None else (1.0, value)
        m[[_M_DEGRADES, _M_DEG_SPEED, _M_DEG_PER, _M_DEG_FLOOR]] = (
            self._degrades, config.degrade_speed_mps, config.degrade_per_mps, config.degrade_floor)
        m[_M_POWERED] = config.powered
        m[_M_ACQUIRED] = (config.acquire_range_m is None and config.acquire_altitude_m is None
                          and config.acquire_time_s is None)
        m[_M_DRAW_NEXT] = _BLOCK  # no draws yet: the first sample draws a block
        self._mv = memoryview(m)  # (an item of it is cheaper to read and write from Python than m's)
        self._kernel = None          # flat_sample_kernel, compiled, for the terrain below; None: _sample
        self._kernel_terrain = None  # the terrain ``update_from_vector`` was last asked about
        self.samples_taken = 0

    @property
    def config(self) -> LrfConfig:
        """The configuration the LRF was built with (read-only: its values are kept as set up)."""
        return self._config

    @property
    def powered(self) -> bool:
        """The LRF is on (the config's ``powered``; a test or fault hook may switch it)."""
        return self._mv[_M_POWERED] != 0.0

    @powered.setter
    def powered(self, on: bool) -> None:
        self._mv[_M_POWERED] = 1.0 if on else 0.0

    @property
    def acquired(self) -> bool:
        """Every acquisition condition has held at a sample (or none is configured)."""
        return self._mv[_M_ACQUIRED] != 0.0

    @acquired.setter
    def acquired(self, yes: bool) -> None:
        self._mv[_M_ACQUIRED] = 1.0 if yes else 0.0

    @property
    def compiled_samples(self) -> bool:
        """Whether ``update_from_vector`` takes the samples by the compiled ``flat_sample_kernel``
        (over the terrain it was last given: flat, with numba compiling), not by ``_sample``."""
        return self._kernel is not None

    def kernel_array(self) -> np.ndarray:
        """The model vector (MODEL_FIELDS) and the draws after it, that ``flat_sample_kernel`` takes."""
        return self._model

    # random numbers, drawn in blocks (bit-reproducible for a given call sequence)
    def _draws(self) -> None:
        """Refill the draws with a block: per sample two normals and two uniforms (row i of each)."""
        m = self._model
        m[_NORMALS:_UNIFORMS] = self.rng.standard_normal((_BLOCK, 2)).ravel()
        m[_UNIFORMS:] = self.rng.random((_BLOCK, 2)).ravel()
        m[_M_DRAW_NEXT] = 0.0

    def true_range(self, r_mci, q_mci_body, terrain, max_range_m: float) -> Optional[float]:
        """Noise-free slant range from the LRF along its boresight (m) or None."""
        # quat_rotate(q, v) = v + w t + q_vec x t with t = 2 (q_vec x v), written out for the
        # mounting offset and the boresight (same operations in the same order: same bits)
        w, x, y, z = q_mci_body
        r0, r1, r2 = r_mci
        if self._offset:
            vx, vy, vz = self.position_body
            tx = 2.0 * (y * vz - z * vy)
            ty = 2.0 * (z * vx - x * vz)
            tz = 2.0 * (x * vy - y * vx)
            origin = (r0 + (vx + w * tx + (y * tz - z * ty)),
                      r1 + (vy + w * ty + (z * tx - x * tz)),
                      r2 + (vz + w * tz + (x * ty - y * tx)))
        else:
            origin = (r0 + 0.0, r1 + 0.0, r2 + 0.0)
        vx, vy, vz = self.boresight_body
        tx = 2.0 * (y * vz - z * vy)
        ty = 2.0 * (z * vx - x * vz)
        tz = 2.0 * (x * vy - y * vx)
        d = (vx + w * tx + (y * tz - z * ty), vy + w * ty + (z * tx - x * tz), vz + w * tz + (x * ty - y * tx))
        return terrain.ray_cast(origin, d, max_range_m)

    def _sample(self, t_k: float, r_mci, v_mci, q, terrain) -> LrfReading:
        """One sample at t_k (s) from the state there, over any terrain (``flat_sample_kernel`` is
        this over flat terrain, compiled)."""
        mv = self._mv
        i = int(mv[_M_DRAW_NEXT])
        if i >= _BLOCK:
            self._draws()   # a new block
            i = 0
        mv[_M_DRAW_NEXT] = i + 1.0
        j = _NORMALS + 2 * i
        n1, n2, u1, u2 = mv[j], mv[j + 1], mv[j + 2 * _BLOCK], mv[j + 2 * _BLOCK + 1]
        self.samples_taken += 1
        rmax = self._max_range_m
        if self._degrades:  # (else speed > degrade_speed_mps never holds: no need to know it)
            cfg = self._config
            vx, vy, vz = v_mci
            omega = getattr(terrain, "omega", 0.0)
            if omega:
                vx, vy = vx + omega * r_mci[1], vy - omega * r_mci[0]
                speed = math.sqrt(vx * vx + vy * vy + vz ** 2)
            else:
                speed = math.sqrt(vx ** 2 + vy ** 2 + vz ** 2)
            if speed > cfg.degrade_speed_mps:
                rmax *= max(cfg.degrade_floor, 1.0 - cfg.degrade_per_mps * (speed - cfg.degrade_speed_mps))
        # cast to the nominal max range so acquisition-by-range sees the truth
        rng_true = self.true_range(r_mci, q, terrain, self._cast_range_m)
        if mv[_M_POWERED] == 0.0:
            return _new_reading(LrfReading, (0.0, False, t_k, True))
        if mv[_M_ACQUIRED] == 0.0:
            ok = True
            if self._acquire_range_m is not None:
                ok = rng_true is not None and rng_true <= self._acquire_range_m
            if ok and self._acquire_altitude_m is not None:
                x, y, z = r_mci
                alt = math.sqrt(x * x + y * y + z * z) - terrain.site.radius_m - terrain.height_at(r_mci)
                ok = alt <= self._acquire_altitude_m
            if ok and self._acquire_time_s is not None:
                ok = t_k >= self._acquire_time_s - 1e-9
            if not ok:
                return _new_reading(LrfReading, (0.0, False, t_k, True))
            mv[_M_ACQUIRED] = 1.0
        if rng_true is None or rng_true > rmax or rng_true < self._min_range_m:
            return _new_reading(LrfReading, (0.0, False, t_k, True))
        if u1 < self._dropout_prob:
            return _new_reading(LrfReading, (0.0, False, t_k, True))
        meas = rng_true + math.sqrt(self._noise_var + (self._noise_frac * rng_true) ** 2) * n1
        if u2 < self._outlier_prob:
            meas += self._outlier_sigma_m * n2
        if meas < 0.0:
            meas = 0.0
        return _new_reading(LrfReading, (meas, True, t_k, True))

    def due(self, t_s: float) -> bool:
        """A sample instant falls in (last update, t_s]: ``update`` needs the plant state."""
        return self.next_sample_t_s <= t_s + 1e-9

    def update(self, t_s: float, plant_state, terrain) -> LrfReading:
        """Take the samples due by ``t_s`` and return the reading delivered at ``t_s``."""
        if self.next_sample_t_s <= t_s + 1e-9:  # due(t_s)
            self.take_samples(t_s, plant_state.t_s, plant_state.r_mci, plant_state.v_mci,
                              plant_state.q_mci_body, terrain)
        return self.deliver(t_s)

    def _due_instants(self, t_s: float) -> range:
        """The indices k of the sample instants k * period_s to sample by ``t_s``, marked taken."""
        per = self.period_s
        k_last = int(math.floor((t_s + 1e-9) / per))
        k = self._k_next
        if k < k_last - 8:
            # samples older than a few periods before this call cannot be
            # reconstructed from the state: skip them (first call at t >> 0)
            k = k_last - 8
        self._k_next = k_last + 1
        self.next_sample_t_s = self._k_next * per
        return range(k, k_last + 1)

    def take_samples(self, t_s: float, t_state_s: float, r_mci, v_mci, q_mci_body, terrain) -> None:
        """Take the samples due by ``t_s`` (call when ``due(t_s)``) from the plant state at
        ``t_state_s`` (s): position ``r_mci`` (m), velocity ``v_mci`` (m/s), attitude
        ``q_mci_body``; ``deliver(t_s)`` then gives the reading. ``update`` does both from a
        PlantState; a caller holding the state as numbers calls this without building one."""
        per = self.period_s
        r, v = r_mci, v_mci
        append, sample = self._buf.append, self._sample
        for k in self._due_instants(t_s):
            t_k = k * per
            back = t_state_s - t_k
            if back > 1e-12 or back < -1e-12:  # |back| > 1e-12
                rk = (r[0] - v[0] * back, r[1] - v[1] * back, r[2] - v[2] * back)
            else:
                rk = r
            append(sample(t_k, rk, v, q_mci_body, terrain))

    def update_from_vector(self, t_s: float, x, terrain) -> LrfReading:
        """``update`` from the plant's state vector ``x`` (float64, C-contiguous; STATE_FIELDS of
        harness.plant: t_s, r_mci, v_mci, q_mci_body first) at t_s = x[0] (s). Over flat terrain
        (``FlatTerrain``) with numba compiling, the compiled ``flat_sample_kernel`` takes the
        samples (the same bits as ``_sample``), for a fraction of the time; else ``take_samples``."""
        if self.next_sample_t_s <= t_s + 1e-9:  # due(t_s)
            if terrain is not self._kernel_terrain:
                self._use_terrain(terrain)
            kernel = self._kernel
            if kernel is None:
                s = x.tolist()
                self.take_samples(t_s, s[_X_T], s[_X_R:_X_R + 3], s[_X_V:_X_V + 3], s[_X_Q:_X_Q + 4], terrain)
            else:
                m, append, per = self._model, self._buf.append, self.period_s
                for k in self._due_instants(t_s):
                    t_k = k * per
                    meas = kernel(m, x, t_k)
                    if meas == SAMPLE_NEEDS_DRAWS:
                        self._draws()
                        meas = kernel(m, x, t_k)
                    self.samples_taken += 1
                    append(_new_reading(LrfReading, (0.0, False, t_k, True) if meas < 0.0 else (meas, True, t_k, True)))
        return self.deliver(t_s)

    def _use_terrain(self, terrain) -> None:
        """Sample over ``terrain`` from now on: by the compiled kernel when it is flat, else by _sample."""
        kernel, compiled = load_flat_sample_kernel()
        if compiled and type(terrain) is FlatTerrain:
            m = self._model
            m[_M_TERRAIN_R], m[_M_SITE_R], m[_M_HEIGHT] = terrain.radius_m, terrain.site.radius_m, terrain.height_m
            self._kernel = kernel
        else:
            self._kernel = None
        self._kernel_terrain = terrain

    def deliver(self, t_s: float) -> LrfReading:
        """The reading delivered at ``t_s``: the newest sample at least ``latency_s`` old (samples
        are taken by ``update``; between sample instants this alone is enough)."""
        lat = self._latency_s
        buf = self._buf
        if buf:
            due_t_s = t_s + 1e-9
            newest = None
            while buf and buf[0].sample_t_s + lat <= due_t_s:
                newest = buf.popleft()
            if newest is not None:
                self._delivered = newest
                self.next_event_t_s = _NEVER  # the next call delivers it again, no longer new
                return newest
        d = self._delivered
        if d.new:
            d = _new_reading(LrfReading, (d[0], d[1], d[2], False))   # d._replace(new=False)
            self._delivered = d
        # the next sample instant, or the delivery of the oldest pending sample, whichever comes
        # first, less a margin (1 us) far wider than the 1e-9 s tolerance of those tests
        nxt = self.next_sample_t_s
        if buf and buf[0].sample_t_s + lat < nxt:
            nxt = buf[0].sample_t_s + lat
        self.next_event_t_s = nxt - _EVENT_MARGIN_S
        return d


# ------------------------------------------------------------------ the flat-terrain sample kernel
#: The LRF's model vector (``LaserRangefinder.kernel_array()``), what ``flat_sample_kernel`` reads
#: and keeps: the boresight (unit, body axes) and mounting position (m, body) and whether it is off
#: the centre of mass (0/1), the cast range, min and max range (m), the constant noise variance
#: (m^2) and the range-proportional 1-sigma fraction, dropout and outlier probabilities, outlier
#: 1-sigma (m), each acquisition condition's use (0/1) and threshold (m, m, s), degradation with
#: speed (0/1, m/s, 1/(m/s), floor), powered and acquired (0/1), the flat terrain's radius, the
#: reference sphere's and the terrain's height (m, ``FlatTerrain``), and the next unused row of
#: the draws. The draws follow it: a block of _BLOCK rows of two unit normals, then one of
#: _BLOCK rows of two uniforms.
MODEL_FIELDS = ("bore_x", "bore_y", "bore_z", "pos_x", "pos_y", "pos_z", "offset", "cast_range_m",
                "min_range_m", "max_range_m", "noise_var_m2", "noise_frac", "dropout_prob", "outlier_prob",
                "outlier_sigma_m", "acquire_by_range", "acquire_range_m", "acquire_by_altitude",
                "acquire_altitude_m", "acquire_by_time", "acquire_time_s", "degrades", "degrade_speed_mps",
                "degrade_per_mps", "degrade_floor", "powered", "acquired", "terrain_radius_m",
                "site_radius_m", "terrain_height_m", "draw_next")
(_M_BORE, _M_POS, _M_OFFSET, _M_CAST, _M_MIN, _M_MAX, _M_NOISE_VAR, _M_NOISE_FRAC, _M_DROPOUT, _M_OUTLIER_P,
 _M_OUTLIER_SIGMA, _M_BY_RANGE, _M_ACQ_RANGE, _M_BY_ALT, _M_ACQ_ALT, _M_BY_TIME, _M_ACQ_TIME, _M_DEGRADES,
 _M_DEG_SPEED, _M_DEG_PER, _M_DEG_FLOOR, _M_POWERED, _M_ACQUIRED, _M_TERRAIN_R, _M_SITE_R, _M_HEIGHT,
 _M_DRAW_NEXT) = (
    MODEL_FIELDS.index(f) for f in ("bore_x", "pos_x", "offset", "cast_range_m", "min_range_m", "max_range_m",
                                    "noise_var_m2", "noise_frac", "dropout_prob", "outlier_prob",
                                    "outlier_sigma_m", "acquire_by_range", "acquire_range_m",
                                    "acquire_by_altitude", "acquire_altitude_m", "acquire_by_time",
                                    "acquire_time_s", "degrades", "degrade_speed_mps", "degrade_per_mps",
                                    "degrade_floor", "powered", "acquired", "terrain_radius_m",
                                    "site_radius_m", "terrain_height_m", "draw_next"))
_NORMALS = len(MODEL_FIELDS)          # where the block of normals starts (row i: n1, n2)
_UNIFORMS = _NORMALS + 2 * _BLOCK     # and the block of uniforms (row i: u1, u2)
_MODEL_SIZE = _UNIFORMS + 2 * _BLOCK
#: ``flat_sample_kernel``'s answers other than a valid range (m, >= 0 or NaN): the sample is not
#: valid; the draws are used up (nothing was sampled: draw a block and call it again)
SAMPLE_INVALID, SAMPLE_NEEDS_DRAWS = -1.0, -2.0
#: where the state vector ``x`` (harness.plant.STATE_FIELDS) keeps t_s, r_mci, v_mci, q_mci_body
_X_T, _X_R, _X_V, _X_Q = 0, 1, 4, 7


def flat_sample_kernel(m, x, t_k):
    """One sample at t_k (s) over flat terrain (``FlatTerrain``: the sphere of radius
    m[terrain_radius_m]) from the plant's state vector ``x`` at x[0] (s; STATE_FIELDS: MCI position
    (m), velocity (m/s), attitude), extrapolated back to t_k; ``m`` the model vector
    (MODEL_FIELDS and the draws). Returns the measured range (m, >= 0 or NaN), SAMPLE_INVALID or
    SAMPLE_NEEDS_DRAWS. ``LaserRangefinder._sample`` with ``true_range`` and ``FlatTerrain.ray_cast``
    written out, the same operations in the same order (the same bits), plain arithmetic that
    numba compiles as it stands (``load_flat_sample_kernel``)."""
    i = int(m[_M_DRAW_NEXT])
    if i >= _BLOCK:
        return SAMPLE_NEEDS_DRAWS
    m[_M_DRAW_NEXT] = i + 1.0
    n1 = m[_NORMALS + 2 * i]
    n2 = m[_NORMALS + 2 * i + 1]
    u1 = m[_UNIFORMS + 2 * i]
    u2 = m[_UNIFORMS + 2 * i + 1]
    r0, r1, r2 = x[_X_R], x[_X_R + 1], x[_X_R + 2]
    vx, vy, vz = x[_X_V], x[_X_V + 1], x[_X_V + 2]
    back = x[_X_T] - t_k
    if back > 1e-12 or back < -1e-12:  # |back| > 1e-12
        r0, r1, r2 = r0 - vx * back, r1 - vy * back, r2 - vz * back
    rmax = m[_M_MAX]
    if m[_M_DEGRADES] != 0.0:  # (flat terrain does not rotate: the speed over the ground is |v|)
        speed = math.sqrt(vx ** 2 + vy ** 2 + vz ** 2)
        if speed > m[_M_DEG_SPEED]:
            f = 1.0 - m[_M_DEG_PER] * (speed - m[_M_DEG_SPEED])
            rmax *= f if f > m[_M_DEG_FLOOR] else m[_M_DEG_FLOOR]  # max(floor, f) as Python takes it
    # true_range: the mounting offset and the boresight rotated into MCI (quat_rotate written out)
    w, x1, y1, z1 = x[_X_Q], x[_X_Q + 1], x[_X_Q + 2], x[_X_Q + 3]
    if m[_M_OFFSET] != 0.0:
        px, py, pz = m[_M_POS], m[_M_POS + 1], m[_M_POS + 2]
        tx = 2.0 * (y1 * pz - z1 * py)
        ty = 2.0 * (z1 * px - x1 * pz)
        tz = 2.0 * (x1 * py - y1 * px)
        ox = r0 + (px + w * tx + (y1 * tz - z1 * ty))
        oy = r1 + (py + w * ty + (z1 * tx - x1 * tz))
        oz = r2 + (pz + w * tz + (x1 * ty - y1 * tx))
    else:
        ox, oy, oz = r0 + 0.0, r1 + 0.0, r2 + 0.0
    bx, by, bz = m[_M_BORE], m[_M_BORE + 1], m[_M_BORE + 2]
    tx = 2.0 * (y1 * bz - z1 * by)
    ty = 2.0 * (z1 * bx - x1 * bz)
    tz = 2.0 * (x1 * by - y1 * bx)
    d0 = bx + w * tx + (y1 * tz - z1 * ty)
    d1 = by + w * ty + (z1 * tx - x1 * tz)
    d2 = bz + w * tz + (x1 * ty - y1 * tx)
    # FlatTerrain.ray_cast to the cast range: hit, at rng_true (m)
    cast = m[_M_CAST]
    n = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    dx, dy, dz = d0 / n, d1 / n, d2 / n
    radius = m[_M_TERRAIN_R]
    rr = math.sqrt(ox * ox + oy * oy + oz * oz)
    b = ox * dx + oy * dy + oz * dz
    c = (rr - radius) * (rr + radius)
    hit = False
    rng_true = 0.0
    if c <= 0.0:
        hit = not (0.0 > cast)  # the origin is at or below the surface
    elif not (b >= 0.0):  # (else moving away from the centre, outside: no hit)
        disc = b * b - c
        if not (disc < 0.0):
            rng_true = c / (-b + math.sqrt(disc))
            hit = not (rng_true > cast)
    if m[_M_POWERED] == 0.0:
        return SAMPLE_INVALID
    if m[_M_ACQUIRED] == 0.0:
        ok = True
        if m[_M_BY_RANGE] != 0.0:
            ok = hit and rng_true <= m[_M_ACQ_RANGE]
        if ok and m[_M_BY_ALT] != 0.0:
            alt = math.sqrt(r0 * r0 + r1 * r1 + r2 * r2) - m[_M_SITE_R] - m[_M_HEIGHT]
            ok = alt <= m[_M_ACQ_ALT]
        if ok and m[_M_BY_TIME] != 0.0:
            ok = t_k >= m[_M_ACQ_TIME] - 1e-9
        if not ok:
            return SAMPLE_INVALID
        m[_M_ACQUIRED] = 1.0
    if not hit or rng_true > rmax or rng_true < m[_M_MIN]:
        return SAMPLE_INVALID
    if u1 < m[_M_DROPOUT]:
        return SAMPLE_INVALID
    meas = rng_true + math.sqrt(m[_M_NOISE_VAR] + (m[_M_NOISE_FRAC] * rng_true) ** 2) * n1
    if u2 < m[_M_OUTLIER_P]:
        meas += m[_M_OUTLIER_SIGMA] * n2
    if meas < 0.0:
        meas = 0.0
    return meas


_FLAT_SAMPLE = None


def load_flat_sample_kernel():
    """``(kernel, compiled)``: flat_sample_kernel compiled by numba (once per process, cached on
    disk), or the plain-Python one without numba or with ``NUMBA_DISABLE_JIT=1``."""
    global _FLAT_SAMPLE
    if _FLAT_SAMPLE is None:
        _FLAT_SAMPLE = compile_kernel(flat_sample_kernel,
                                      lambda nb: nb.float64(nb.float64[::1], nb.float64[::1], nb.float64))
    return _FLAT_SAMPLE
