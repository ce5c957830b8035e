"""When a fault starts: :class:`Trigger`, its constructors and its TOML form."""
from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import ConfigError

INF = math.inf

PHASES = {"idle": 0, "braking": 1, "approach": 2, "terminal": 3, "touchdown": 4, "contingency": 5}
EVENTS = ("first_valid_lrf", "phase_change")


# Triggers -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trigger:
    """When a fault starts. ``kind``:

    * ``start``     at the first cycle (t = 0)
    * ``time``      at simulated time ``value`` s
    * ``altitude``  the first cycle the true height above the terrain is <= ``value`` m
    * ``phase``     the first cycle the flight code's guidance phase (COMMAND.mode) is ``value``
                    (a name from PHASES or its number)
    * ``event``     ``first_valid_lrf`` (the LRF delivers its first valid sample) or
                    ``phase_change`` (the guidance phase differs from the previous cycle's)
    * ``after``     when the fault with id ``value`` starts

    ``delay_s`` is added to the instant the condition first holds.
    """

    kind: str = "start"
    value: float | str | None = None
    delay_s: float = 0.0

    def describe(self) -> str:
        d = f" + {self.delay_s:g} s" if self.delay_s else ""
        if self.kind == "start":
            return "from the start" + d
        if self.kind == "time":
            return f"at t = {self.value:g} s" + d
        if self.kind == "altitude":
            return f"below {self.value:g} m" + d
        if self.kind == "phase":
            return f"in phase {self.value}" + d
        if self.kind == "event":
            return f"on {self.value}" + d
        return f"after fault {self.value!r}" + d


START = Trigger()


def at_time(t_s: float, delay_s: float = 0.0) -> Trigger:
    return Trigger("time", float(t_s), delay_s)


def below_altitude(altitude_m: float, delay_s: float = 0.0) -> Trigger:
    return Trigger("altitude", float(altitude_m), delay_s)


def in_phase(phase: str | int, delay_s: float = 0.0) -> Trigger:
    return Trigger("phase", phase, delay_s)


def on_event(event: str, delay_s: float = 0.0) -> Trigger:
    return Trigger("event", event, delay_s)


def after(fault_id: str, delay_s: float = 0.0) -> Trigger:
    return Trigger("after", fault_id, delay_s)


def parse_trigger(value, where: str = "trigger") -> Trigger:
    """A Trigger from its TOML form: ``"start"`` or a table with one of ``time_s``,
    ``altitude_m``, ``phase``, ``event``, ``after`` and optionally ``delay_s``."""
    if isinstance(value, Trigger):
        return value
    if value == "start":
        return START
    if not isinstance(value, dict):
        raise ConfigError(f"{where} = {value!r}; allowed: \"start\" or a table with one of time_s, altitude_m, "
                          f"phase, event, after (and optionally delay_s)")
    keys = {"time_s": "time", "altitude_m": "altitude", "phase": "phase", "event": "event", "after": "after"}
    for k in value:
        if k not in keys and k != "delay_s":
            raise ConfigError(f"{where}: unknown key {k!r}; allowed keys: {', '.join(list(keys) + ['delay_s'])}")
    given = [k for k in keys if k in value]
    if len(given) != 1:
        raise ConfigError(f"{where} = {value!r}: give exactly one of {', '.join(keys)}")
    k = given[0]
    v = value[k]
    delay = value.get("delay_s", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay < INF:
        raise ConfigError(f"{where}.delay_s = {delay!r}; allowed: a number >= 0 (s)")
    if k in ("time_s", "altitude_m"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise ConfigError(f"{where}.{k} = {v!r}; allowed: a number ({'s' if k == 'time_s' else 'm'})")
        v = float(v)
    elif k == "phase":
        if v not in PHASES and v not in PHASES.values():
            raise ConfigError(f"{where}.phase = {v!r}; allowed: {', '.join(PHASES)}")
    elif k == "event":
        if v not in EVENTS:
            raise ConfigError(f"{where}.event = {v!r}; allowed: {', '.join(EVENTS)}")
    elif not isinstance(v, str) or not v:
        raise ConfigError(f"{where}.after = {v!r}; allowed: the id of another fault")
    return Trigger(keys[k], v, float(delay))
