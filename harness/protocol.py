"""Link protocol v2: the Python codec (docs/protocol.md is the specification).

Frames are ``COBS(header + body + crc16) + b"\\x00"``; all fields little-endian.
COBS comes from the maintained ``cobs`` package, the CRC from ``crcmod``
(CRC-16/CCITT-FALSE). The C twin lives in ``firmware_stub/fsw_protocol.c``;
both are checked against ``tests/vectors/protocol_v2.json``.
"""
from __future__ import annotations

import operator
import struct
from itertools import repeat
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, Union

import crcmod.predefined
from cobs import cobs

cobs_encode, cobs_decode = cobs.encode, cobs.decode

PROTOCOL_VERSION = 2
HEADER = struct.Struct("<BBHQ")  # version, msg_type, seq, t_us
CRC = struct.Struct("<H")
MAX_PACKET = 250  # header + body + crc, bytes
MAX_RUN = 253  # most non-zero bytes a receiver buffers before a 0x00 (a 250-byte packet encodes to 251)
DELIMITER = b"\x00"

crc16 = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")
_CRC_INIT = 0xFFFF  # CRC-16/CCITT-FALSE's initial value (no final XOR)


def _crc_routine():
    """``(routine, table)``: crcmod's C CRC routine and its table, so the hot paths call
    ``routine(data, _CRC_INIT, table)``, the very call ``crc16`` makes, without the Python-level
    wrapper in between (crcmod 1.7's ``crcfun(data, crc=initCrc, table=_table, fun=_fun)`` keeps
    both as default arguments; 1.7 is crcmod's last release). Checked against ``crc16`` on
    every byte value; with any other layout the public ``crc16`` itself (through an adapter)."""
    try:
        init, table, routine = crc16.__defaults__
        probes = (b"123456789", bytes(range(256)), b"\x00" * 3)
        if init == _CRC_INIT and all(routine(d, _CRC_INIT, table) == crc16(d) for d in probes):
            return routine, table
    except (TypeError, ValueError):
        pass

    def public(data, _init, _table):
        return crc16(data)
    return public, None


_crc, _CRC_TABLE = _crc_routine()
_tuple_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot decode path)


class MsgType(IntEnum):
    HELLO = 0x01
    CONFIG = 0x02
    CONFIG_ACK = 0x03
    SENSORS = 0x10
    COMMAND = 0x11
    TELEMETRY = 0x12


# Bit flags -----------------------------------------------------------------
CONFIG_COMMIT = 0x0001
COMMIT_PARAM_ID = 0  # CONFIG param_id 0 is reserved for COMMIT (sent with flags = CONFIG_COMMIT, value 0.0)
SENSORS_LRF_VALID = 0x01
SENSORS_IMU_VALID = 0x02
SENSORS_LRF_NEW = 0x04
#: What ``FlightLink.exchange_reading`` takes from an IMU reading, in this order (float64; m/s, rad,
#: s, body axes): the increments over the interval, the interval, whether the reading is valid
#: (non-zero: IMU_VALID), then the running sums (sensor_models/imu.py READING_FIELDS starts so)
SENSORS_READING_FIELDS = ("dv_x", "dv_y", "dv_z", "dtheta_x", "dtheta_y", "dtheta_z", "dt_s", "valid",
                          "dv_accum_x", "dv_accum_y", "dv_accum_z", "dtheta_accum_x", "dtheta_accum_y",
                          "dtheta_accum_z")
COMMAND_ENGINE_ON = 0x01
# COMMAND.flags status bits (ignored by the plant, shown in the record)
COMMAND_ACCEL_FAILED = 0x02      # flight code declared its accelerometers failed
COMMAND_PULSE_OFF = 0x04         # engine held off by the flight code's own pulse mode
COMMAND_SAFE_MODE = 0x08         # flight code is in its own safe mode (mode = Phase.SAFE)
COMMAND_SENSORS_REJECTED = 0x10  # this frame's SENSORS failed plausibility: previous state held


class Phase(IntEnum):
    """Guidance phase (COMMAND.mode, TELEMETRY.phase)."""

    IDLE = 0
    BRAKING = 1
    APPROACH = 2
    TERMINAL = 3
    TOUCHDOWN = 4
    CONTINGENCY = 5
    SAFE = 6


class LrfStatus(IntEnum):
    """What the flight code did with the last LRF sample (TELEMETRY.lrf_status)."""

    NO_SAMPLE = 0
    ACCEPTED = 1
    REJECTED = 2
    INVALID = 3
    LATCHED_OUT = 4
    PENDING = 5  # sample received, not yet judged (held for latency, awaiting consistency): not rejected


