"""Fault injection: composable faults at the sensor, link, actuator and timing layers.

The runner calls a ``FaultSet`` at fixed points of every cycle (see harness/runner.py):

* ``update(t_s, altitude_m, phase)``      once per cycle, before sensing: triggers are evaluated here
* ``imu(reading)`` / ``lrf(reading)``     sensor layer: returns the reading the flight code gets
* ``wrap_transport(transport)``           link layer: a transport that corrupts/drops/delays frames
* ``command(answer)``                     timing layer: the COMMAND the plant gets this cycle (None: none arrived)
* ``actuator(cmd)``                       actuator layer: the ActuatorCommand the plant applies
* ``plant_effects(plant)``                actuator layer faults that act inside the plant (thrust scale)

This module holds the base machinery; the fault library builds on it.
"""
from __future__ import annotations


class FaultSet:
    """All faults of one run. With no faults every hook is the identity."""

    def __init__(self, faults=(), rng=None):
        self.faults = list(faults)
        self.rng = rng

    def update(self, t_s: float, altitude_m: float, phase: int) -> None:
        for f in self.faults:
            f.update(t_s, altitude_m, phase)

    def imu(self, reading):
        for f in self.faults:
            reading = f.imu(reading)
        return reading

    def lrf(self, reading):
        for f in self.faults:
            reading = f.lrf(reading)
        return reading

    def wrap_transport(self, transport):
        for f in self.faults:
            transport = f.wrap_transport(transport)
        return transport

    def command(self, answer):
        for f in self.faults:
            answer = f.command(answer)
        return answer

    def actuator(self, cmd):
        for f in self.faults:
            cmd = f.actuator(cmd)
        return cmd

    def plant_effects(self, plant) -> None:
        for f in self.faults:
            f.plant_effects(plant)
