"""Fault injection: composable faults at the sensor, link, actuator and timing layers.

The runner calls a ``FaultSet`` at fixed points of every cycle (see harness/runner.py):

* ``update(t_s, altitude_m, phase)``      once per cycle, before sensing: triggers are evaluated here
* ``imu(reading)`` / ``lrf(reading)``     sensor layer: returns the reading the flight code gets
* ``wrap_transport(transport)``           link layer: a transport that corrupts/drops/delays frames
* ``command(answer)``                     timing layer: the COMMAND the plant gets this cycle (None: none arrived)
* ``actuator(cmd)``                       actuator layer: the ActuatorCommand the plant applies
* ``plant_effects(plant)``                actuator layer faults that act inside the plant (thrust scale)

Every fault is a small dataclass: its own parameters plus ``trigger`` (when it starts, a
:class:`Trigger`), ``duration_s`` (how long it lasts; ``inf`` = to the end of the run) and an
optional ``id`` (other faults can start ``after`` it). A scenario holds fault *specifications*;
``FaultSet`` copies them for each run, so one Scenario can be flown many times. Every random
draw comes from the FaultSet's generator (seeded per scenario), so runs reproduce bit for bit.

``FAULT_TYPES`` maps the names used in scenario TOML files to the classes; docs/faults.md lists
every fault with its parameters and units.
"""
from __future__ import annotations

from harness.faults.actuator import EngineOff, RcsFailure, ThrottleStuck, ThrustLoss, ThrustScale
from harness.faults.base import Fault
from harness.faults.fault_set import FaultSet
from harness.faults.link import (DIRECTIONS, MESSAGES, FaultyTransport, LinkBitErrors, LinkDelay, LinkDrop,
                                 LinkDuplicate, LinkFault, LinkJitter, LinkOutage, LinkReorder)
from harness.faults.sensor import (ImuBias, ImuGlitch, ImuNoise, ImuStuckZero, LrfBias, LrfDropout,
                                   LrfLateAcquisition, LrfMaxRange, LrfNoise, LrfNoOutput, LrfScale, LrfStuck)
from harness.faults.table import FAULT_TYPES, make_fault, parse_trigger
from harness.faults.timing import CommandDelay, CommandLoss, CycleOverrun
from harness.faults.triggers import (EVENTS, INF, PHASES, START, Trigger, after, at_time, below_altitude,
                                     in_phase, on_event)

__all__ = ["FaultSet", "Fault", "Trigger", "FAULT_TYPES", "make_fault", "parse_trigger", "at_time",
           "below_altitude", "in_phase", "on_event", "after", "START", "FaultyTransport"] + \
    [c.__name__ for c in FAULT_TYPES.values()]
