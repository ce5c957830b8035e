"""The base of every fault: trigger, duration, id and the identity hooks the FaultSet calls."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from harness.errors import ConfigError
from harness.faults.triggers import INF, PHASES, START, Trigger


@dataclass(kw_only=True)
class Fault:
    """Base of every fault: trigger, duration, id. Hooks are identities unless overridden."""

    layer: ClassVar[str] = ""
    type_name: ClassVar[str] = ""

    trigger: Trigger = START
    duration_s: float = INF
    id: str = ""

    # runtime (set by FaultSet._bind on a per-run copy) --------------------------------
    def _bind(self, fs) -> None:
        self.fs = fs
        self.t_on: float | None = None   # instant the fault starts (trigger + delay)
        self.fired = False               # trigger condition seen
        self.active = False
        self.was_active = False
        self.cycles_active = 0
        self.effects = 0                 # how many times the fault changed something
        self.reset()

    def reset(self) -> None:
        """Per-run state of a subclass."""

    @property
    def rng(self):
        return self.fs.rng

    @property
    def t_off(self) -> float:
        return INF if self.t_on is None else self.t_on + self.duration_s

    def _check_trigger(self, t: float, altitude: float, phase: int) -> bool:
        tr, fs = self.trigger, self.fs
        if tr.kind == "start":
            return True
        if tr.kind == "time":
            return t >= tr.value - 1e-9
        if tr.kind == "altitude":
            return altitude <= tr.value
        if tr.kind == "phase":
            return phase == (PHASES[tr.value] if isinstance(tr.value, str) else tr.value)
        if tr.kind == "event":
            return tr.value in fs.events
        if tr.kind == "after":
            return f"fault:{tr.value}" in fs.events
        raise ConfigError(f"fault {self.name}: trigger kind {tr.kind!r}; allowed: start, time, altitude, "
                          "phase, event, after")

    @property
    def settled(self) -> bool:
        """Triggered and either active to the end or past its window: time only moves forward,
        so ``active`` cannot change any more."""
        return self.fired and (self.active and self.duration_s == INF or self.was_active and not self.active)

    def _evaluate(self, t: float, altitude: float, phase: int) -> bool:
        """Update ``active``; True if the fault started just now (for ``after`` chains)."""
        if self.settled:
            return False
        started = False
        if not self.fired and self._check_trigger(t, altitude, phase):
            self.fired = True
            tr = self.trigger
            base = t
            if tr.kind == "event":
                base = self.fs.events[tr.value]
            elif tr.kind == "after":
                base = self.fs.events[f"fault:{tr.value}"]
            self.t_on = base + tr.delay_s
        was = self.active
        self.active = self.t_on is not None and self.t_on - 1e-9 <= t < self.t_off - 1e-9
        if self.active and not was and not self.was_active:
            started = True
        if self.active:
            self.was_active = True
        if was and not self.active:
            self.on_end()
        return started

    def on_end(self) -> None:
        """Called once when the fault's window closes."""

    @property
    def name(self) -> str:
        return self.id or self.type_name

    def describe(self) -> str:
        params = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                           if f.name not in ("trigger", "duration_s", "id"))
        dur = "to the end" if self.duration_s == INF else f"for {self.duration_s:g} s"
        return f"{self.type_name}({params}) {self.trigger.describe()} {dur}"

    def while_active(self, value):
        """``corrupt(value)`` while the fault is active (counted as an effect), else ``value``:
        the hook of the layer bases whose faults change every reading or command they see."""
        if not self.active:
            return value
        self.effects += 1
        return self.corrupt(value)

    def corrupt(self, value):
        """What a reading or command becomes while the fault is active (see while_active)."""
        return value

    # hooks (identity) ------------------------------------------------------------------
    def imu(self, reading):
        return reading

    def lrf(self, reading):
        return reading

    def frame(self, data: bytes, direction: str, msg_type: int | None) -> list[tuple[bytes, int]]:
        """Link layer: what becomes of one whole frame (incl. its 0x00): [(bytes, delay_cycles)]."""
        return [(data, 0)]

    def command(self, answer):
        return answer

    def actuator(self, cmd):
        return cmd

    def thrust_scale(self) -> float:
        return 1.0
