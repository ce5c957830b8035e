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
        self.effects = 0                 # how many times the fault changed something
        # the active window as the tests of ``_evaluate`` see it (s; set when the trigger fires)
        self._t_start = self._t_end = INF
        # active cycles: of the closed window (if any), and the cycle the open one's count starts at
        self._cycles_closed = 0
        self._active_from_cycle = 0
        self.reset()

    def reset(self) -> None:
        """Per-run state of a subclass."""

    @property
    def rng(self):
        return self.fs.rng

    @property
    def t_off(self) -> float:
        return INF if self.t_on is None else self.t_on + self.duration_s

    @property
    def cycles_active(self) -> int:
        """Flight-code cycles (``FaultSet.update`` calls) in which the fault was active, counting
        the cycle an event started it in."""
        n = self._cycles_closed
        if self.active:
            n += self.fs.cycle - self._active_from_cycle + 1
        return n

    def _switched(self, cycle: int, counted: bool) -> None:
        """``active`` changed in cycle ``cycle``, before (``counted`` False: in ``update``) or after
        (True: an event) that cycle was counted: open or close the count of active cycles."""
        if self.active:
            self._active_from_cycle = cycle
        else:
            self._cycles_closed += cycle - self._active_from_cycle + (1 if counted else 0)

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

    @property
    def spent(self) -> bool:
        """Settled and not active: every hook is the identity from now on (a subclass whose hooks
        still act after the window closes says so here)."""
        return self.was_active and not self.active

    def wake_t(self, t: float) -> float:
        """The earliest simulated time (s) at which ``_evaluate`` can change this fault, judged at
        ``t``: -inf when it must look every cycle (start, altitude and phase triggers not yet
        seen), inf when only a new event can (event and after triggers) or nothing can."""
        if not self.fired:
            kind = self.trigger.kind
            if kind == "time":
                return self.trigger.value - 1e-9   # the very threshold of _check_trigger
            return INF if kind in ("event", "after") else -INF
        if self.active:
            return self._t_end
        if self.was_active or t >= self._t_end:
            return INF
        return self._t_start

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
            self._t_start = self.t_on - 1e-9
            self._t_end = self.t_off - 1e-9
        was = self.active
        self.active = self._t_start <= t < self._t_end
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