class ConfigStatus(IntEnum):
    """CONFIG_ACK.status. 0-2 answer a parameter CONFIG, 3-4 answer COMMIT (param_id 0)."""

    ACCEPTED = 0
    UNKNOWN_ID = 1        # not applied
    OUT_OF_RANGE = 2      # not applied; ack.value = value in force
    COMMITTED = 3         # initialised from the parameters, ready for SENSORS
    COMMIT_REFUSED = 4    # configuration implausible or incomplete; ack.value = first offending id, or 0


def status_name(status: int) -> str:
    """``ConfigStatus`` name of a CONFIG_ACK status, or the number for one the protocol does not define."""
    try:
        return ConfigStatus(status).name
    except ValueError:
        return f"{status} (undefined)"


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
    """SENSORS (H -> F). IMU increments over the interval and running sums since the IMU started
    (m/s, rad; body axes); LRF slant range, m; times in us."""

    imu_dv_body: tuple[float, float, float]
    imu_dtheta_body: tuple[float, float, float]
    imu_dt_us: int
    lrf_range: float
    lrf_sample_t_us: int
    flags: int
    imu_dv_accum_body: tuple[float, float, float] = (0.0, 0.0, 0.0)
    imu_dtheta_accum_body: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def pack(self) -> bytes:
        dv, dth, av, at = self.imu_dv_body, self.imu_dtheta_body, self.imu_dv_accum_body, self.imu_dtheta_accum_body
        return self.LAYOUT.pack(dv[0], dv[1], dv[2], dth[0], dth[1], dth[2], self.imu_dt_us,
                                self.lrf_range, self.lrf_sample_t_us, self.flags,
                                av[0], av[1], av[2], at[0], at[1], at[2])

    @classmethod
    def unpack(cls, body: bytes) -> "Sensors":
        ax, ay, az, gx, gy, gz, dt_us, rng, lrf_t_us, flags, sx, sy, sz, tx, ty, tz = cls.LAYOUT.unpack(body)
        return _tuple_new(cls, ((ax, ay, az), (gx, gy, gz), dt_us, rng, lrf_t_us, flags, (sx, sy, sz), (tx, ty, tz)))

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
        throttle, tx, ty, tz, seq, mode, flags = cls.LAYOUT.unpack(body)
        return _tuple_new(cls, (throttle, (tx, ty, tz), seq, mode, flags))  # Command(...), minus a Python call

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
    sensors_gaps: int = 0       # SENSORS frames missing by sequence number (saturating)
    sensors_rejected: int = 0   # SENSORS frames refused by the flight code's plausibility checks (saturating)
    fault_flags: int = 0        # flight-code defined bit mask, 0 = healthy

    def pack(self) -> bytes:
        return self.LAYOUT.pack(*self.est_r_mci, *self.est_v_mci, *self.est_q_mci_body, self.est_alt,
                                self.lrf_innovation, self.phase, self.lrf_status, self.lrf_rejects,
                                self.rx_crc_errors, self.rx_framing_errors, self.rx_length_errors,
                                self.rx_unknown_msgs, self.rx_frames_ok, self.cycle_overruns,
                                self.sensors_gaps, self.sensors_rejected, self.fault_flags)

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
Sensors.LAYOUT = struct.Struct("<3f3fIfQB3x3d3d")
Command.MSG_TYPE = MsgType.COMMAND
Command.LAYOUT = struct.Struct("<f3fHBB4x")
Telemetry.MSG_TYPE = MsgType.TELEMETRY
Telemetry.LAYOUT = struct.Struct("<3d3f4fffBBHHHHHHHHHI")

Message = Union[Hello, Config, ConfigAck, Sensors, Command, Telemetry]
MESSAGE_CLASSES: dict[int, type] = {c.MSG_TYPE: c for c in (Hello, Config, ConfigAck, Sensors, Command, Telemetry)}
BODY_SIZES: dict[int, int] = {t: c.LAYOUT.size for t, c in MESSAGE_CLASSES.items()}
# plain-int keyed twins for the hot path (IntEnum keys and bound lookups cost time per frame)
_BODY_SIZE = {int(t): n for t, n in BODY_SIZES.items()}
_UNPACK = {int(t): c.unpack for t, c in MESSAGE_CLASSES.items()}


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


