"""Lander specification and its TOML data file.

``load_lander("reference")`` reads ``harness/data/landers/reference.toml``;
``load_lander(path)`` reads any file. A missing, mistyped or out-of-range
field, or an unknown key, raises :class:`harness.errors.ConfigError` whose
message names the file, the field (``[section] key``) and the allowed range.

File layout (all SI units; see reference.toml for a commented example)::

    [lander]  name, dry_mass_kg, propellant_mass_kg, rcs_propellant_mass_kg,
              inertia_body_kg_m2 (wet, 3x3), inertia_dry_body_kg_m2 (optional)
    [engine]  thrust_max_n, throttle_min, throttle_max, isp_s, time_constant_s,
              slew_per_s, misalignment_rad, misalignment_azimuth_rad,
              thrust_point_body_m
    [rcs]     torque_max_nm[3], isp_s, lever_arm_m[3]
    [lrf]     boresight_body[3], position_body_m[3]
    [imu]     position_body_m[3]
    [propellant_loads]  name = kg, ...   (optional named initial loads)
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

DATA_DIR = Path(__file__).resolve().parent / "data" / "landers"

INF = math.inf


@dataclass(frozen=True)
class LanderSpec:
    """Physical description of a lander (SI units, body axes).

    Masses: ``dry_mass_kg`` excludes all propellant; ``propellant_mass_kg`` is
    the full main-engine load; ``rcs_propellant_mass_kg`` the RCS load. The
    wet mass is their sum. Inertia (about the centre of mass, body axes) is
    interpolated linearly in total mass between ``inertia_dry_body_kg_m2``
    (at dry mass) and ``inertia_body_kg_m2`` (at wet mass).
    """

    name: str
    dry_mass_kg: float
    propellant_mass_kg: float
    inertia_body_kg_m2: tuple  # 3x3 tuple of tuples, at wet mass
    thrust_max_n: float
    throttle_min: float
    throttle_max: float
    isp_s: float
    engine_time_constant_s: float = 0.15
    throttle_slew_per_s: float = 1.0
    thrust_misalignment_rad: float = 0.0
    thrust_misalignment_azimuth_rad: float = 0.0
    thrust_point_body_m: tuple = (0.0, 0.0, -0.8)
    rcs_propellant_mass_kg: float = 20.0
    rcs_torque_max_nm: tuple = (40.0, 40.0, 30.0)
    rcs_isp_s: float = 220.0
    rcs_lever_arm_m: tuple = (0.9, 0.9, 0.9)
    inertia_dry_body_kg_m2: tuple | None = None
    lrf_boresight_body: tuple = (0.0, 0.0, -1.0)
    lrf_position_body_m: tuple = (0.0, 0.0, 0.0)
    imu_position_body_m: tuple = (0.0, 0.0, 0.0)
    propellant_loads_kg: tuple = ()  # ((name, kg), ...)
    source: str = field(default="<memory>", compare=False)

    def __post_init__(self):
        # normalise containers to tuples of floats so the spec is immutable
        s = object.__setattr__
        s(self, "inertia_body_kg_m2", _mat3(self.inertia_body_kg_m2))
        if self.inertia_dry_body_kg_m2 is None:
            s(self, "inertia_dry_body_kg_m2", self.inertia_body_kg_m2)
        else:
            s(self, "inertia_dry_body_kg_m2", _mat3(self.inertia_dry_body_kg_m2))
        for f in ("thrust_point_body_m", "rcs_torque_max_nm", "rcs_lever_arm_m",
                  "lrf_boresight_body", "lrf_position_body_m", "imu_position_body_m"):
            s(self, f, tuple(float(x) for x in getattr(self, f)))
        loads = self.propellant_loads_kg
        if isinstance(loads, dict):
            loads = tuple(loads.items())
        s(self, "propellant_loads_kg", tuple((str(k), float(v)) for k, v in loads))
        _validate(self)

    # derived ---------------------------------------------------------
    @property
    def wet_mass_kg(self) -> float:
        return self.dry_mass_kg + self.propellant_mass_kg + self.rcs_propellant_mass_kg

    @property
    def exhaust_velocity_mps(self) -> float:
        from .frames import G0
        return self.isp_s * G0

    def propellant_load(self, name: str) -> float:
        """Named initial main-propellant load (kg) from [propellant_loads]."""
        for k, v in self.propellant_loads_kg:
            if k == name:
                return v
        raise KeyError(f"lander {self.name!r} ({self.source}) has no propellant load "
                       f"{name!r}; known: {[k for k, _ in self.propellant_loads_kg]}")

    def inertia_at_mass(self, mass_kg: float):
        """Inertia (3x3 tuple) at total mass, linear between dry and wet."""
        mw, md = self.wet_mass_kg, self.dry_mass_kg
        a = 1.0 if mw <= md else min(1.0, max(0.0, (mass_kg - md) / (mw - md)))
        Iw, Id = self.inertia_body_kg_m2, self.inertia_dry_body_kg_m2
        return tuple(tuple(Id[i][j] + a * (Iw[i][j] - Id[i][j]) for j in range(3))
                     for i in range(3))

    def replace(self, **changes) -> "LanderSpec":
        return dataclasses.replace(self, **changes)


def _mat3(m):
    try:
        rows = tuple(tuple(float(x) for x in row) for row in m)
    except TypeError:
        raise ConfigError(f"inertia must be a 3x3 array, got {m!r}") from None
    if len(rows) != 3 or any(len(r) != 3 for r in rows):
        raise ConfigError(f"inertia must be a 3x3 array, got {m!r}")
    return rows


# --------------------------------------------------------------- schema
# (section, key, dataclass field, kind, lo, hi, required)
# kind: "str", "float", "vec3", "mat3"
_SCHEMA = [
    ("lander", "name", "name", "str", None, None, True),
    ("lander", "dry_mass_kg", "dry_mass_kg", "float", 1.0, 1e6, True),
    ("lander", "propellant_mass_kg", "propellant_mass_kg", "float", 0.0, 1e7, True),
    ("lander", "rcs_propellant_mass_kg", "rcs_propellant_mass_kg", "float", 0.0, 1e6, False),
    ("lander", "inertia_body_kg_m2", "inertia_body_kg_m2", "mat3", None, None, True),
    ("lander", "inertia_dry_body_kg_m2", "inertia_dry_body_kg_m2", "mat3", None, None, False),
    ("engine", "thrust_max_n", "thrust_max_n", "float", 1e-3, 1e8, True),
    ("engine", "throttle_min", "throttle_min", "float", 0.0, 1.0, True),
    ("engine", "throttle_max", "throttle_max", "float", 0.0, 1.0, True),
    ("engine", "isp_s", "isp_s", "float", 1.0, 1e4, True),
    ("engine", "time_constant_s", "engine_time_constant_s", "float", 0.0, 100.0, False),
    ("engine", "slew_per_s", "throttle_slew_per_s", "float", 1e-6, INF, False),
    ("engine", "misalignment_rad", "thrust_misalignment_rad", "float", 0.0, 0.2, False),
    ("engine", "misalignment_azimuth_rad", "thrust_misalignment_azimuth_rad", "float", -10.0, 10.0, False),
    ("engine", "thrust_point_body_m", "thrust_point_body_m", "vec3", -100.0, 100.0, False),
    ("rcs", "torque_max_nm", "rcs_torque_max_nm", "vec3", 0.0, 1e7, False),
    ("rcs", "isp_s", "rcs_isp_s", "float", 1.0, 1e4, False),
    ("rcs", "lever_arm_m", "rcs_lever_arm_m", "vec3", 1e-3, 100.0, False),
    ("lrf", "boresight_body", "lrf_boresight_body", "vec3", -1.0, 1.0, False),
    ("lrf", "position_body_m", "lrf_position_body_m", "vec3", -100.0, 100.0, False),
    ("imu", "position_body_m", "imu_position_body_m", "vec3", -100.0, 100.0, False),
]
_FIELD_NAME = {f: f"[{sec}] {key}" for sec, key, f, *_ in _SCHEMA}
_SECTIONS = {"lander", "engine", "rcs", "lrf", "imu", "propellant_loads"}


def _rng_text(lo, hi, name):
    if lo is not None and hi is not None and hi != INF:
        return f"{lo:g} <= {name} <= {hi:g}"
    if lo is not None:
        return f"{name} >= {lo:g}"
    return "any"


def _fail(src, fld, msg):
    raise ConfigError(f"{src}: {_FIELD_NAME.get(fld, fld)} {msg}")


def _validate(spec: LanderSpec):
    src = spec.source
    for sec, key, fld, kind, lo, hi, _req in _SCHEMA:
        v = getattr(spec, fld)
        allowed = _rng_text(lo, hi, key)
        if kind == "float":
            if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
                _fail(src, fld, f"= {v!r} is not a number; allowed: {allowed}")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                _fail(src, fld, f"= {v!r} is out of range; allowed: {allowed}")
        elif kind == "vec3":
            if len(v) != 3 or any(math.isnan(x) for x in v):
                _fail(src, fld, f"= {v!r} must be 3 numbers; allowed: each {allowed}")
            if any(x < lo or x > hi for x in v):
                _fail(src, fld, f"= {list(v)!r} is out of range; allowed: each component {allowed}")
        elif kind == "str":
            if not isinstance(v, str) or not v:
                _fail(src, fld, f"= {v!r} must be a non-empty string")
    if spec.throttle_min > spec.throttle_max:
        _fail(src, "throttle_min", f"= {spec.throttle_min!r} is above throttle_max = "
              f"{spec.throttle_max!r}; allowed: 0 <= throttle_min <= throttle_max <= 1")
    if spec.throttle_max <= 0.0:
        _fail(src, "throttle_max", f"= {spec.throttle_max!r}; allowed: 0 < throttle_max <= 1")
    for fld in ("inertia_body_kg_m2", "inertia_dry_body_kg_m2"):
        _check_inertia(src, fld, getattr(spec, fld))
    b = spec.lrf_boresight_body
    if abs(math.sqrt(b[0] ** 2 + b[1] ** 2 + b[2] ** 2) - 1.0) > 1e-6:
        _fail(src, "lrf_boresight_body", f"= {list(b)!r} is not a unit vector; allowed: |boresight| = 1 (+-1e-6)")
    for k, v in spec.propellant_loads_kg:
        if not (0.0 <= v <= spec.propellant_mass_kg):
            raise ConfigError(f"{src}: [propellant_loads] {k} = {v!r} is out of range; allowed: "
                              f"0 <= {k} <= propellant_mass_kg ({spec.propellant_mass_kg:g})")


def _check_inertia(src, fld, m):
    allowed = "symmetric, positive definite, each principal moment < sum of the other two"
    for i in range(3):
        for j in range(3):
            if math.isnan(m[i][j]) or abs(m[i][j] - m[j][i]) > 1e-9 * max(1.0, abs(m[i][j])):
                _fail(src, fld, f"= {m!r} is not symmetric; allowed: {allowed}")
    import numpy as np
    ev = np.linalg.eigvalsh(np.array(m, dtype=float))
    if ev[0] <= 0.0:
        _fail(src, fld, f"= {m!r} is not positive definite (eigenvalues {ev.tolist()}); allowed: {allowed}")
    if ev[2] > ev[0] + ev[1] + 1e-9 * ev[2]:
        _fail(src, fld, f"= {m!r} violates the triangle inequality of principal moments; allowed: {allowed}")


# --------------------------------------------------------------- loading
def lander_from_dict(d: dict, source: str = "<memory>") -> LanderSpec:
    """Build a LanderSpec from the parsed TOML structure (see module docstring)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a table of sections, got {type(d).__name__}")
    for sec in d:
        if sec not in _SECTIONS:
            raise ConfigError(f"{source}: unknown section [{sec}]; allowed sections: "
                              f"{', '.join(sorted(_SECTIONS))}")
    kwargs = {}
    known = {}
    for sec, key, fld, kind, lo, hi, req in _SCHEMA:
        known.setdefault(sec, []).append(key)
        table = d.get(sec, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{sec}] must be a table")
        allowed = _rng_text(lo, hi, key)
        if key not in table:
            if req:
                extra = f"; allowed: {allowed}" if kind == "float" else ""
                raise ConfigError(f"{source}: missing required field [{sec}] {key}{extra}")
            continue
        v = table[key]
        try:
            if kind == "float":
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise TypeError
                v = float(v)
            elif kind == "vec3":
                if not isinstance(v, list) or len(v) != 3:
                    raise TypeError
                v = tuple(float(x) for x in v if not isinstance(x, bool))
                if len(v) != 3:
                    raise TypeError
            elif kind == "mat3":
                v = _mat3(v)
            elif kind == "str":
                if not isinstance(v, str):
                    raise TypeError
        except (TypeError, ValueError, ConfigError):
            shape = {"float": "a number", "vec3": "an array of 3 numbers",
                     "mat3": "a 3x3 array of numbers", "str": "a string"}[kind]
            raise ConfigError(f"{source}: [{sec}] {key} = {v!r} must be {shape}"
                              + (f"; allowed: {allowed}" if kind != "str" else "")) from None
        kwargs[fld] = v
    for sec, table in d.items():
        if sec == "propellant_loads":
            continue
        for key in table:
            if key not in known.get(sec, []):
                raise ConfigError(f"{source}: unknown key [{sec}] {key}; allowed keys in "
                                  f"[{sec}]: {', '.join(known.get(sec, []))}")
    loads = d.get("propellant_loads", {})
    if not isinstance(loads, dict):
        raise ConfigError(f"{source}: [propellant_loads] must be a table of name = kg")
    for k, v in loads.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{source}: [propellant_loads] {k} = {v!r} must be a number; "
                              f"allowed: 0 <= {k} <= propellant_mass_kg")
    kwargs["propellant_loads_kg"] = tuple((k, float(v)) for k, v in loads.items())
    return LanderSpec(source=source, **kwargs)


def lander_path(path_or_name) -> Path:
    p = Path(path_or_name)
    if p.suffix == ".toml" or os.sep in str(path_or_name) or p.exists():
        return p
    return DATA_DIR / f"{path_or_name}.toml"


def load_lander(path_or_name="reference") -> LanderSpec:
    """Load a lander TOML file by path, or by name from harness/data/landers/."""
    p = lander_path(path_or_name)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        avail = sorted(x.stem for x in DATA_DIR.glob("*.toml"))
        raise ConfigError(f"{p}: lander file not found (shipped landers: {avail})") from None
    try:
        d = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return lander_from_dict(d, source=str(p))
