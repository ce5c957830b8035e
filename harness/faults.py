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

import copy
import math
from dataclasses import dataclass, field, fields
from typing import ClassVar

from harness.errors import ConfigError

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


def parse_trigger(value, where: str = "trigger") -> Trigger:
    """A Trigger from its TOML form: ``"start"`` or a table with one of ``time_s``,
    ``altitude_m``, ``phase``, ``event``, ``after`` and optionally ``delay_s``."""
    if isinstance(value, Trigger):
        return value
    if value == "start":
        return START
    if not isinstance(value, dict):
        raise ConfigError(f"{where} = {value!r}; allowed: \"start\" or a table with one of time_s, altitude_m, "
                          f"phase, event, after (and optionally delay_s)")
    keys = {"time_s": "time", "altitude_m": "altitude", "phase": "phase", "event": "event", "after": "after"}
    for k in value:
        if k not in keys and k != "delay_s":
            raise ConfigError(f"{where}: unknown key {k!r}; allowed keys: {', '.join(list(keys) + ['delay_s'])}")
    given = [k for k in keys if k in value]
    if len(given) != 1:
        raise ConfigError(f"{where} = {value!r}: give exactly one of {', '.join(keys)}")
    k = given[0]
    v = value[k]
    delay = value.get("delay_s", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay < INF:
        raise ConfigError(f"{where}.delay_s = {delay!r}; allowed: a number >= 0 (s)")
    if k in ("time_s", "altitude_m"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise ConfigError(f"{where}.{k} = {v!r}; allowed: a number ({'s' if k == 'time_s' else 'm'})")
        v = float(v)
    elif k == "phase":
        if v not in PHASES and v not in PHASES.values():
            raise ConfigError(f"{where}.phase = {v!r}; allowed: {', '.join(PHASES)}")
    elif k == "event":
        if v not in EVENTS:
            raise ConfigError(f"{where}.event = {v!r}; allowed: {', '.join(EVENTS)}")
    elif not isinstance(v, str) or not v:
        raise ConfigError(f"{where}.after = {v!r}; allowed: the id of another fault")
    return Trigger(keys[k], v, float(delay))


# Base class -------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Fault:
    """Base of every fault: trigger, duration, id. Hooks are identities unless overridden."""

    layer: ClassVar[str] = ""
    type_name: ClassVar[str] = ""
    units: ClassVar[dict] = {}

    trigger: Trigger = START
    duration_s: float = INF
    id: str = ""

    # runtime (set by FaultSet._bind on a per-run copy) --------------------------------
    def _bind(self, fs: "FaultSet") -> None:
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

    def _evaluate(self, t: float, altitude: float, phase: int) -> bool:
        """Update ``active``; True if the fault started just now (for ``after`` chains)."""
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


# Sensor layer: LRF -----------------------------------------------------------------------
@dataclass(kw_only=True)
class LrfNoOutput(Fault):
    """The LRF gives no valid range while active (IM-1: never armed; IM-1 uses duration inf)."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "lrf_no_output"

    def lrf(self, r):
        if self.active and r.valid:
            self.effects += 1
            return r._replace(range_m=0.0, valid=False)
        return r


@dataclass(kw_only=True)
class LrfLateAcquisition(Fault):
    """No valid LRF range until the true height above the terrain first drops to
    ``acquire_altitude_m`` (m) (ispace M2: spec 3,000 m, first valid sample below ~900 m)."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "lrf_late_acquisition"
    units: ClassVar[dict] = {"acquire_altitude_m": "m"}
    acquire_altitude_m: float = 900.0

    def reset(self):
        self.acquired = False

    def lrf(self, r):
        if self.fs.altitude_m <= self.acquire_altitude_m:
            self.acquired = True
        if self.active and not self.acquired and r.valid:
            self.effects += 1
            return r._replace(range_m=0.0, valid=False)
        return r


@dataclass(kw_only=True)
class LrfDropout(Fault):
    """Each new LRF sample is lost (flagged invalid) with probability ``prob``; a loss lasts
    ``burst_samples`` consecutive samples."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "lrf_dropout"
    units: ClassVar[dict] = {"prob": "-", "burst_samples": "samples"}
    prob: float = 0.2
    burst_samples: int = 1

    def reset(self):
        self.left = 0          # samples still to drop in the current burst
        self.dropping = False  # the sample being delivered is dropped

    def lrf(self, r):
        if not self.active:
            self.dropping = False
            return r
        if r.new:
            if self.left > 0:
                self.left -= 1
                self.dropping = True
            else:
                self.dropping = bool(self.rng.random() < self.prob)
                if self.dropping:
                    self.left = self.burst_samples - 1
        if self.dropping and r.valid:
            self.effects += 1
            return r._replace(range_m=0.0, valid=False)
        return r


@dataclass(kw_only=True)
class LrfBias(Fault):
    """Range + ``bias_m`` (m)."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "lrf_bias"
    units: ClassVar[dict] = {"bias_m": "m"}
    bias_m: float = 50.0

    def lrf(self, r):
        if self.active and r.valid:
            self.effects += 1
            return r._replace(range_m=max(0.0, r.range_m + self.bias_m))
        return r


@dataclass(kw_only=True)
class LrfScale(Fault):
    """Range * (1 + ``scale_error``) (dimensionless; 0.05 = reads 5 % long)."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "lrf_scale"
    units: ClassVar[dict] = {"scale_error": "-"}
    scale_error: float = 0.05

    def lrf(self, r):
        if self.active and r.valid:
            self.effects += 1
            return r._replace(range_m=max(0.0, r.range_m * (1.0 + self.scale_error)))
        return r


@dataclass(kw_only=True)
class LrfStuck(Fault):
    """The LRF keeps reporting one range, flagged valid and new: ``value_m`` (m), or, when
    None, the last valid range before the fault started."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "lrf_stuck"
    units: ClassVar[dict] = {"value_m": "m"}
    value_m: float | None = None

    def reset(self):
        self.last = None

    def lrf(self, r):
        if not self.active:
            if r.valid:
                self.last = r.range_m
            return r
        v = self.value_m if self.value_m is not None else self.last
        if v is None:
            return r
        self.effects += 1
        return r._replace(range_m=float(v), valid=True)


@dataclass(kw_only=True)
class LrfNoise(Fault):
    """Extra range noise N(0, ``sigma_m``) and, with probability ``outlier_prob`` per sample,
    an outlier N(0, ``outlier_sigma_m``) (IM-2: noisy altimeter that never cleared)."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "lrf_noise"
    units: ClassVar[dict] = {"sigma_m": "m", "outlier_prob": "-", "outlier_sigma_m": "m"}
    sigma_m: float = 10.0
    outlier_prob: float = 0.0
    outlier_sigma_m: float = 0.0

    def reset(self):
        self.cur = None

    def lrf(self, r):
        if not (self.active and r.valid):
            return r
        if r.new or self.cur is None:
            n1, n2 = self.rng.standard_normal(2)
            u = self.rng.random()
            err = self.sigma_m * n1 + (self.outlier_sigma_m * n2 if u < self.outlier_prob else 0.0)
            self.cur = max(0.0, r.range_m + err)
        self.effects += 1
        return r._replace(range_m=self.cur)


@dataclass(kw_only=True)
class LrfMaxRange(Fault):
    """The LRF's maximum range drops to ``max_range_m`` (m): longer ranges are invalid."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "lrf_max_range"
    units: ClassVar[dict] = {"max_range_m": "m"}
    max_range_m: float = 1000.0

    def lrf(self, r):
        if self.active and r.valid and r.range_m > self.max_range_m:
            self.effects += 1
            return r._replace(range_m=0.0, valid=False)
        return r


# Sensor layer: IMU -------------------------------------------------------------------------
def _vec3(v, name):
    t = tuple(float(x) for x in v)
    if len(t) != 3:
        raise ConfigError(f"{name} = {v!r}; allowed: 3 numbers")
    return t


@dataclass(kw_only=True)
class ImuBias(Fault):
    """Accelerometer bias ``accel_bias_mps2`` (m/s^2, body x y z) and gyro bias
    ``gyro_bias_rad_s`` (rad/s): the increments get bias * dt added."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "imu_bias"
    units: ClassVar[dict] = {"accel_bias_mps2": "m/s^2 (3)", "gyro_bias_rad_s": "rad/s (3)"}
    accel_bias_mps2: tuple = (0.0, 0.0, 0.05)
    gyro_bias_rad_s: tuple = (0.0, 0.0, 0.0)

    def imu(self, r):
        if not self.active:
            return r
        a, g, dt = self.accel_bias_mps2, self.gyro_bias_rad_s, r.dt_s
        self.effects += 1
        return r._replace(dv_body=tuple(r.dv_body[i] + a[i] * dt for i in range(3)),
                          dtheta_body=tuple(r.dtheta_body[i] + g[i] * dt for i in range(3)))


@dataclass(kw_only=True)
class ImuNoise(Fault):
    """Extra white noise: accelerometer ``accel_noise_density`` (m/s^2/sqrt(Hz)) and gyro
    ``gyro_noise_density`` (rad/s/sqrt(Hz)); an increment over dt gets N(0, N sqrt(dt))."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "imu_noise"
    units: ClassVar[dict] = {"accel_noise_density": "m/s^2/sqrt(Hz)", "gyro_noise_density": "rad/s/sqrt(Hz)"}
    accel_noise_density: float = 0.01
    gyro_noise_density: float = 0.0

    def imu(self, r):
        if not self.active:
            return r
        n = self.rng.standard_normal(6)
        sq = math.sqrt(max(r.dt_s, 0.0))
        sa, sg = self.accel_noise_density * sq, self.gyro_noise_density * sq
        self.effects += 1
        return r._replace(dv_body=tuple(r.dv_body[i] + sa * n[i] for i in range(3)),
                          dtheta_body=tuple(r.dtheta_body[i] + sg * n[3 + i] for i in range(3)))


@dataclass(kw_only=True)
class ImuStuckZero(Fault):
    """Accelerometers (``accel``) and/or gyros (``gyro``) read exactly zero while the IMU
    still reports itself valid (Luna-25: accelerometers never switched on)."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "imu_stuck_zero"
    units: ClassVar[dict] = {"accel": "bool", "gyro": "bool"}
    accel: bool = True
    gyro: bool = False

    def imu(self, r):
        if not self.active:
            return r
        self.effects += 1
        return r._replace(dv_body=(0.0, 0.0, 0.0) if self.accel else r.dv_body,
                          dtheta_body=(0.0, 0.0, 0.0) if self.gyro else r.dtheta_body)


@dataclass(kw_only=True)
class ImuGlitch(Fault):
    """IMU glitch. ``mode``: ``invalid`` (outputs flagged invalid), ``spike`` (increments
    replaced by dv = ``spike_dv_mps`` (m/s, 3) and dtheta = ``spike_dtheta_rad`` (rad, 3),
    flagged valid) or ``reset_gap`` (IMU resetting: no data, increments lost, dt 0, invalid)."""

    layer: ClassVar[str] = "sensor"
    type_name: ClassVar[str] = "imu_glitch"
    units: ClassVar[dict] = {"mode": "invalid|spike|reset_gap", "spike_dv_mps": "m/s (3)",
                             "spike_dtheta_rad": "rad (3)"}
    MODES: ClassVar[tuple] = ("invalid", "spike", "reset_gap")
    mode: str = "invalid"
    spike_dv_mps: tuple = (0.0, 0.0, 5.0)
    spike_dtheta_rad: tuple = (0.0, 0.0, 0.0)

    def imu(self, r):
        if not self.active:
            return r
        self.effects += 1
        if self.mode == "invalid":
            return r._replace(valid=False)
        if self.mode == "spike":
            return r._replace(dv_body=tuple(self.spike_dv_mps), dtheta_body=tuple(self.spike_dtheta_rad))
        return r._replace(dv_body=(0.0, 0.0, 0.0), dtheta_body=(0.0, 0.0, 0.0), dt_s=0.0, valid=False)


# Link layer -------------------------------------------------------------------------------
DIRECTIONS = ("up", "down", "both")   # up: harness -> flight code (SENSORS, CONFIG); down: the answers
MESSAGES = ("any", "SENSORS", "COMMAND", "TELEMETRY", "CONFIG", "CONFIG_ACK", "HELLO")


@dataclass(kw_only=True)
class LinkFault(Fault):
    """Common parameters: ``direction`` (up = harness to flight code, down, both) and
    ``message`` (only frames of this message type; ``any``)."""

    layer: ClassVar[str] = "link"
    direction: str = "both"
    message: str = "any"

    def applies(self, direction: str, msg_type: int | None) -> bool:
        if not self.active or (self.direction != "both" and self.direction != direction):
            return False
        if self.message == "any":
            return True
        from harness.protocol import MsgType
        return msg_type == int(MsgType[self.message])


@dataclass(kw_only=True)
class LinkBitErrors(LinkFault):
    """Each bit of each frame (the 0x00 delimiter excluded) flips with probability ``ber``."""

    type_name: ClassVar[str] = "link_bit_errors"
    units: ClassVar[dict] = {"ber": "1/bit"}
    ber: float = 1e-3

    def frame(self, data, direction, msg_type):
        if not self.applies(direction, msg_type):
            return [(data, 0)]
        nbits = 8 * (len(data) - 1)
        k = int(self.rng.binomial(nbits, min(1.0, self.ber))) if nbits > 0 else 0
        if not k:
            return [(data, 0)]
        b = bytearray(data)
        for pos in self.rng.integers(0, nbits, k).tolist():
            b[pos // 8] ^= 1 << (pos % 8)
        self.effects += 1
        return [(bytes(b), 0)]


@dataclass(kw_only=True)
class LinkDrop(LinkFault):
    """Each frame is dropped with probability ``prob``."""

    type_name: ClassVar[str] = "link_drop"
    units: ClassVar[dict] = {"prob": "-"}
    prob: float = 0.1

    def frame(self, data, direction, msg_type):
        if self.applies(direction, msg_type) and self.rng.random() < self.prob:
            self.effects += 1
            return []
        return [(data, 0)]


@dataclass(kw_only=True)
class LinkDuplicate(LinkFault):
    """Each frame is sent twice with probability ``prob``."""

    type_name: ClassVar[str] = "link_duplicate"
    units: ClassVar[dict] = {"prob": "-"}
    prob: float = 0.1

    def frame(self, data, direction, msg_type):
        if self.applies(direction, msg_type) and self.rng.random() < self.prob:
            self.effects += 1
            return [(data, 0), (data, 0)]
        return [(data, 0)]


@dataclass(kw_only=True)
class LinkDelay(LinkFault):
    """Each frame is held back ``cycles`` flight-code cycles (with probability ``prob``)."""

    type_name: ClassVar[str] = "link_delay"
    units: ClassVar[dict] = {"cycles": "cycles", "prob": "-"}
    cycles: int = 1
    prob: float = 1.0

    def frame(self, data, direction, msg_type):
        if self.applies(direction, msg_type) and (self.prob >= 1.0 or self.rng.random() < self.prob):
            self.effects += 1
            return [(data, self.cycles)]
        return [(data, 0)]


@dataclass(kw_only=True)
class LinkJitter(LinkFault):
    """Each frame is held back a random 0 .. ``max_cycles`` cycles (uniform), so frames can
    also overtake each other."""

    type_name: ClassVar[str] = "link_jitter"
    units: ClassVar[dict] = {"max_cycles": "cycles"}
    max_cycles: int = 2

    def frame(self, data, direction, msg_type):
        if self.applies(direction, msg_type):
            d = int(self.rng.integers(0, self.max_cycles + 1))
            if d:
                self.effects += 1
            return [(data, d)]
        return [(data, 0)]


@dataclass(kw_only=True)
class LinkReorder(LinkFault):
    """With probability ``prob`` a frame is held and sent after the next frame in the same
    direction (the two swap places)."""

    type_name: ClassVar[str] = "link_reorder"
    units: ClassVar[dict] = {"prob": "-"}
    prob: float = 0.1

    def reset(self):
        self.held = {}

    def frame(self, data, direction, msg_type):
        held = self.held.pop(direction, None)
        if held is not None:
            self.effects += 1
            return [(data, 0), (held, 0)]
        if self.applies(direction, msg_type) and self.rng.random() < self.prob:
            self.held[direction] = data
            return []
        return [(data, 0)]

    def pending(self) -> list[tuple[str, bytes]]:
        """Frames still held when the window closes (sent then)."""
        out = list(self.held.items())
        self.held.clear()
        return out


@dataclass(kw_only=True)
class LinkOutage(LinkFault):
    """Every frame in ``direction`` is lost while active."""

    type_name: ClassVar[str] = "link_outage"

    def frame(self, data, direction, msg_type):
        if self.applies(direction, msg_type):
            self.effects += 1
            return []
        return [(data, 0)]


def _msg_type(frame: bytes) -> int | None:
    from cobs import cobs
    try:
        pkt = cobs.decode(frame[:-1])
    except Exception:   # noqa: BLE001 - a corrupted frame has no type
        return None
    return pkt[1] if len(pkt) > 1 else None


class FaultyTransport:
    """Transport wrapper for link faults: splits each direction's byte stream into whole COBS
    frames at the 0x00 delimiters and passes each frame through the active link faults.

    Delays are counted in flight-code cycles (``FaultSet.update`` calls): a frame delayed one
    cycle going up is written just before the next cycle's SENSORS; going down it is returned
    by the first read of the next cycle. ``counters`` count what was done to the frames.
    """

    def __init__(self, inner, fs: "FaultSet", link_faults: list[LinkFault]):
        self.inner = inner
        self.fs = fs
        self.link_faults = link_faults
        self.synchronous = getattr(inner, "synchronous", False)
        self.name = getattr(inner, "name", "transport") + "+faults"
        self._buf = {"up": b"", "down": b""}
        self._queue = {"up": [], "down": []}   # (due_cycle, order, bytes)
        self._order = 0
        self.counters = {"frames_up": 0, "frames_down": 0, "frames_out_up": 0, "frames_out_down": 0}

    def describe(self) -> str:
        return f"{self.inner.describe()} with link faults"

    def __getattr__(self, name):   # anything else (e.g. diagnose) is the inner transport's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _process(self, direction: str, data: bytes) -> None:
        buf = self._buf[direction] + data
        *frames, rest = buf.split(b"\x00")
        self._buf[direction] = rest
        now = self.fs.cycle
        for raw in frames:
            fr = raw + b"\x00"
            self.counters[f"frames_{direction}"] += 1
            mt = _msg_type(fr)
            cur = [(fr, 0)]
            for f in self.link_faults:
                nxt = []
                for b, d in cur:
                    nxt.extend((b2, d + d2) for b2, d2 in f.frame(b, direction, mt))
                cur = nxt
            for b, d in cur:
                self._order += 1
                self._queue[direction].append((now + d, self._order, b))

    def _due(self, direction: str) -> bytes:
        q = self._queue[direction]
        now = self.fs.cycle
        due = sorted(e for e in q if e[0] <= now)
        if not due:
            return b""
        self._queue[direction] = [e for e in q if e[0] > now]
        self.counters[f"frames_out_{direction}"] += len(due)
        return b"".join(e[2] for e in due)

    def tick(self) -> None:
        """A new cycle: release held frames (reorder leftovers of closed windows, due delays)."""
        for f in self.link_faults:
            if isinstance(f, LinkReorder) and not f.active and f.held:
                for direction, b in f.pending():
                    self._order += 1
                    self._queue[direction].append((self.fs.cycle, self._order, b))
        out = self._due("up")
        if out:
            self.inner.write(out)

    def write(self, data: bytes) -> None:
        self._process("up", data)
        out = self._due("up")
        if out:
            self.inner.write(out)

    def read(self, timeout_s: float) -> bytes:
        data = self.inner.read(timeout_s)
        if data:
            self._process("down", data)
        return self._due("down")

    def close(self) -> None:
        self.inner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Timing layer -----------------------------------------------------------------------------
@dataclass(kw_only=True)
class CommandDelay(Fault):
    """Every COMMAND reaches the plant ``cycles`` cycles late (a flight-code cycle that
    always overruns its deadline); the plant holds the previous command meanwhile."""

    layer: ClassVar[str] = "timing"
    type_name: ClassVar[str] = "command_delay"
    units: ClassVar[dict] = {"cycles": "cycles"}
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
    units: ClassVar[dict] = {"prob": "-", "cycles": "cycles"}
    prob: float = 0.1
    cycles: int = 1

    def reset(self):
        self.late = None
        self.wait = 0

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
    units: ClassVar[dict] = {"prob": "-"}
    prob: float = 1.0

    def command(self, answer):
        if self.active and answer is not None and (self.prob >= 1.0 or self.rng.random() < self.prob):
            self.effects += 1
            return None
        return answer


# Actuator layer ----------------------------------------------------------------------------
@dataclass(kw_only=True)
class ThrustScale(Fault):
    """Actual thrust = ``scale`` x what the engine would give (> 1: thrust higher than
    commanded, Chandrayaan-2; < 1: thrust loss). Acts inside the plant (its thrust_max_n), so
    the propellant flow scales with it and throttle limits stay those of the commanded throttle."""

    layer: ClassVar[str] = "actuator"
    type_name: ClassVar[str] = "thrust_scale"
    units: ClassVar[dict] = {"scale": "-"}
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
    units: ClassVar[dict] = {"fraction": "-"}
    scale: float = field(default=1.0, repr=False, init=False)
    fraction: float = 0.5

    def __post_init__(self):
        self.scale = 1.0 - self.fraction


@dataclass(kw_only=True)
class ThrottleStuck(Fault):
    """The throttle valve sticks: at ``value`` (fraction of thrust_max), or, when None, at
    the throttle commanded when the fault started. The engine stays on."""

    layer: ClassVar[str] = "actuator"
    type_name: ClassVar[str] = "throttle_stuck"
    units: ClassVar[dict] = {"value": "- (0..1) or none"}
    value: float | None = None

    def reset(self):
        self.held = None

    def actuator(self, cmd):
        if not self.active:
            self.held = None
            return cmd
        if self.held is None:
            self.held = self.value if self.value is not None else cmd.throttle
        self.effects += 1
        return cmd._replace(throttle=self.held, engine_on=True)


@dataclass(kw_only=True)
class EngineOff(Fault):
    """The main engine is off while active, whatever is commanded (Beresheet: computer resets)."""

    layer: ClassVar[str] = "actuator"
    type_name: ClassVar[str] = "engine_off"

    def actuator(self, cmd):
        if self.active:
            self.effects += 1
            return cmd._replace(engine_on=False)
        return cmd


@dataclass(kw_only=True)
class RcsFailure(Fault):
    """RCS torque about ``axes`` (subset of "xyz") multiplied by ``scale`` (0: dead)."""

    layer: ClassVar[str] = "actuator"
    type_name: ClassVar[str] = "rcs_failure"
    units: ClassVar[dict] = {"axes": "x/y/z letters", "scale": "-"}
    axes: str = "xyz"
    scale: float = 0.0

    def actuator(self, cmd):
        if not self.active:
            return cmd
        self.effects += 1
        tq = tuple(c * self.scale if "xyz"[i] in self.axes else c for i, c in enumerate(cmd.torque_body))
        return cmd._replace(torque_body=tq)


FAULT_TYPES: dict[str, type] = {c.type_name: c for c in (
    LrfNoOutput, LrfLateAcquisition, LrfDropout, LrfBias, LrfScale, LrfStuck, LrfNoise, LrfMaxRange,
    ImuBias, ImuNoise, ImuStuckZero, ImuGlitch,
    LinkBitErrors, LinkDrop, LinkDuplicate, LinkDelay, LinkJitter, LinkReorder, LinkOutage,
    CommandDelay, CycleOverrun, CommandLoss,
    ThrustScale, ThrustLoss, ThrottleStuck, EngineOff, RcsFailure)}

# allowed ranges of numeric parameters: (lo, hi); anything else is checked by type
_RANGES = {
    "prob": (0.0, 1.0), "ber": (0.0, 1.0), "burst_samples": (1, 10 ** 6), "cycles": (1, 10 ** 6),
    "max_cycles": (1, 10 ** 6), "scale": (0.0, 10.0), "fraction": (0.0, 1.0), "value": (0.0, 1.0),
    "sigma_m": (0.0, 1e6), "outlier_prob": (0.0, 1.0), "outlier_sigma_m": (0.0, 1e7),
    "max_range_m": (0.0, 1e7), "value_m": (0.0, 1e7), "scale_error": (-0.99, 10.0),
    "bias_m": (-1e6, 1e6), "acquire_altitude_m": (-1e5, 1e7), "accel_noise_density": (0.0, 100.0),
    "gyro_noise_density": (0.0, 10.0), "duration_s": (0.0, INF),
}
_CHOICES = {"direction": DIRECTIONS, "message": MESSAGES, "mode": ImuGlitch.MODES}


def make_fault(spec: dict, where: str = "fault") -> Fault:
    """A fault from its TOML table: ``type`` plus the class's fields (see docs/faults.md)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} = {spec!r}; allowed: a table with a 'type' key")
    t = spec.get("type")
    if t not in FAULT_TYPES:
        raise ConfigError(f"{where}.type = {t!r}; allowed: {', '.join(FAULT_TYPES)}")
    cls = FAULT_TYPES[t]
    names = [f.name for f in fields(cls) if f.init]
    kw = {}
    for k, v in spec.items():
        if k == "type":
            continue
        if k not in names:
            raise ConfigError(f"{where} ({t}): unknown key {k!r}; allowed keys: type, {', '.join(names)}")
        key = f"{where}.{k}"
        if k == "trigger":
            v = parse_trigger(v, key)
        elif k == "id":
            if not isinstance(v, str):
                raise ConfigError(f"{key} = {v!r}; allowed: a string")
        elif k in _CHOICES:
            if v not in _CHOICES[k]:
                raise ConfigError(f"{key} = {v!r}; allowed: {', '.join(_CHOICES[k])}")
        elif k == "axes":
            if not isinstance(v, str) or not v or any(c not in "xyz" for c in v):
                raise ConfigError(f"{key} = {v!r}; allowed: a string of the letters x, y, z")
        elif k in ("accel", "gyro"):
            if not isinstance(v, bool):
                raise ConfigError(f"{key} = {v!r}; allowed: true, false")
        elif k in ("accel_bias_mps2", "gyro_bias_rad_s", "spike_dv_mps", "spike_dtheta_rad"):
            if not isinstance(v, list) or len(v) != 3 or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
                raise ConfigError(f"{key} = {v!r}; allowed: a list of 3 finite numbers")
            v = tuple(float(x) for x in v)
        else:
            lo, hi = _RANGES.get(k, (-INF, INF))
            if v == "inf" and k == "duration_s":
                v = INF
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or not lo <= v <= hi:
                raise ConfigError(f"{key} = {v!r} is out of range; allowed: {lo:g} <= {k} <= {hi:g}")
            if k in ("cycles", "max_cycles", "burst_samples"):
                if v != int(v):
                    raise ConfigError(f"{key} = {v!r}; allowed: an integer")
                v = int(v)
            else:
                v = float(v)
        kw[k] = v
    return cls(**kw)


# The set of faults of one run ---------------------------------------------------------------
class FaultSet:
    """All faults of one run. With no faults every hook is the identity."""

    def __init__(self, faults=(), rng=None):
        if rng is None:
            import numpy as np
            rng = np.random.default_rng([0, 0xFA17])
        self.rng = rng
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

    def _evaluate(self) -> None:
        t, alt, ph = self.t_s, self.altitude_m, self.phase if self.phase is not None else 0
        for _ in range(len(self.faults) + 1):
            changed = False
            for f in self.faults:
                was = f.active
                if f._evaluate(t, alt, ph):
                    if f.id and f"fault:{f.id}" not in self.events:
                        self.events[f"fault:{f.id}"] = f.t_on
                        changed = True
                if f.active != was:
                    self.timeline.append((t, f.name, "start" if f.active else "end"))
            if not changed:
                break
        for f in self.faults:
            if f.active:
                f.cycles_active += 1

    def update(self, t_s: float, altitude_m: float, phase: int) -> None:
        self.cycle += 1
        if self.phase is not None and phase != self.phase and "phase_change" not in self.events:
            self.events["phase_change"] = t_s
        self.t_s, self.altitude_m, self.phase = t_s, altitude_m, phase
        self._evaluate()
        if self.transport is not None:
            self.transport.tick()

    def imu(self, reading):
        for f in self.faults:
            reading = f.imu(reading)
        return reading

    def lrf(self, reading):
        if reading.valid and "first_valid_lrf" not in self.events and self.t_s is not None:
            self.events["first_valid_lrf"] = self.t_s
            self._evaluate_event()
        for f in self.faults:
            reading = f.lrf(reading)
        return reading

    def _evaluate_event(self) -> None:
        # an event inside a cycle: re-evaluate triggers without counting the cycle twice
        for f in self.faults:
            was = f.active
            f._evaluate(self.t_s, self.altitude_m, self.phase or 0)
            if f.active != was:
                self.timeline.append((self.t_s, f.name, "start" if f.active else "end"))
                if f.active:
                    f.cycles_active += 1

    def wrap_transport(self, transport):
        link = [f for f in self.faults if isinstance(f, LinkFault)]
        if not link:
            return transport
        self.transport = FaultyTransport(transport, self, link)
        return self.transport

    def command(self, answer):
        for f in self.faults:
            answer = f.command(answer)
        return answer

    def actuator(self, cmd):
        for f in self.faults:
            cmd = f.actuator(cmd)
        return cmd

    def plant_effects(self, plant) -> None:
        scales = [f for f in self.faults if isinstance(f, ThrustScale)]
        if not scales:
            return
        k = 1.0
        for f in scales:
            k *= f.thrust_scale()
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


__all__ = ["FaultSet", "Fault", "Trigger", "FAULT_TYPES", "make_fault", "parse_trigger", "at_time",
           "below_altitude", "in_phase", "on_event", "after", "START", "FaultyTransport"] + \
    [c.__name__ for c in FAULT_TYPES.values()]
