"""Link protocol v1: the Python codec (docs/protocol.md is the specification).

Frames are ``COBS(header + body + crc16) + b"\\x00"``; all fields little-endian.
COBS comes from the maintained ``cobs`` package, the CRC from ``crcmod``
(CRC-16/CCITT-FALSE). The C twin lives in ``firmware_stub/fsw_protocol.c``;
both are checked against ``tests/vectors/protocol_v1.json``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, Union

import crcmod.predefined
from cobs import cobs

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBHQ")  # version, msg_type, seq, t_us
CRC = struct.Struct("<H")
MAX_PACKET = 250  # header + body + crc, bytes
MAX_RUN = 253  # most non-zero bytes a receiver buffers before a 0x00 (a 250-byte packet encodes to 251)
DELIMITER = b"\x00"

crc16 = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")


class MsgType(IntEnum):
    HELLO = 0x01
    CONFIG = 0x02
    CONFIG_ACK = 0x03
    SENSORS = 0x10
    COMMAND = 0x11
    TELEMETRY = 0x12


# Bit flags -----------------------------------------------------------------
CONFIG_COMMIT = 0x0001
SENSORS_LRF_VALID = 0x01
SENSORS_IMU_VALID = 0x02
SENSORS_LRF_NEW = 0x04
COMMAND_ENGINE_ON = 0x01


class Phase(IntEnum):
    """Guidance phase (COMMAND.mode, TELEMETRY.phase)."""

    IDLE = 0
    BRAKING = 1
    APPROACH = 2
    TERMINAL = 3
    TOUCHDOWN = 4
    CONTINGENCY = 5


class LrfStatus(IntEnum):
    """What the flight code did with the last LRF sample (TELEMETRY.lrf_status)."""

    NO_SAMPLE = 0
    ACCEPTED = 1
    REJECTED = 2
    INVALID = 3
    LATCHED_OUT = 4


class ConfigStatus(IntEnum):
    ACCEPTED = 0
    UNKNOWN_ID = 1
    OUT_OF_RANGE = 2
    COMMITTED = 3


# Messages ------------------------------------------------------------------
class Hello(NamedTuple):
    """HELLO: the flight code's banner (F -> H) or the harness's request (H -> F)."""

    protocol_version: int = PROTOCOL_VERSION
    firmware_id: int = 0
    firmware_name: str = ""

    def pack(self) -> bytes:
        name = self.firmware_name.encode("ascii")[:16]
        return self.LAYOUT.pack(self.protocol_version, 0, self.firmware_id, name)

    @classmethod
    def unpack(cls, body: bytes) -> "Hello":
        ver, _res, fw_id, name = cls.LAYOUT.unpack(body)
        return cls(ver, fw_id, name.rstrip(b"\x00").decode("ascii", "replace"))


class Config(NamedTuple):
    """CONFIG: set one flight-code parameter (H -> F). ``value`` in the parameter's SI unit."""

    param_id: int
    value: float
    flags: int = 0

    def pack(self) -> bytes:
        return self.LAYOUT.pack(self.param_id, self.flags, self.value)

    @classmethod
    def unpack(cls, body: bytes) -> "Config":
        pid, flags, value = cls.LAYOUT.unpack(body)
        return cls(pid, value, flags)


class ConfigAck(NamedTuple):
    """CONFIG_ACK: the flight code's answer to one CONFIG (F -> H)."""

    param_id: int
    status: int
    value: float

    def pack(self) -> bytes:
        return self.LAYOUT.pack(self.param_id, self.status, self.value)

    @classmethod
    def unpack(cls, body: bytes) -> "ConfigAck":
        return cls(*cls.LAYOUT.unpack(body))


class Sensors(NamedTuple):
    """SENSORS (H -> F). IMU increments in body axes; LRF slant range, m; times in us."""

    imu_dv_body: tuple[float, float, float]
    imu_dtheta_body: tuple[float, float, float]
    imu_dt_us: int
    lrf_range: float
    lrf_sample_t_us: int
    flags: int

    def pack(self) -> bytes:
        dv, dth = self.imu_dv_body, self.imu_dtheta_body
        return self.LAYOUT.pack(dv[0], dv[1], dv[2], dth[0], dth[1], dth[2], self.imu_dt_us,
                                self.lrf_range, self.lrf_sample_t_us, self.flags)

    @classmethod
    def unpack(cls, body: bytes) -> "Sensors":
        v = cls.LAYOUT.unpack(body)
        return cls(v[0:3], v[3:6], v[6], v[7], v[8], v[9])

    @property
    def lrf_valid(self) -> bool:
        return bool(self.flags & SENSORS_LRF_VALID)


