"""Link-layer faults and the transport wrapper that applies them to whole COBS frames."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.faults.base import Fault
from harness.transports.base import Transport


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
        self._direction = direction   # the stream any draw for this frame comes from (rng)
        if not self.active or (self.direction != "both" and self.direction != direction):
            return False
        if self.message == "any":
            return True
        from harness.protocol import MsgType
        return msg_type == int(MsgType[self.message])

    @property
    def rng(self):
        """The random stream of this frame's direction (``FaultSet.link_rng``), not the run's
        stream the per-cycle faults draw from: a frame from the flight code is processed when its
        bytes arrive, so on a serial rig draws from one shared stream would follow read timing."""
        return self.fs.link_rng(self._direction)

    def frame(self, data, direction, msg_type):
        if self.applies(direction, msg_type) and self.chance():
            self.effects += 1
            return self.affect(data)
        return [(data, 0)]

    def chance(self) -> bool:
        """Whether this frame (one the fault applies to) is hit: every one, unless a subclass draws."""
        return True

    def affect(self, data: bytes) -> list[tuple[bytes, int]]:
        """What a hit frame becomes: [(bytes, delay_cycles)]."""
        return [(data, 0)]


@dataclass(kw_only=True)
class LinkRandomFault(LinkFault):
    """A link fault that hits each frame it applies to with probability ``prob``."""

    prob: float = 0.1

    def chance(self) -> bool:
        return bool(self.rng.random() < self.prob)


@dataclass(kw_only=True)
class LinkBitErrors(LinkFault):
    """Each bit of each frame (the 0x00 delimiter excluded) flips with probability ``ber``."""

    type_name: ClassVar[str] = "link_bit_errors"
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
class LinkDrop(LinkRandomFault):
    """Each frame is dropped with probability ``prob``."""

    type_name: ClassVar[str] = "link_drop"

    def affect(self, data):
        return []


@dataclass(kw_only=True)
class LinkDuplicate(LinkRandomFault):
    """Each frame is sent twice with probability ``prob``."""

    type_name: ClassVar[str] = "link_duplicate"

    def affect(self, data):
        return [(data, 0), (data, 0)]


@dataclass(kw_only=True)
class LinkDelay(LinkRandomFault):
    """Each frame is held back ``cycles`` flight-code cycles (with probability ``prob``)."""

    type_name: ClassVar[str] = "link_delay"
    cycles: int = 1
    prob: float = 1.0

    def chance(self) -> bool:
        return self.prob >= 1.0 or super().chance()

    def affect(self, data):
        return [(data, self.cycles)]


@dataclass(kw_only=True)
class LinkJitter(LinkFault):
    """Each frame is held back a random 0 .. ``max_cycles`` cycles (uniform), so frames can
    also overtake each other."""

    type_name: ClassVar[str] = "link_jitter"
    max_cycles: int = 2

    def frame(self, data, direction, msg_type):
        if self.applies(direction, msg_type):
            d = int(self.rng.integers(0, self.max_cycles + 1))
            if d:
                self.effects += 1
            return [(data, d)]
        return [(data, 0)]


@dataclass(kw_only=True)
class LinkReorder(LinkRandomFault):
    """With probability ``prob`` a frame is held and sent after the next frame in the same
    direction (the two swap places)."""

    type_name: ClassVar[str] = "link_reorder"

    def reset(self):
        self.held = {}

    def frame(self, data, direction, msg_type):
        held = self.held.pop(direction, None)
        if held is not None:
            self.effects += 1
            return [(data, 0), (held, 0)]
        if self.applies(direction, msg_type) and self.chance():
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

    def affect(self, data):
        return []


_SENSORS, _COMMAND = 0x10, 0x11  # protocol.MsgType (not imported: the fault layer sees bytes only)
_ANSWER_TYPES = {"up": (_SENSORS,), "down": (_COMMAND,)}  # a lockstep cycle's question and answer


def _msg_type(frame: bytes) -> int | None:
    from cobs import cobs
    try:
        pkt = cobs.decode(frame[:-1])
    except Exception:   # noqa: BLE001 - a corrupted frame has no type
        return None
    return pkt[1] if len(pkt) > 1 else None


class FaultyTransport(Transport):
    """Transport wrapper for link faults: splits each direction's byte stream into whole COBS
    frames at the 0x00 delimiters and passes each frame through the active link faults.

    Delays are counted in flight-code cycles (``FaultSet.update`` calls): a frame delayed one
    cycle going up is written just before the next cycle's SENSORS; going down it is returned
    by the first read of the next cycle. ``counters`` count what was done to the frames.
    """

    def __init__(self, inner, fs, link_faults: list[LinkFault]):
        self.inner = inner
        self.fs = fs
        self.link_faults = link_faults
        self.synchronous = getattr(inner, "synchronous", False)
        self.name = getattr(inner, "name", "transport") + "+faults"
        self._buf = {"up": b"", "down": b""}
        self._queue = {"up": [], "down": []}   # (due_cycle, order, bytes)
        self._order = 0
        self.counters = {"frames_up": 0, "frames_down": 0, "frames_out_up": 0, "frames_out_down": 0}
        self.answer_lost = False  # see Transport.answer_lost

    def describe(self) -> str:
        return f"{self.inner.describe()} with link faults"

    @property
    def diagnose(self):
        """The inner transport's (set by the rig: what became of the far end)."""
        return getattr(self.inner, "diagnose", None)

    @diagnose.setter
    def diagnose(self, fn) -> None:
        self.inner.diagnose = fn

    def __getattr__(self, name):   # anything else is the inner transport's
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
            if mt in _ANSWER_TYPES[direction]:  # this cycle's SENSORS (a new cycle) or the COMMAND answering it
                intact = any(b == fr and d == 0 for b, d in cur)
                if mt == _SENSORS:
                    self.answer_lost = not intact
                elif not intact:
                    self.answer_lost = True
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
