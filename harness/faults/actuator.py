"""Actuator-layer faults: what the engine and the RCS do with the COMMAND."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from harness.faults.base import Fault


def actuator_command(cmd, throttle: float, engine_on: bool, torque_body):
    """``cmd._replace(...)`` for an ActuatorCommand (throttle, engine_on, torque_body), built
    directly: the NamedTuple's _replace costs ~1 us, and actuator faults run per cycle."""
    return tuple.__new__(type(cmd), (throttle, engine_on, torque_body))


@dataclass(kw_only=True)
class ThrustScale(Fault):
    """Actual thrust = ``scale`` x what the engine would give (> 1: thrust higher than
    commanded, Chandrayaan-2; < 1: thrust loss). Acts inside the plant (its thrust_max_n), so
    the propellant flow scales with it and throttle limits stay those of the commanded throttle."""

    layer: ClassVar[str] = "actuator"
    type_name: ClassVar[str] = "thrust_scale"
    scale: float = 1.2

    def thrust_scale(self):
        if self.active:
            self.effects += 1
            return self.scale
        return 1.0


@dataclass(kw_only=True)
class ThrustLoss(ThrustScale):
    """Loss of ``fraction`` of the thrust (SLIM: one of two engines, 0.5)."""

    type_name: ClassVar[str] = "thrust_loss"
    scale: float = field(default=1.0, repr=False, init=False)
    fraction: float = 0.5

    def __post_init__(self):
        self.scale = 1.0 - self.fraction


@dataclass(kw_only=True)
class ActuatorFault(Fault):
    """Base of the faults on the command: ``corrupt(cmd)`` is the ActuatorCommand the plant applies
    while the fault is active (every one counted as an effect)."""

    layer: ClassVar[str] = "actuator"

    def actuator(self, cmd):
        return self.while_active(cmd)


@dataclass(kw_only=True)
class ThrottleStuck(ActuatorFault):
    """The throttle valve sticks: at ``value`` (fraction of thrust_max), or, when None, at
    the throttle commanded when the fault started. The engine stays on."""

    type_name: ClassVar[str] = "throttle_stuck"
    value: float | None = None

    def reset(self):
        self.held = None

    def corrupt(self, cmd):
        if self.held is None:   # the fault's first cycle (its window opens once)
            self.held = self.value if self.value is not None else cmd.throttle
        return actuator_command(cmd, self.held, True, cmd.torque_body)


@dataclass(kw_only=True)
class EngineOff(ActuatorFault):
    """The main engine is off while active, whatever is commanded (Beresheet: computer resets)."""

    type_name: ClassVar[str] = "engine_off"

    def corrupt(self, cmd):
        return actuator_command(cmd, cmd.throttle, False, cmd.torque_body)


@dataclass(kw_only=True)
class RcsFailure(ActuatorFault):
    """RCS torque about ``axes`` (subset of "xyz") multiplied by ``scale`` (0: dead)."""

    type_name: ClassVar[str] = "rcs_failure"
    axes: str = "xyz"
    scale: float = 0.0

    def corrupt(self, cmd):
        tq = tuple(c * self.scale if "xyz"[i] in self.axes else c for i, c in enumerate(cmd.torque_body))
        return actuator_command(cmd, cmd.throttle, cmd.engine_on, tq)