class VersionError(LengthError):
    """A CRC-valid frame of another protocol version (counted as a length error, as in the C parser)."""

    def __init__(self, version: int, msg_type: int):
        super().__init__(f"protocol version {version}, expected {PROTOCOL_VERSION} (message type 0x{msg_type:02x})")
        self.version = version
        self.msg_type = msg_type


# Encoding ------------------------------------------------------------------
def encode_packet(msg: Message, seq: int, t_us: int) -> bytes:
    """Header + body + CRC (not yet COBS-framed)."""
    data = HEADER.pack(PROTOCOL_VERSION, msg.MSG_TYPE, seq & 0xFFFF, t_us) + msg.pack()
    return data + CRC.pack(crc16(data))


#: A SENSORS packet's header and body (no CRC) in one struct; a COMMAND packet's header, body and CRC
SENSORS_PACKET = struct.Struct(HEADER.format + Sensors.LAYOUT.format[1:])
_SENSORS = int(MsgType.SENSORS)


def sensors_packet(msg: Sensors, seq: int, t_us: int) -> bytes:
    """Header + body of a SENSORS (no CRC yet) in one struct pack: the lockstep hot path, shared by
    ``encode_frame`` and the in-process rig's C framing (``harness/transports/loopback.py``)."""
    (dv0, dv1, dv2), (dth0, dth1, dth2), dt_us, lrf_range, lrf_t_us, flags, (av0, av1, av2), (at0, at1, at2) = msg
    return SENSORS_PACKET.pack(PROTOCOL_VERSION, _SENSORS, seq & 0xFFFF, t_us, dv0, dv1, dv2, dth0, dth1, dth2,
                                dt_us, lrf_range, lrf_t_us, flags, av0, av1, av2, at0, at1, at2)


_pack_sensors = SENSORS_PACKET.pack
_pack_crc = CRC.pack


def encode_frame(msg: Message, seq: int, t_us: int) -> bytes:
    """A complete wire frame: COBS-encoded packet followed by the 0x00 delimiter."""
    if type(msg) is Sensors:  # the lockstep hot path: sensors_packet's pack, inline (a call less)
        (dv0, dv1, dv2), (dth0, dth1, dth2), dt_us, lrf_range, lrf_t_us, flags, (av0, av1, av2), (at0, at1, at2) = msg
        data = _pack_sensors(PROTOCOL_VERSION, _SENSORS, seq & 0xFFFF, t_us, dv0, dv1, dv2, dth0, dth1, dth2,
                             dt_us, lrf_range, lrf_t_us, flags, av0, av1, av2, at0, at1, at2)
        return cobs_encode(data + _pack_crc(_crc(data, _CRC_INIT, _CRC_TABLE))) + DELIMITER
    return cobs_encode(encode_packet(msg, seq, t_us)) + DELIMITER


#: the reading's first len(SENSORS_READING_FIELDS) float64s as Python floats, read straight from
#: its buffer (one C call: cheaper than a numpy slice and its tolist())
reading_values = struct.Struct(f"={len(SENSORS_READING_FIELDS)}d").unpack_from


def encode_reading_frame(reading, lrf_range_m: float, lrf_sample_t_us: int, lrf_flags: int, seq: int,
                         t_us: int) -> bytes:
    """The wire frame of the SENSORS that an IMU reading (a float64 buffer starting with
    ``SENSORS_READING_FIELDS``) and these LRF fields make (``lrf_flags``: the LRF bits; IMU_VALID
    comes from the reading): the bytes ``encode_frame`` makes of the same Sensors, without building
    it (the serial rigs' lockstep path; the in-process rig packs the same bytes in C)."""
    dvx, dvy, dvz, dthx, dthy, dthz, dt_s, valid, avx, avy, avz, atx, aty, atz = reading_values(reading)
    data = _pack_sensors(PROTOCOL_VERSION, _SENSORS, seq & 0xFFFF, t_us, dvx, dvy, dvz, dthx, dthy, dthz,
                         round(dt_s * 1e6), lrf_range_m, lrf_sample_t_us,
                         lrf_flags | (SENSORS_IMU_VALID if valid != 0.0 else 0), avx, avy, avz, atx, aty, atz)
    return cobs_encode(data + _pack_crc(_crc(data, _CRC_INIT, _CRC_TABLE))) + DELIMITER


_MIN_PACKET = HEADER.size + CRC.size
_WITHOUT_CRC = operator.itemgetter(slice(None, -2))