class Command(NamedTuple):
    """COMMAND (F -> H): throttle 0..1 of max thrust, RCS torque N m in body axes."""

    throttle: float
    torque_body: tuple[float, float, float]
    sensors_seq: int
    mode: int
    flags: int

    def pack(self) -> bytes:
        tq = self.torque_body
        return self.LAYOUT.pack(self.throttle, tq[0], tq[1], tq[2], self.sensors_seq, self.mode, self.flags)

    @classmethod
    def unpack(cls, body: bytes) -> "Command":
        v = cls.LAYOUT.unpack(body)
        return cls(v[0], v[1:4], v[4], v[5], v[6])

    @property
    def engine_on(self) -> bool:
        return bool(self.flags & COMMAND_ENGINE_ON)


class Telemetry(NamedTuple):
    """TELEMETRY (F -> H): the flight code's own estimate and its link error counters."""

    est_r_mci: tuple[float, float, float]
    est_v_mci: tuple[float, float, float]
    est_q_mci_body: tuple[float, float, float, float]
    est_alt: float
    lrf_innovation: float
    phase: int
    lrf_status: int
    lrf_rejects: int
    rx_crc_errors: int
    rx_framing_errors: int
    rx_length_errors: int
    rx_unknown_msgs: int
    rx_frames_ok: int
    cycle_overruns: int

    def pack(self) -> bytes:
        return self.LAYOUT.pack(*self.est_r_mci, *self.est_v_mci, *self.est_q_mci_body, self.est_alt,
                                self.lrf_innovation, self.phase, self.lrf_status, self.lrf_rejects,
                                self.rx_crc_errors, self.rx_framing_errors, self.rx_length_errors,
                                self.rx_unknown_msgs, self.rx_frames_ok, self.cycle_overruns)

    @classmethod
    def unpack(cls, body: bytes) -> "Telemetry":
        v = cls.LAYOUT.unpack(body)
        return cls(v[0:3], v[3:6], v[6:10], *v[10:])


# Class-level facts of each message (NamedTuple fields cannot be class variables)
Hello.MSG_TYPE = MsgType.HELLO
Hello.LAYOUT = struct.Struct("<HHI16s")
Config.MSG_TYPE = MsgType.CONFIG
Config.LAYOUT = struct.Struct("<HHd")
ConfigAck.MSG_TYPE = MsgType.CONFIG_ACK
ConfigAck.LAYOUT = struct.Struct("<HHd")
Sensors.MSG_TYPE = MsgType.SENSORS
Sensors.LAYOUT = struct.Struct("<3f3fIfQB3x")
Command.MSG_TYPE = MsgType.COMMAND
Command.LAYOUT = struct.Struct("<f3fHBB4x")
Telemetry.MSG_TYPE = MsgType.TELEMETRY
Telemetry.LAYOUT = struct.Struct("<3d3f4fffBBHHHHHHH")

Message = Union[Hello, Config, ConfigAck, Sensors, Command, Telemetry]
MESSAGE_CLASSES: dict[int, type] = {c.MSG_TYPE: c for c in (Hello, Config, ConfigAck, Sensors, Command, Telemetry)}
BODY_SIZES: dict[int, int] = {t: c.LAYOUT.size for t, c in MESSAGE_CLASSES.items()}


class Frame(NamedTuple):
    """One decoded frame: header fields plus the typed message."""

    msg_type: int
    seq: int
    t_us: int
    msg: Message


# Errors --------------------------------------------------------------------
class LinkError(Exception):
    """A frame that could not be decoded. ``kind`` names the counter it increments."""

    kind = "framing_errors"


class FramingError(LinkError):
    kind = "framing_errors"


class CrcError(LinkError):
    kind = "crc_errors"


class LengthError(LinkError):
    kind = "length_errors"


class UnknownMessage(LinkError):
    kind = "unknown_msgs"


# Encoding ------------------------------------------------------------------
def encode_packet(msg: Message, seq: int, t_us: int) -> bytes:
    """Header + body + CRC (not yet COBS-framed)."""
    data = HEADER.pack(PROTOCOL_VERSION, msg.MSG_TYPE, seq & 0xFFFF, t_us) + msg.pack()
    return data + CRC.pack(crc16(data))


def encode_frame(msg: Message, seq: int, t_us: int) -> bytes:
    """A complete wire frame: COBS-encoded packet followed by the 0x00 delimiter."""
    return cobs.encode(encode_packet(msg, seq, t_us)) + DELIMITER


def decode_packet(packet: bytes, raw_types: frozenset = frozenset()) -> Frame:
    """Decode one COBS-decoded packet; raises a LinkError subclass naming what is wrong.

    For message types in ``raw_types`` the frame is checked in full but ``msg`` is left as the
    raw body bytes, to be unpacked later in bulk (``unpack_telemetry``).
    """
    if len(packet) < HEADER.size + CRC.size:
        raise FramingError(f"truncated packet: {len(packet)} bytes, need at least {HEADER.size + CRC.size}")
    data, (crc_rx,) = packet[:-2], CRC.unpack(packet[-2:])
    crc_calc = crc16(data)
    if crc_rx != crc_calc:
        raise CrcError(f"CRC mismatch: frame says 0x{crc_rx:04x}, computed 0x{crc_calc:04x}")
    version, msg_type, seq, t_us = HEADER.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise LengthError(f"protocol version {version}, expected {PROTOCOL_VERSION}")
    cls = MESSAGE_CLASSES.get(msg_type)
    if cls is None:
        raise UnknownMessage(f"unknown message type 0x{msg_type:02x} (seq {seq})")
    body = data[HEADER.size:]
    if len(body) != cls.LAYOUT.size:
        raise LengthError(f"{cls.__name__.upper()} body of {len(body)} bytes, expected {cls.LAYOUT.size}")
    return Frame(msg_type, seq, t_us, body if msg_type in raw_types else cls.unpack(body))


