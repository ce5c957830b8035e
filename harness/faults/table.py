"""Faults from their TOML tables: the type registry and the check of every parameter."""
from __future__ import annotations

import functools
from dataclasses import fields
from typing import Annotated, Any, Literal

from pydantic import Field, create_model, field_validator, model_validator

from harness.errors import ConfigError
from harness.validation import KeyProblem, Model, key_text, validate, value_text
from harness.faults.actuator import EngineOff, RcsFailure, ThrottleStuck, ThrustLoss, ThrustScale
from harness.faults.base import Fault
from harness.faults.link import (DIRECTIONS, MESSAGES, LinkBitErrors, LinkDelay, LinkDrop, LinkDuplicate,
                                 LinkJitter, LinkOutage, LinkReorder)
from harness.faults.sensor import (ImuBias, ImuGlitch, ImuNoise, ImuStuckZero, LrfBias, LrfDropout,
                                   LrfLateAcquisition, LrfMaxRange, LrfNoise, LrfNoOutput, LrfScale, LrfStuck)
from harness.faults.timing import CommandDelay, CommandLoss, CycleOverrun
from harness.faults.triggers import EVENTS, INF, PHASES, START, Trigger


FAULT_TYPES: dict[str, type] = {c.type_name: c for c in (
    LrfNoOutput, LrfLateAcquisition, LrfDropout, LrfBias, LrfScale, LrfStuck, LrfNoise, LrfMaxRange,
    ImuBias, ImuNoise, ImuStuckZero, ImuGlitch,
    LinkBitErrors, LinkDrop, LinkDuplicate, LinkDelay, LinkJitter, LinkReorder, LinkOutage,
    CommandDelay, CycleOverrun, CommandLoss,
    ThrustScale, ThrustLoss, ThrottleStuck, EngineOff, RcsFailure)}

# The schema of a fault table (harness/validation.py): every parameter a fault class takes, with
# its type, range and unit (the description); errors name the file, ``[[faults]] #n key``, the
# value and what is allowed.


def _num(lo, hi, unit=""):
    return Annotated[float, Field(ge=lo, le=hi, description=unit or None)]


def _int(lo, hi, unit=""):
    return Annotated[int, Field(ge=lo, le=hi, description=unit or None)]


def _vec3(unit):
    return Annotated[list[float], Field(min_length=3, max_length=3, description=f"3 numbers, body axes, {unit}")]


_PARAMS: dict[str, Any] = {
    "prob": _num(0.0, 1.0), "ber": _num(0.0, 1.0, "bit error rate"), "burst_samples": _int(1, 10 ** 6, "samples"),
    "cycles": _int(1, 10 ** 6, "cycles"), "max_cycles": _int(1, 10 ** 6, "cycles"), "scale": _num(0.0, 10.0),
    "fraction": _num(0.0, 1.0), "value": _num(0.0, 1.0) | None, "sigma_m": _num(0.0, 1e6, "m"),
    "outlier_prob": _num(0.0, 1.0), "outlier_sigma_m": _num(0.0, 1e7, "m"), "max_range_m": _num(0.0, 1e7, "m"),
    "value_m": _num(0.0, 1e7, "m") | None, "scale_error": _num(-0.99, 10.0), "bias_m": _num(-1e6, 1e6, "m"),
    "acquire_altitude_m": _num(-1e5, 1e7, "m"), "accel_noise_density": _num(0.0, 100.0, "m/s^2/sqrt(Hz)"),
    "gyro_noise_density": _num(0.0, 10.0, "rad/s/sqrt(Hz)"),
    "direction": Literal[tuple(DIRECTIONS)], "message": Literal[tuple(MESSAGES)],
    "mode": Literal[tuple(ImuGlitch.MODES)],
    "axes": Annotated[str, Field(pattern=r"^[xyz]+$", description="a string of the letters x, y, z")],
    "accel": bool, "gyro": bool,
    "accel_bias_mps2": _vec3("m/s^2"), "gyro_bias_rad_s": _vec3("rad/s"), "spike_dv_mps": _vec3("m/s"),
    "spike_dtheta_rad": _vec3("rad"),
}


class _FaultTable(Model):
    """What every fault table has: ``type``, ``trigger``, ``duration_s``, ``id``."""

    type: str
    trigger: Any = Field("start", description='"start" or a table with one of time_s, altitude_m, phase, event, '
                                              'after (and optionally delay_s)')
    duration_s: Any = Field(INF, description='s, >= 0, or "inf"')
    id: str = ""

    @field_validator("duration_s")
    @classmethod
    def _duration(cls, v):
        if v == "inf":
            return INF
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= INF or v != v:
            raise KeyProblem("", v, 'a number of seconds >= 0, or "inf" (the rest of the run)')
        return float(v)