_COMMAND = int(MsgType.COMMAND)
COMMAND_PACKET = struct.Struct(HEADER.format + Command.LAYOUT.format[1:] + "H")  # header + body + CRC
_COMMAND_PACKET_SIZE = COMMAND_PACKET.size
_COMMAND_FRAME = _COMMAND_PACKET_SIZE + 1  # its COBS encoding, delimiter not counted (a packet under 254 bytes)
_unpack_command = COMMAND_PACKET.unpack


_crc_xmodem = crcmod.predefined.mkPredefinedCrcFun("xmodem")


def _crc_hint(covered: bytes, crc_rx: int, crc_calc: int) -> str:
    """The usual mistakes of a CRC-16/CCITT-FALSE implementation, recognised from the CRC a frame
    carries (a hint for whoever writes their own codec; '' when it is none of them)."""
    if crc_rx == ((crc_calc >> 8) | ((crc_calc & 0xFF) << 8)):
        return " (the right CRC with its bytes swapped: append it little-endian, docs/protocol.md \"Framing\")"
    if crc_rx == _crc_xmodem(covered):
        return (" (that is CRC-16/XMODEM, initial value 0x0000: start from 0xFFFF, CRC-16/CCITT-FALSE, "
                "docs/protocol.md \"Framing\")")
    return ""


def decode_packet(packet: bytes, raw_types: frozenset = frozenset()) -> Frame:
    """Decode one COBS-decoded packet; raises a LinkError subclass naming what is wrong.

    For message types in ``raw_types`` the frame is checked in full but ``msg`` is left as the
    raw body bytes.
    """
    n = len(packet)
    if n == COMMAND_PACKET.size and packet[1] == _COMMAND and _COMMAND not in raw_types:
        # the answer the lockstep loop waits for: one unpack of the whole packet; anything
        # wrong with it falls through to the checks below, which name the fault
        ver, typ, seq, t_us, thr, tx, ty, tz, sensors_seq, mode, flags, crc_rx = COMMAND_PACKET.unpack(packet)
        if ver == PROTOCOL_VERSION and crc_rx == _crc(packet[:-2], _CRC_INIT, _CRC_TABLE):
            return _tuple_new(Frame, (typ, seq, t_us, _tuple_new(Command, (thr, (tx, ty, tz), sensors_seq, mode, flags))))
    if n < _MIN_PACKET:
        raise FramingError(f"truncated packet: {n} bytes, need at least {_MIN_PACKET}")
    crc_rx = packet[-2] | (packet[-1] << 8)
    crc_calc = _crc(packet[:-2], _CRC_INIT, _CRC_TABLE)
    if crc_rx != crc_calc:
        raise CrcError(f"CRC mismatch: frame says 0x{crc_rx:04x}, computed 0x{crc_calc:04x}"
                       + _crc_hint(packet[:-2], crc_rx, crc_calc))
    version, msg_type, seq, t_us = HEADER.unpack_from(packet)
    if version != PROTOCOL_VERSION:
        raise VersionError(version, msg_type)
    size = _BODY_SIZE.get(msg_type)
    if size is None:
        raise UnknownMessage(f"unknown message type 0x{msg_type:02x} (seq {seq})")
    if n - _MIN_PACKET != size:
        raise LengthError(f"{MESSAGE_CLASSES[msg_type].__name__.upper()} body of {n - _MIN_PACKET} bytes, "
                          f"expected {size}")
    body = packet[12:-2]
    return _tuple_new(Frame, (msg_type, seq, t_us, body if msg_type in raw_types else _UNPACK[msg_type](body)))


_TELEMETRY_FIELDS = ([("est_r_mci", "<f8", (3,)), ("est_v_mci", "<f4", (3,)), ("est_q_mci_body", "<f4", (4,)),
                      ("est_alt", "<f4"), ("lrf_innovation", "<f4"), ("phase", "u1"), ("lrf_status", "u1")]
                     + [(name, "<u2") for name in Telemetry._fields[7:16]] + [("fault_flags", "<u4")])


#: a TELEMETRY packet (header + body + CRC), bytes
TELEMETRY_PACKET_SIZE = HEADER.size + Telemetry.LAYOUT.size + CRC.size
_telemetry_dtype = None  # the numpy record of one TELEMETRY packet (built on first use: numpy loads lazily)


