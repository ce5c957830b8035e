"""Scenarios for the campaign tests that misbehave on purpose (a helper module, not a test file: pytest does not collect it).

Imported by worker processes as ``campaign_helpers:misbehaving`` (tests/ on sys.path).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from harness.faults import Fault
from harness.scenario_files import terminal_descent


@dataclass(kw_only=True)
class Misbehave(Fault):
    """Harness-level sabotage: ``exit`` kills the worker process, ``hang`` never returns."""

    layer = "sensor"
    type_name = "misbehave"
    mode: str = "none"
    at_s: float = 1.0

    def imu(self, reading):
        t = getattr(self, "_t", 0.0)
        self._t = t + 0.02
        if self._t >= self.at_s:
            if self.mode == "exit":
                os._exit(13)
            if self.mode == "hang":
                while True:
                    time.sleep(0.05)
            if self.mode == "raise":
                raise RuntimeError("sabotage: exception inside the run")
        return reading


def misbehaving():
    return terminal_descent(name="misbehaving", t_max_s=20.0, faults=(Misbehave(),))


def short():
    """A cheap descent for plumbing tests: 12 s of the nominal terminal descent (ends in timeout)."""
    return terminal_descent(name="short", t_max_s=12.0)
