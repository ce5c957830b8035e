"""Faults from their TOML tables: the type registry and the check of every parameter."""
from __future__ import annotations

import math
from dataclasses import fields

from harness.errors import ConfigError
from harness.faults.actuator import EngineOff, RcsFailure, ThrottleStuck, ThrustLoss, ThrustScale
from harness.faults.base import Fault
from harness.faults.link import (DIRECTIONS, MESSAGES, LinkBitErrors, LinkDelay, LinkDrop, LinkDuplicate,
                                 LinkJitter, LinkOutage, LinkReorder)
from harness.faults.sensor import (ImuBias, ImuGlitch, ImuNoise, ImuStuckZero, LrfBias, LrfDropout,
                                   LrfLateAcquisition, LrfMaxRange, LrfNoise, LrfNoOutput, LrfScale, LrfStuck)
from harness.faults.timing import CommandDelay, CommandLoss, CycleOverrun
from harness.faults.triggers import INF, parse_trigger


FAULT_TYPES: dict[str, type] = {c.type_name: c for c in (
    LrfNoOutput, LrfLateAcquisition, LrfDropout, LrfBias, LrfScale, LrfStuck, LrfNoise, LrfMaxRange,
    ImuBias, ImuNoise, ImuStuckZero, ImuGlitch,
    LinkBitErrors, LinkDrop, LinkDuplicate, LinkDelay, LinkJitter, LinkReorder, LinkOutage,
    CommandDelay, CycleOverrun, CommandLoss,
    ThrustScale, ThrustLoss, ThrottleStuck, EngineOff, RcsFailure)}

# allowed ranges of numeric parameters: (lo, hi); anything else is checked by type
_RANGES = {
    "prob": (0.0, 1.0), "ber": (0.0, 1.0), "burst_samples": (1, 10 ** 6), "cycles": (1, 10 ** 6),
    "max_cycles": (1, 10 ** 6), "scale": (0.0, 10.0), "fraction": (0.0, 1.0), "value": (0.0, 1.0),
    "sigma_m": (0.0, 1e6), "outlier_prob": (0.0, 1.0), "outlier_sigma_m": (0.0, 1e7),
    "max_range_m": (0.0, 1e7), "value_m": (0.0, 1e7), "scale_error": (-0.99, 10.0),
    "bias_m": (-1e6, 1e6), "acquire_altitude_m": (-1e5, 1e7), "accel_noise_density": (0.0, 100.0),
    "gyro_noise_density": (0.0, 10.0), "duration_s": (0.0, INF),
}
_CHOICES = {"direction": DIRECTIONS, "message": MESSAGES, "mode": ImuGlitch.MODES}


def make_fault(spec: dict, where: str = "fault") -> Fault:
    """A fault from its TOML table: ``type`` plus the class's fields (see docs/faults.md)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} = {spec!r}; allowed: a table with a 'type' key")
    t = spec.get("type")
    if t not in FAULT_TYPES:
        raise ConfigError(f"{where}.type = {t!r}; allowed: {', '.join(FAULT_TYPES)}")
    cls = FAULT_TYPES[t]
    names = [f.name for f in fields(cls) if f.init]
    kw = {}
    for k, v in spec.items():
        if k == "type":
            continue
        if k not in names:
            raise ConfigError(f"{where} ({t}): unknown key {k!r}; allowed keys: type, {', '.join(names)}")
        key = f"{where}.{k}"
        if k == "trigger":
            v = parse_trigger(v, key)
        elif k == "id":
            if not isinstance(v, str):
                raise ConfigError(f"{key} = {v!r}; allowed: a string")
        elif k in _CHOICES:
            if v not in _CHOICES[k]:
                raise ConfigError(f"{key} = {v!r}; allowed: {', '.join(_CHOICES[k])}")
        elif k == "axes":
            if not isinstance(v, str) or not v or any(c not in "xyz" for c in v):
                raise ConfigError(f"{key} = {v!r}; allowed: a string of the letters x, y, z")
        elif k in ("accel", "gyro"):
            if not isinstance(v, bool):
                raise ConfigError(f"{key} = {v!r}; allowed: true, false")
        elif k in ("accel_bias_mps2", "gyro_bias_rad_s", "spike_dv_mps", "spike_dtheta_rad"):
            if not isinstance(v, list) or len(v) != 3 or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
                raise ConfigError(f"{key} = {v!r}; allowed: a list of 3 finite numbers")
            v = tuple(float(x) for x in v)
        else:
            lo, hi = _RANGES.get(k, (-INF, INF))
            if v == "inf" and k == "duration_s":
                v = INF
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or not lo <= v <= hi:
                raise ConfigError(f"{key} = {v!r} is out of range; allowed: {lo:g} <= {k} <= {hi:g}")
            if k in ("cycles", "max_cycles", "burst_samples"):
                if v != int(v):
                    raise ConfigError(f"{key} = {v!r}; allowed: an integer")
                v = int(v)
            else:
                v = float(v)
        kw[k] = v
    return cls(**kw)