class _TriggerTable(Model):
    time_s: float | None = Field(None, description="s, simulated time")
    altitude_m: float | None = Field(None, description="m above the terrain")
    phase: Any = Field(None, description=f"one of {', '.join(PHASES)}")
    event: Literal[tuple(EVENTS)] | None = None
    after: Annotated[str, Field(min_length=1, description="the id of another fault")] | None = None
    delay_s: float = Field(0.0, ge=0.0, description="s")

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("time_s", "altitude_m", "phase", "event", "after") if getattr(self, k) is not None]
        if len(given) != 1:
            raise KeyProblem("", "a table with " + (", ".join(given) or "none of them"),
                             "exactly one of time_s, altitude_m, phase, event, after (and optionally delay_s)")
        if self.phase is not None and (isinstance(self.phase, bool) or
                                       (self.phase not in PHASES and self.phase not in PHASES.values())):
            raise KeyProblem("phase", self.phase, ", ".join(PHASES))
        return self


@functools.cache
def fault_model(cls) -> type[Model]:
    """The schema of the TOML table of fault class ``cls``."""
    spec = {}
    for f in fields(cls):
        if f.init and f.name not in ("trigger", "duration_s", "id"):
            spec[f.name] = (_PARAMS.get(f.name, Any), f.default)
    return create_model(f"{cls.__name__}Table", __base__=_FaultTable, **spec)


def _trigger(value, source: str, loc: tuple) -> Trigger:
    if isinstance(value, Trigger):
        return value
    if value == "start":
        return START
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key_text((*loc, 'trigger'))} = {value_text(value)} is invalid; allowed: "
                          f'"start" or a table with one of time_s, altitude_m, phase, event, after (and '
                          f"optionally delay_s)")
    t = validate(_TriggerTable, value, source, where=(*loc, "trigger"))
    kind = next(k for k in ("time_s", "altitude_m", "phase", "event", "after") if getattr(t, k) is not None)
    v = getattr(t, kind)
    return Trigger({"time_s": "time", "altitude_m": "altitude"}.get(kind, kind),
                   float(v) if kind in ("time_s", "altitude_m") else v, t.delay_s)


def parse_trigger(value, where: str = "trigger") -> Trigger:
    """A Trigger from its TOML form: ``"start"`` or a table with one of ``time_s``,
    ``altitude_m``, ``phase``, ``event``, ``after`` and optionally ``delay_s`` (checked by the
    fault-table schema above; errors start with ``where``)."""
    return _trigger(value, where, ())


def make_fault(spec: dict, where: str = "fault", *, source: str | None = None, loc: tuple = ()) -> Fault:
    """A fault from its TOML table: ``type`` plus the class's fields (see docs/faults.md).

    Errors name ``source`` (the file) and the key under ``loc`` (e.g. ``("faults", 0)`` gives
    ``[[faults]] #1 bias_m``); without them, ``where`` is the prefix (API use)."""
    if source is None:
        source, loc = where, ()
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: {key_text(loc, leaf_is_table=True) if loc else 'fault'} = {value_text(spec)} is "
                          f"invalid; allowed: a table with a 'type' key")
    t = spec.get("type")
    if not isinstance(t, str) or t not in FAULT_TYPES:
        got = value_text(t) if "type" in spec else "(missing)"
        raise ConfigError(f"{source}: {key_text((*loc, 'type'))} = {got} is invalid; allowed: {', '.join(FAULT_TYPES)}")
    cls = FAULT_TYPES[t]
    m = validate(fault_model(cls), spec, source, where=loc)
    kw = {k: getattr(m, k) for k in m.model_fields_set if k != "type"}
    for k, v in kw.items():
        if isinstance(v, list) and k != "trigger":  # a vector (the schema checked its numbers); a trigger: _trigger
            kw[k] = tuple(float(x) for x in v)
        elif isinstance(v, int) and not isinstance(v, bool) and cls.__dataclass_fields__[k].type in ("float",
                                                                                                      "float | None"):
            kw[k] = float(v)
    if "trigger" in kw:
        kw["trigger"] = _trigger(kw["trigger"], source, loc)
    return cls(**kw)
