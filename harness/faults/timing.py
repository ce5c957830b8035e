"""Timing-layer faults: when (and whether) the flight code's COMMAND reaches the plant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.faults.base import Fault


@dataclass(kw_only=True)
class CommandDelay(Fault):
    """Every COMMAND reaches the plant ``cycles`` cycles late (a flight-code cycle that
    always overruns its deadline); the plant holds the previous command meanwhile."""

    layer: ClassVar[str] = "timing"
    type_name: ClassVar[str] = "command_delay"
    cycles: int = 1

    def reset(self):
        self.fifo = []

    def command(self, answer):
        if not self.active:
            if self.fifo:   # window closed: the newest command wins, the stale ones are gone
                self.fifo = []
            return answer
        self.fifo.append(answer)
        self.effects += 1
        if len(self.fifo) > self.cycles:
            return self.fifo.pop(0)
        return None


@dataclass(kw_only=True)
class CycleOverrun(Fault):
    """With probability ``prob`` per cycle the flight code overruns: that cycle's COMMAND
    misses its deadline and is applied ``cycles`` cycles later (the plant holds the previous
    command meanwhile; commands computed during the overrun are lost)."""

    layer: ClassVar[str] = "timing"
    type_name: ClassVar[str] = "cycle_overrun"
    prob: float = 0.1
    cycles: int = 1

    def reset(self):
        self.late = None
        self.wait = 0

    @property
    def spent(self) -> bool:
        return super().spent and self.wait == 0   # a command held back is still to be released

    def command(self, answer):
        if self.wait > 0:
            self.wait -= 1
            if self.wait == 0:
                out, self.late = self.late, None
                return out
            return None
        if self.active and answer is not None and self.rng.random() < self.prob:
            self.effects += 1
            self.late, self.wait = answer, self.cycles
            return None
        return answer


@dataclass(kw_only=True)
class CommandLoss(Fault):
    """Missed deadline: each cycle's COMMAND is lost with probability ``prob`` (1: all of
    them while active); the plant holds the last command."""

    layer: ClassVar[str] = "timing"
    type_name: ClassVar[str] = "command_loss"
    prob: float = 1.0

    def command(self, answer):
        if self.active and answer is not None and (self.prob >= 1.0 or self.rng.random() < self.prob):
            self.effects += 1
            return None
        return answer