def unpack_telemetry(packets: list[bytes]):
    """Many checked TELEMETRY packets (header + body + CRC, as ``FrameDecoder.take_deferred``
    returns them; a bytes object may hold several back to back, as the in-process lockstep call
    hands them over) as one numpy structured array: the header's ``seq`` and ``t_us``, then the
    fields named as in Telemetry."""
    import numpy as np

    global _telemetry_dtype
    if _telemetry_dtype is None:
        dtype = np.dtype([("version", "u1"), ("msg_type", "u1"), ("seq", "<u2"), ("t_us", "<u8")]
                         + _TELEMETRY_FIELDS + [("crc", "<u2")])
        assert dtype.itemsize == TELEMETRY_PACKET_SIZE
        _telemetry_dtype = dtype
    return np.frombuffer(b"".join(packets), dtype=_telemetry_dtype)


def decode_frame(frame: bytes, raw_types: frozenset = frozenset()) -> Frame:
    """Decode one wire frame (with or without its trailing 0x00)."""
    if frame[-1:] == DELIMITER:
        frame = frame[:-1]
    try:
        packet = cobs_decode(frame)
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
    #: message types whose frames are not decoded as they arrive but kept, still COBS-encoded,
    #: until ``take_deferred()`` checks and decodes them all at once (TELEMETRY in the lockstep
    #: loop: nothing in the loop needs it, so its CRC and header are checked after the run)
    defer_types: frozenset = frozenset()
    #: deferred frames are checked in batches of this many, so garbage that merely looks like a
    #: deferred type (its third byte) is counted and dropped within a batch, never kept to the end
    defer_batch: int = 1024
    #: (version, msg_type) of the last CRC-valid frame of another protocol version, else None
    foreign_version: tuple[int, int] | None = None
    _buf: bytearray = field(default_factory=bytearray)
    _discarding: bool = False
    _deferred: list = field(default_factory=list)
    _checked: list = field(default_factory=list)  # deferred packets already checked, arrival order

    def _error(self, exc: LinkError) -> None:
        setattr(self.counters, exc.kind, getattr(self.counters, exc.kind) + 1)
        self.errors.append((exc.kind, str(exc)))
        if len(self.errors) > self.max_error_log:
            del self.errors[0]
        if type(exc) is VersionError:
            self.foreign_version = (exc.version, exc.msg_type)

    def _take(self, chunks) -> list[Frame]:
        """Decode delimited chunks (no 0x00 in them; empty ones are flushes and skipped), in
        arrival order, into frames; deferred types are set aside, bad frames counted and described.

        A regular COMMAND is decoded right here (one unpack of its whole packet) and a deferred
        type is recognised by its third byte (a well-formed frame's COBS code byte is >= 3, as
        version and type are non-zero, so ``chunk[2]`` is its type): no call per frame on the
        lockstep path. Everything else, and a COMMAND-like frame that fails any check, goes to
        ``_decode``, which decodes it in full and counts and names the fault."""
        frames: list[Frame] = []
        defer = self.defer_types
        command = _COMMAND not in defer and _COMMAND not in self.raw_types
        good = 0
        try:
            for chunk in chunks:
                if not chunk:  # an empty frame is a flush, not an error
                    continue
                n = len(chunk)
                if 2 < n <= MAX_RUN and chunk[0] >= 3:
                    typ = chunk[2]
                    if typ in defer:
                        deferred = self._deferred
                        deferred.append(chunk)
                        if len(deferred) >= self.defer_batch:
                            self._checked += self._check_deferred()
                        continue
                    if typ == _COMMAND and n == _COMMAND_FRAME and command:
                        try:
                            packet = cobs_decode(chunk)
                        except cobs.DecodeError:
                            packet = b""
                        if len(packet) == _COMMAND_PACKET_SIZE:
                            ver, typ, seq, t_us, thr, tx, ty, tz, sensors_seq, mode, flags, crc_rx = \
                                _unpack_command(packet)
                            if ver == PROTOCOL_VERSION and crc_rx == _crc(packet[:-2], _CRC_INIT, _CRC_TABLE):
                                frames.append(_tuple_new(Frame, (typ, seq, t_us, _tuple_new(
                                    Command, (thr, (tx, ty, tz), sensors_seq, mode, flags)))))
                                good += 1
                                continue
                self._decode(chunk, frames)
        finally:  # (counted even if something unforeseen raises half way)
            if good:
                self.counters.frames_ok += good
        return frames

    def _decode(self, chunk: bytes, frames: list[Frame]) -> None:
        """Decode one delimited chunk (not of a deferred type) into ``frames``, or count and
        describe why not."""
        n = len(chunk)
        if n > MAX_RUN:
            self._error(FramingError(f"oversize frame: {n} bytes before the delimiter"))
            return
        try:
            frames.append(decode_frame(chunk, self.raw_types))
            self.counters.frames_ok += 1
        except LinkError as exc:
            self._error(exc)

    def take_deferred(self) -> list[bytes]:
        """Check the deferred frames in bulk and return their packets (COBS-decoded; CRC, version,
        type and length verified; header + body + CRC) in arrival order. Bad ones are counted and
        described exactly as if they had been decoded on arrival, and left out."""
        checked, self._checked = self._checked, []
        return checked + self._check_deferred() if checked else self._check_deferred()

    def _check_deferred(self) -> list[bytes]:
        chunks, self._deferred = self._deferred, []
        if not chunks:
            return []
        import numpy as np

        try:  # the usual case, all good and of one length: checked as one array
            packets = list(map(cobs_decode, chunks))
            crcs = np.fromiter(map(_crc, map(_WITHOUT_CRC, packets), repeat(_CRC_INIT), repeat(_CRC_TABLE)),
                               np.uint16, len(packets))
            (size,) = set(map(len, packets))
            if size >= _MIN_PACKET:
                rows = np.frombuffer(b"".join(packets), np.uint8).reshape(-1, size)
                ok = (rows[:, 0] == PROTOCOL_VERSION).all() \
                    and (crcs == (rows[:, -2] | (rows[:, -1].astype(np.uint16) << 8))).all() \
                    and all(_BODY_SIZE.get(int(t)) == size - _MIN_PACKET for t in np.unique(rows[:, 1]))
                if ok:
                    self.counters.frames_ok += len(packets)
                    return packets
        except (cobs.DecodeError, ValueError):  # bad COBS, or frames of several lengths
            pass
        good = []
        for chunk in chunks:  # something is bad: one by one, for the exact counter and message
            try:
                decode_frame(chunk, self.raw_types)
            except LinkError as exc:
                self._error(exc)
                continue
            self.counters.frames_ok += 1
            good.append(cobs_decode(chunk))
        return good

    def take_answer(self, data: bytes, seq: int) -> tuple[Command, int, int, bytes] | None:
        """The lockstep answer, decoded first: when no partial frame is held and ``data`` begins
        (after any delimiters: flushes) with a regular COMMAND answering SENSORS ``seq`` (its COBS,
        length, version, type and CRC all good), that frame is counted and ``(command, its seq, its t_us, the bytes after its
        delimiter)`` returned; the caller must ``feed`` those bytes next (before any later ones).
        Else None and nothing is taken: ``feed(data)`` decodes it all and counts and names any
        fault."""
        if not data or self._buf or self._discarding:
            return None
        start = 0
        if not data[0]:  # delimiters first (a flight code that also starts its frames with one): flushes
            start = len(data) - len(data.lstrip(b"\x00"))
        end = start + _COMMAND_FRAME
        if len(data) <= end or data[end] or data[start + 2] != _COMMAND \
                or _COMMAND in self.defer_types or _COMMAND in self.raw_types:
            return None
        try:  # (a 0x00 inside the frame is a COBS error: the frame is not this length)
            packet = cobs_decode(data[start:end])
        except cobs.DecodeError:
            return None
        if len(packet) != _COMMAND_PACKET_SIZE:
            return None
        ver, typ, rx_seq, t_us, thr, tx, ty, tz, sensors_seq, mode, flags, crc_rx = _unpack_command(packet)
        if ver != PROTOCOL_VERSION or typ != _COMMAND or sensors_seq != seq \
                or crc_rx != _crc(packet[:-2], _CRC_INIT, _CRC_TABLE):
            return None
        self.counters.frames_ok += 1
        return (_tuple_new(Command, (thr, (tx, ty, tz), sensors_seq, mode, flags)), rx_seq, t_us, data[end + 1:])

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data`` (bytes as the transport delivered them), in order."""
        buf = self._buf
        if not buf and not self._discarding and data[-1:] == b"\x00":
            # whole frames only (the usual case on a lockstep link); the last piece is empty
            return self._take(data.split(b"\x00"))
        chunks = []  # the frames this completes, taken in order before a tail too long is reported
        start = 0
        while True:
            idx = data.find(0, start)
            if idx < 0:
                frames = self._take(chunks) if chunks else []
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
            chunks.append(chunk)

    @property
    def pending(self) -> int:
        """Bytes held waiting for a delimiter."""
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """No partial frame held: nothing waiting for a delimiter, not dropping an oversize run."""
        return not self._buf and not self._discarding
