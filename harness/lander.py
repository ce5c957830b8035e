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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from .errors import ConfigError
from .filestamp import is_regular, settled, stamp
from .safetext import printable
from .validation import KeyProblem, Model, check_values, read_toml, validate

DATA_DIR = Path(__file__).resolve().parent / "data" / "landers"


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
    """A 3x3 array as a tuple of tuples of floats (shape and values are the schema's business)."""
    try:
        return tuple(tuple(float(x) for x in row) for row in m)
    except (TypeError, ValueError):
        raise ConfigError(f"inertia = {m!r}; allowed: a 3x3 array of numbers") from None


# --------------------------------------------------------------- schema
# One schema (harness/validation.py) checks lander files and LanderSpecs built in code alike.


def _vec3(lo: float, hi: float, what: str):
    return Annotated[list[Annotated[float, Field(ge=lo, le=hi)]], Field(min_length=3, max_length=3,
                                                                        description=what)]


_Mat3 = Annotated[list[Annotated[list[float], Field(min_length=3, max_length=3)]],
                  Field(min_length=3, max_length=3, description="kg m^2, 3x3, body axes")]
_INERTIA_OK = "symmetric, positive definite, each principal moment < sum of the other two"


def _inertia_problem(key: str, m) -> None:
    for i in range(3):
        for j in range(3):
            if abs(m[i][j] - m[j][i]) > 1e-9 * max(1.0, abs(m[i][j])):
                raise KeyProblem(key, m, f"{_INERTIA_OK} (this one is not symmetric)")
    import numpy as np
    ev = np.linalg.eigvalsh(np.array(m, dtype=float))
    if ev[0] <= 0.0:
        raise KeyProblem(key, m, f"{_INERTIA_OK} (eigenvalues {ev.tolist()} are not all positive)")
    if ev[2] > ev[0] + ev[1] + 1e-9 * ev[2]:
        raise KeyProblem(key, m, f"{_INERTIA_OK} (principal moments {ev.tolist()} violate the triangle inequality)")


class _LanderTable(Model):
    name: str = Field(min_length=1)
    dry_mass_kg: float = Field(ge=1.0, le=1e6, description="kg, without any propellant")
    propellant_mass_kg: float = Field(ge=0.0, le=1e7, description="kg, full main-engine load")
    rcs_propellant_mass_kg: float = Field(20.0, ge=0.0, le=1e6, description="kg")
    inertia_body_kg_m2: _Mat3
    inertia_dry_body_kg_m2: _Mat3 | None = None

    @model_validator(mode="after")
    def _inertia(self):
        _inertia_problem("inertia_body_kg_m2", self.inertia_body_kg_m2)
        if self.inertia_dry_body_kg_m2 is not None:
            _inertia_problem("inertia_dry_body_kg_m2", self.inertia_dry_body_kg_m2)
        return self


class _EngineTable(Model):
    thrust_max_n: float = Field(ge=1e-3, le=1e8, description="N")
    throttle_min: float = Field(ge=0.0, le=1.0)
    throttle_max: float = Field(gt=0.0, le=1.0)
    isp_s: float = Field(ge=1.0, le=1e4, description="s")
    time_constant_s: float = Field(0.15, ge=0.0, le=100.0, description="s, first-order thrust lag")
    # inf (instant slew) is allowed from code (tests of the engine model); a file cannot write inf
    slew_per_s: float = Field(1.0, ge=1e-6, allow_inf_nan=True, description="throttle fraction per second")
    misalignment_rad: float = Field(0.0, ge=0.0, le=0.2, description="rad")
    misalignment_azimuth_rad: float = Field(0.0, ge=-10.0, le=10.0, description="rad")
    thrust_point_body_m: _vec3(-100.0, 100.0, "m, body axes") = [0.0, 0.0, -0.8]

    @model_validator(mode="after")
    def _throttle_order(self):
        if self.throttle_min > self.throttle_max:
            raise KeyProblem("throttle_min", self.throttle_min,
                             f"0 <= throttle_min <= throttle_max ({self.throttle_max:g}) <= 1")
        return self


class _RcsTable(Model):
    torque_max_nm: _vec3(0.0, 1e7, "N m per body axis") = [40.0, 40.0, 30.0]
    isp_s: float = Field(220.0, ge=1.0, le=1e4, description="s")
    lever_arm_m: _vec3(1e-3, 100.0, "m per body axis") = [0.9, 0.9, 0.9]


class _LrfTable(Model):
    boresight_body: _vec3(-1.0, 1.0, "unit vector, body axes") = [0.0, 0.0, -1.0]
    position_body_m: _vec3(-100.0, 100.0, "m, body axes") = [0.0, 0.0, 0.0]

    @model_validator(mode="after")
    def _unit(self):
        b = self.boresight_body
        if abs(math.sqrt(b[0] ** 2 + b[1] ** 2 + b[2] ** 2) - 1.0) > 1e-6:
            raise KeyProblem("boresight_body", b, "a unit vector: |boresight| = 1 (+-1e-6)")
        return self


