"""The set of faults of one run, called by the runner at fixed points of every cycle."""
from __future__ import annotations

import copy

from harness.errors import ConfigError
from harness.faults.actuator import ThrustScale
from harness.faults.base import Fault
from harness.faults.link import FaultyTransport, LinkFault
from harness.faults.triggers import INF


class FaultSet:
    """All faults of one run. With no faults every hook is the identity."""

    def __init__(self, faults=(), rng=None):
        if rng is None:
            import numpy as np
            rng = np.random.default_rng([0, 0xFA17])
        self.rng = rng
        # link faults draw per direction from their own streams, spawned from the run's generator
        # without taking a draw from it (see link_rng)
        up, down = rng.spawn(2)
        self._link_rngs = {"up": up, "down": down}
        self.faults = [copy.deepcopy(f) for f in faults]
        self.cycle = -1
        self.t_s: float | None = None
        self.altitude_m = INF
        self.phase: int | None = None
        self.events: dict[str, float] = {}
        self.transport: FaultyTransport | None = None
        ids = [f.id for f in self.faults if f.id]
        if len(ids) != len(set(ids)):
            raise ConfigError(f"fault ids must be unique; got {ids}")
        for f in self.faults:
            if f.trigger.kind == "after" and f.trigger.value not in ids:
                raise ConfigError(f"fault {f.name}: trigger after = {f.trigger.value!r} names no fault; "
                                  f"allowed: {', '.join(ids) or '(no fault has an id)'}")
            f._bind(self)
        self.timeline: list[tuple[float, str, str]] = []   # (t, fault name, "start"/"end")
        # per hook, the faults whose class has one (the others are identities): a hook with none
        # costs one empty loop, and the runner skips calling it (``hooks``); a fault leaves these
        # lists once its hooks are identities for good (``retire``)
        self._imu = self._overriding("imu")
        self._lrf = self._overriding("lrf")
        self._command = self._overriding("command")
        self._actuator = self._overriding("actuator")
        self._scales = [f for f in self.faults if isinstance(f, ThrustScale)]
        self._thrust_factor: float | None = None   # the thrust scale last given to the plant
        self._live = list(self.faults)  # the faults whose state can still change (the others are settled)
        # triggers are looked at when one can fire or a window open or close: from this time (s) on,
        # or in the cycle an event is noted
        self._wake_t = -INF
        self._new_event = False
        self._await_first_valid_lrf = True

    def _overriding(self, hook: str) -> list:
        base = getattr(Fault, hook)
        return [f for f in self.faults if getattr(type(f), hook) is not base]

    @property
    def hooks(self) -> frozenset[str]:
        """The per-cycle hooks some fault of this set has: of "imu", "command", "actuator",
        "plant" (``update`` and ``lrf`` run whenever there is a fault: ``lrf`` also records the
        first valid LRF sample, an event triggers may wait for)."""
        have = {"imu": self._imu, "command": self._command, "actuator": self._actuator, "plant": self._scales}
        return frozenset(k for k, v in have.items() if v)

    def retire(self, fault: Fault) -> None:
        """``fault``'s hooks are the identity from now on: the per-cycle hooks stop calling it (a
        thrust scale stays: the plant keeps the scale given last, 1 once the fault has ended)."""
        for name in ("_imu", "_lrf", "_command", "_actuator"):
            hooked = getattr(self, name)
            if fault in hooked:
                setattr(self, name, [f for f in hooked if f is not fault])

    def _switched(self, f: Fault, counted: bool) -> None:
        """``f.active`` changed in this cycle (``counted``: after ``update`` counted the cycle)."""
        self.timeline.append((self.t_s, f.name, "start" if f.active else "end"))
        f._switched(self.cycle, counted)
        if f.spent:
            self.retire(f)

    def _evaluate_live(self, counted: bool = False) -> None:
        """Evaluate the triggers of the faults whose state can still change, until no fault starts
        that others wait ``after`` (``counted``: an event within a cycle ``update`` already counted)."""
        live = self._live
        t, alt, ph = self.t_s, self.altitude_m, self.phase if self.phase is not None else 0
        for _ in range(len(live) + 1):
            changed = False
            for f in live:
                was = f.active
                if f._evaluate(t, alt, ph):
                    if f.id and f"fault:{f.id}" not in self.events:
                        self.events[f"fault:{f.id}"] = f.t_on
                        changed = True
                if f.active != was:
                    self._switched(f, counted)
            if not changed:
                break
        if any(f.settled for f in live):
            self._live = live = [f for f in live if not f.settled]
        self._new_event = False
        self._wake_t = min((f.wake_t(t) for f in live), default=INF)

    def update(self, t_s: float, altitude_m: float, phase: int) -> None:
        self.cycle += 1
        if phase != self.phase and self.phase is not None and "phase_change" not in self.events:
            self.events["phase_change"] = t_s
            self._new_event = True
        self.t_s, self.altitude_m, self.phase = t_s, altitude_m, phase
        if t_s >= self._wake_t or self._new_event:
            self._evaluate_live()
        if self.transport is not None:
            self.transport.tick()

    def imu(self, reading):
        for f in self._imu:
            reading = f.imu(reading)
        return reading

    def lrf(self, reading):
        if self._await_first_valid_lrf and reading.valid and self.t_s is not None:
            self._await_first_valid_lrf = False
            self.events["first_valid_lrf"] = self.t_s
            self._evaluate_event()
        for f in self._lrf:
            reading = f.lrf(reading)
        return reading

    def _evaluate_event(self) -> None:
        # an event inside a cycle: re-evaluate triggers without counting the cycle twice
        self._evaluate_live(counted=True)

    def link_rng(self, direction: str):
        """The random stream of the link faults acting on frames going ``direction`` ("up":
        harness to flight code, "down"). Frames in one direction are processed in an order the
        two ends fix, but up and down frames interleave as bytes arrive (a late TELEMETRY is read
        after the next SENSORS was written): separate streams keep a seeded run reproducible on
        every rig, and keep the per-cycle faults' stream (``rng``) free of link draws."""
        return self._link_rngs[direction]

    def wrap_transport(self, transport):
        link = [f for f in self.faults if isinstance(f, LinkFault)]
        if not link:
            return transport
        self.transport = FaultyTransport(transport, self, link)
        return self.transport

    def command(self, answer):
        for f in self._command:
            answer = f.command(answer)
        return answer

    def actuator(self, cmd):
        for f in self._actuator:
            cmd = f.actuator(cmd)
        return cmd

    def plant_effects(self, plant) -> None:
        scales = self._scales
        if not scales:
            return
        k = 1.0
        for f in scales:
            k *= f.thrust_scale()
        if k != self._thrust_factor:   # the plant keeps the value given last
            self._thrust_factor = k
            plant.thrust_max_n = plant.lander.thrust_max_n * k

    # reporting ---------------------------------------------------------------------------
    def report(self) -> list[str]:
        """One line per fault: what, when it was active, how often it changed something."""
        out = []
        for f in self.faults:
            if f.t_on is None or not f.was_active:
                when = "never triggered"
            else:
                end = f.t_off
                when = f"active from t={f.t_on:.2f} s" + ("" if end == INF else f" to t={end:.2f} s")
            out.append(f"fault {f.describe()}: {when}, {f.effects} effects")
        if self.transport is not None:
            out.append(f"link fault frames: {self.transport.counters}")
        return out
