"""When a fault starts: :class:`Trigger`, its constructors and its TOML form."""
from __future__ import annotations

import math
from dataclasses import dataclass

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