class _ImuTable(Model):
    position_body_m: _vec3(-100.0, 100.0, "m, body axes") = [0.0, 0.0, 0.0]


class LanderFile(Model):
    """A lander TOML file (module docstring)."""

    lander: _LanderTable
    engine: _EngineTable
    rcs: _RcsTable = _RcsTable()
    lrf: _LrfTable = _LrfTable()
    imu: _ImuTable = _ImuTable()
    propellant_loads: dict[str, Annotated[float, Field(ge=0.0, description="kg")]] = {}

    @model_validator(mode="after")
    def _loads_fit(self):
        for k, v in self.propellant_loads.items():
            if v > self.lander.propellant_mass_kg:
                raise KeyProblem(f"propellant_loads.{k}", v, f"0 <= {k} <= propellant_mass_kg "
                                                             f"({self.lander.propellant_mass_kg:g})")
        return self


# (section, key in the file, LanderSpec field)
_FIELDS = [
    ("lander", "name", "name"), ("lander", "dry_mass_kg", "dry_mass_kg"),
    ("lander", "propellant_mass_kg", "propellant_mass_kg"),
    ("lander", "rcs_propellant_mass_kg", "rcs_propellant_mass_kg"),
    ("lander", "inertia_body_kg_m2", "inertia_body_kg_m2"),
    ("lander", "inertia_dry_body_kg_m2", "inertia_dry_body_kg_m2"),
    ("engine", "thrust_max_n", "thrust_max_n"), ("engine", "throttle_min", "throttle_min"),
    ("engine", "throttle_max", "throttle_max"), ("engine", "isp_s", "isp_s"),
    ("engine", "time_constant_s", "engine_time_constant_s"), ("engine", "slew_per_s", "throttle_slew_per_s"),
    ("engine", "misalignment_rad", "thrust_misalignment_rad"),
    ("engine", "misalignment_azimuth_rad", "thrust_misalignment_azimuth_rad"),
    ("engine", "thrust_point_body_m", "thrust_point_body_m"),
    ("rcs", "torque_max_nm", "rcs_torque_max_nm"), ("rcs", "isp_s", "rcs_isp_s"),
    ("rcs", "lever_arm_m", "rcs_lever_arm_m"),
    ("lrf", "boresight_body", "lrf_boresight_body"), ("lrf", "position_body_m", "lrf_position_body_m"),
    ("imu", "position_body_m", "imu_position_body_m"),
]


def _validate(spec: LanderSpec) -> None:
    """Check a LanderSpec (from a file or from code) against the lander file schema."""
    d: dict = {"propellant_loads": dict(spec.propellant_loads_kg)}
    for sec, key, fld in _FIELDS:
        d.setdefault(sec, {})[key] = getattr(spec, fld)
    validate(LanderFile, d, spec.source)


# --------------------------------------------------------------- loading
def lander_from_dict(d: dict, source: str = "<memory>") -> LanderSpec:
    """Build a LanderSpec from the parsed TOML structure (see module docstring)."""
    check_values(d, source)
    f = validate(LanderFile, d, source)
    kwargs = {fld: getattr(getattr(f, sec), key) for sec, key, fld in _FIELDS}
    kwargs["propellant_loads_kg"] = tuple(f.propellant_loads.items())
    return LanderSpec(source=source, **kwargs)


def lander_path(path_or_name) -> Path:
    p = Path(path_or_name)
    try:
        if p.suffix == ".toml" or os.sep in str(path_or_name) or p.exists():
            return p
    except (OSError, ValueError):  # too long for the file system, a NUL byte: not a file; load_lander names it
        return p
    return DATA_DIR / f"{path_or_name}.toml"


_LOADED: dict[tuple, LanderSpec] = {}


def load_lander(path_or_name="reference") -> LanderSpec:
    """Load a lander TOML file by path, or by name from harness/data/landers/.

    A LanderSpec is immutable, so a file read before is not parsed and checked again while it is
    unchanged (``harness.filestamp``: a campaign flies the same lander thousands of times)."""
    p = lander_path(path_or_name)
    key = stamp(p)
    if not is_regular(key):
        avail = sorted(x.stem for x in DATA_DIR.glob("*.toml"))
        raise ConfigError(f"{printable(str(p), 200)}: lander file not found (shipped landers: {', '.join(avail)})")
    spec = _LOADED.get(key)
    if spec is None:
        spec = lander_from_dict(read_toml(p, what="lander file"), source=str(p))
        if settled(key):
            if len(_LOADED) > 64:
                _LOADED.clear()
            _LOADED[key] = spec
    return spec
