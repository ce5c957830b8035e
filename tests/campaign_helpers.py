"""Scenarios for the campaign tests that misbehave on purpose (a helper module, not a test file: pytest does not collect it).

Imported by worker processes as ``campaign_helpers:misbehaving`` (tests/ on sys.path).
"""
from __future__ import annotations

import json
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


def misbehaving_spec(modes: list[str], runs_per_point: int, labels: list[str] | None = None) -> str:
    """A campaign spec (TOML text) flying ``misbehaving`` once a sabotage mode of ``modes`` (the
    sweep axis "mode", optionally ``labels``), ``runs_per_point`` runs each, wall timeout 8 s."""
    labels_line = f"labels = {json.dumps(labels)}\n" if labels else ""
    return f"""[campaign]
scenario = "campaign_helpers:misbehaving"
seed = 5
runs_per_point = {runs_per_point}
run_timeout_s = 8

[[sweep]]
name = "mode"
path = "faults.0.mode"
values = {json.dumps(modes)}
{labels_line}"""


def m2_fix_spec(name: str, seed: int, runs_per_point: int, run_timeout_s: float, *, dispersions: str,
                campaign_extra: str = "") -> str:
    """A campaign spec (TOML text) flying the ispace M2 scenario with its flight code as flown and
    fixed, the LRF acquiring at 400 m (so both landings and crashes), ``runs_per_point`` runs per
    point, the ``[dispersions]`` lines given; ``campaign_extra``: more lines for ``[campaign]``."""
    return f"""
[campaign]
name = "{name}"
scenario = "ispace-m2"
seed = {seed}
sampling = "lhs"
runs_per_point = {runs_per_point}
run_timeout_s = {run_timeout_s}
{campaign_extra}
[dispersions]
{dispersions}
[[sweep]]
name = "code"
path = "flight_params"
values = ["AS_FLOWN", "FIXED"]
labels = ["as-flown", "fixed"]
[[sweep]]
name = "acq"
path = "faults.0.acquire_altitude_m"
values = [400.0]
"""