def unpack_telemetry(bodies: list[bytes]):
    """Many raw TELEMETRY bodies as one numpy structured array (fields named as in Telemetry)."""
    import numpy as np

    dtype = np.dtype([("est_r_mci", "<f8", (3,)), ("est_v_mci", "<f4", (3,)), ("est_q_mci_body", "<f4", (4,)),
                      ("est_alt", "<f4"), ("lrf_innovation", "<f4"), ("phase", "u1"), ("lrf_status", "u1")]
                     + [(name, "<u2") for name in Telemetry._fields[7:]])
    assert dtype.itemsize == Telemetry.LAYOUT.size
    return np.frombuffer(b"".join(bodies), dtype=dtype)


def decode_frame(frame: bytes, raw_types: frozenset = frozenset()) -> Frame:
    """Decode one wire frame (with or without its trailing 0x00)."""
    if frame.endswith(DELIMITER):
        frame = frame[:-1]
    try:
        packet = cobs.decode(frame)
    except cobs.DecodeError as exc:
        raise FramingError(f"COBS decode failed: {exc}") from None
    return decode_packet(packet, raw_types)


# Streaming decoder ---------------------------------------------------------
@dataclass
class LinkCounters:
    """Receive-side error counters (same meaning as the C parser's, docs/protocol.md)."""

    frames_ok: int = 0
    crc_errors: int = 0
    framing_errors: int = 0
    length_errors: int = 0
    unknown_msgs: int = 0

    @property
    def errors(self) -> int:
        return self.crc_errors + self.framing_errors + self.length_errors + self.unknown_msgs

    def as_dict(self) -> dict[str, int]:
        return {"frames_ok": self.frames_ok, "crc_errors": self.crc_errors,
                "framing_errors": self.framing_errors, "length_errors": self.length_errors,
                "unknown_msgs": self.unknown_msgs}


@dataclass
class FrameDecoder:
    """Byte-stream to frames. Feed it whatever the transport delivered, in any chunking.

    Bad frames are counted in ``counters``, described in ``errors`` (the most recent
    ``max_error_log`` of them, as ``(kind, message)``) and dropped; decoding resumes
    after the next 0x00.
    """

    counters: LinkCounters = field(default_factory=LinkCounters)
    errors: list[tuple[str, str]] = field(default_factory=list)
    max_error_log: int = 100
    raw_types: frozenset = frozenset()  # message types whose body is kept raw (see decode_packet)
    _buf: bytearray = field(default_factory=bytearray)
    _discarding: bool = False

    def _error(self, exc: LinkError) -> None:
        setattr(self.counters, exc.kind, getattr(self.counters, exc.kind) + 1)
        self.errors.append((exc.kind, str(exc)))
        if len(self.errors) > self.max_error_log:
            del self.errors[0]

    def _take(self, chunk: bytes, frames: list[Frame]) -> None:
        """Decode one delimited chunk into ``frames``, or count and describe why not."""
        if len(chunk) > MAX_RUN:
            self._error(FramingError(f"oversize frame: {len(chunk)} bytes before the delimiter"))
            return
        try:
            frames.append(decode_frame(chunk, self.raw_types))
            self.counters.frames_ok += 1
        except LinkError as exc:
            self._error(exc)

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        buf = self._buf
        if not buf and not self._discarding and data.endswith(b"\x00"):
            # fast path: whole frames only (the usual case on a lockstep link)
            for chunk in data[:-1].split(b"\x00"):
                if chunk:  # an empty frame is a flush, not an error
                    self._take(chunk, frames)
            return frames
        start = 0
        while True:
            idx = data.find(0, start)
            if idx < 0:
                if not self._discarding:
                    buf += data[start:]
                    if len(buf) > MAX_RUN:
                        self._error(FramingError(f"oversize frame: more than {MAX_RUN} bytes without a delimiter"))
                        buf.clear()
                        self._discarding = True
                return frames
            chunk = data[start:idx]
            start = idx + 1
            if self._discarding:
                self._discarding = False
                buf.clear()
                continue
            if buf:
                buf += chunk
                chunk = bytes(buf)
                buf.clear()
            if chunk:  # an empty frame is a flush, not an error
                self._take(chunk, frames)

    @property
    def pending(self) -> int:
        """Bytes held waiting for a delimiter."""
        return len(self._buf)
