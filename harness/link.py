"""The harness end of the link: frames over a transport, handshake, configuration, lockstep exchange.

Owns the sequence numbers, the stream decoder and its error counters, the raw link log and
the diagnostics that name the last frame sent and received when the flight code goes quiet.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from harness import protocol as p
from harness.errors import FsilError
from harness.params import ParamSpec, is_core
from harness.safetext import printable
from harness.transports.base import Transport

#: What the harness does in a cycle whose COMMAND did not arrive in time (docs/protocol.md):
#: keep applying the last COMMAND, cut the engine (throttle 0, engine off, zero torque), or end the run.
LOST_COMMAND_POLICIES = ("hold", "engine-off", "fail")


class LinkError(FsilError):
    """The flight code did not behave as protocol v2 requires; the message says how."""


class HandshakeError(LinkError):
    """No HELLO, a wrong protocol version, a core or required CONFIG refused, or COMMIT not COMMITTED."""


class FlightCodeStalled(LinkError):
    """The flight code stopped answering SENSORS with COMMAND."""


class CommandLost(LinkError):
    """A COMMAND did not arrive in its cycle and the lost-command policy is ``fail``."""


@dataclass(frozen=True)
class RefusedParam:
    """An optional parameter the flight code refused during the handshake (not applied)."""

    name: str
    id: int
    value: float
    unit: str
    status: int
    in_force: float

    def describe(self) -> str:
        unit = "" if self.unit in ("", "-") else f" {self.unit}"  # "-": a dimensionless parameter
        return f"{self.name} (id {self.id}) = {self.value:g}{unit}: {p.status_name(self.status)}, not applied"


# Raw link log --------------------------------------------------------------------------
LOG_MAGIC = b"FSILLOG1"
_LOG_RECORD = struct.Struct("<cdI")  # direction b">" (H->F) or b"<" (F->H), wall time s, length


class LinkLog:
    """Both directions of the raw byte stream, replayable (``read_link_log``, ``fsil replay``).

    File layout: ``FSILLOG1`` then records ``<direction:1s><wall_time_s:f64><length:u32><bytes>``.
    Records are written through as they happen (buffered; flushed on ``close``/``flush``), so a
    run that dies keeps everything up to its last flush.
    """

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else None
        self._fh: BinaryIO | None = None
        self._t0 = time.perf_counter()
        self.bytes_tx = 0
        self.bytes_rx = 0
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "wb")
            self._fh.write(LOG_MAGIC)

    def record(self, direction: bytes, data: bytes) -> None:
        if direction == b">":
            self.bytes_tx += len(data)
        else:
            self.bytes_rx += len(data)
        if self._fh:
            try:
                self._fh.write(_LOG_RECORD.pack(direction, time.perf_counter() - self._t0, len(data)))
                self._fh.write(data)
            except OSError as exc:
                self._failed(exc)

    def flush(self) -> None:
        if self._fh:
            try:
                self._fh.flush()
            except OSError as exc:
                self._failed(exc)

    def close(self) -> None:
        if self._fh:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError as exc:  # the last buffered records did not fit (a full disk)
                raise self._write_error(exc) from None

    def _failed(self, exc: OSError) -> None:
        """The log file cannot be written (a full disk, a file system gone read-only): stop
        logging and raise LinkError naming the file and the cause (the run ends as a link failure)."""
        fh, self._fh = self._fh, None
        try:
            fh.close()
        except OSError:
            pass
        raise self._write_error(exc) from None

    def _write_error(self, exc: OSError) -> "LinkError":
        return LinkError(f"{self.path}: cannot write the link log ({exc.strerror or exc}); it holds the records "
                         f"written before")


def read_link_log(path: Path | str) -> list[tuple[str, float, bytes]]:
    """Records of a link log as ``(direction, wall_time_s, data)``; direction ">" is H->F.

    A file that is not a link log, or a record that is cut short, claims more bytes than the
    file holds, or has a direction byte other than ">"/"<", raises LinkError naming the file,
    the byte offset of the record and the cause."""
    try:
        if Path(path).exists() and not Path(path).is_dir() and not Path(path).is_file():
            # a FIFO would block the reader for ever, /dev/zero fill its memory
            raise LinkError(f"{path}: not a regular file (a pipe, socket or device); allowed: an fsil link log")
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise LinkError(f"{path}: cannot read the link log: {exc.strerror or exc}") from None
    if not raw.startswith(LOG_MAGIC):
        raise LinkError(f"{path}: not an fsil link log (first bytes {printable(repr(raw[:8]))}, "
                        f"expected {LOG_MAGIC!r})")
    out, pos, size = [], len(LOG_MAGIC), len(raw)
    while pos < size:
        if pos + _LOG_RECORD.size > size:
            raise LinkError(f"{path}: record at byte offset {pos} is truncated: {size - pos} bytes left, "
                            f"a record header needs {_LOG_RECORD.size}")
        d, t, n = _LOG_RECORD.unpack_from(raw, pos)
        if d not in (b">", b"<"):
            raise LinkError(f"{path}: record at byte offset {pos} has direction byte 0x{d[0]:02x}; "
                            f"allowed: '>' (harness to flight code) or '<' (flight code to harness)")
        start = pos + _LOG_RECORD.size
        if start + n > size:
            raise LinkError(f"{path}: record at byte offset {pos} claims {n} bytes of data but only "
                            f"{size - start} remain in the file (truncated or corrupt log)")
        out.append((d.decode(), t, raw[start:start + n]))
        pos = start + n
    return out


def replay_link_log(path: Path | str) -> dict[str, list[p.Frame]]:
    """Decode both directions of a link log into frames: ``{"H>F": [...], "F>H": [...]}``.
    Bad frames in the log are counted and skipped, as on the live link."""
    decoders = {">": p.FrameDecoder(), "<": p.FrameDecoder()}
    frames: dict[str, list[p.Frame]] = {"H>F": [], "F>H": []}
    for d, _t, data in read_link_log(path):
        if data:
            frames["H>F" if d == ">" else "F>H"] += decoders[d].feed(data)
    return frames


# The link ------------------------------------------------------------------------------
_COMMAND = int(p.MsgType.COMMAND)  # a plain int: an IntEnum compare costs time per cycle
_SENSORS = int(p.MsgType.SENSORS)
#: what the in-process lockstep call reports (``InProcessLockstep.result``): good frames in the
#: answer, bytes sent, bytes received, TELEMETRY bytes held, then the COMMAND packet (its version,
#: type and CRC skipped: checked in C)
_LOCKSTEP_RESULT = struct.Struct("<4I2x" + p.COMMAND_PACKET.format[3:-1] + "2x")
_new_tuple = tuple.__new__
_clock = time.perf_counter
_encode_frame = p.encode_frame
# the COMMAND body in the lockstep call's result (after its 4 u32s and the COMMAND header)
_RESULT_BODY = 16 + p.HEADER.size
# the COMMAND body, its CRC skipped, then what the bound consumer returned (fsil_link_cycle's result)
_COMMAND_BODY_DONE = struct.Struct(p.Command.LAYOUT.format + "2xq")
_SENSORS_PACKET_LEN = p.SENSORS_PACKET.size  # what sensors_packet returns, header + body
_reading_values = p.reading_values
_encode_reading_frame = p.encode_reading_frame

def _describe(frame_type: int | None, seq: int | None, t_us: int | None, wall: float | None) -> str:
    if frame_type is None:
        return "none"
    name = p.MsgType(frame_type).name if frame_type in p.MESSAGE_CLASSES else f"0x{frame_type:02x}"
    ago = f", {time.perf_counter() - wall:.2f} s wall ago" if wall is not None else ""
    return f"{name} seq {seq} t={t_us / 1e6:.3f} s{ago}"


@dataclass
class LinkStats:
    """Per-run link statistics (harness side)."""

    exchanges: int = 0
    missed_cycles: int = 0
    late_commands: int = 0
    answers_known_lost: int = 0  # missed cycles not waited for: the link-fault layer dropped the question or answer
    round_trip_s: list[float] = field(default_factory=list)


class FlightLink:
    """Protocol v2 over one transport.

    ``cycle_timeout_s``: wall time to wait for one COMMAND before counting the cycle missed.
    ``stall_cycles``: consecutive missed cycles after which the flight code is declared stalled.
    """

    def __init__(self, transport: Transport, *, cycle_timeout_s: float = 1.0, stall_cycles: int = 25,
                 log: LinkLog | None = None, keep_round_trips: bool = True):
        self.transport = transport
        # whether it can tell that an answer cannot come (Transport.answer_lost; a transport written
        # to the duck-typed interface alone may not have it)
        self._knows_lost = hasattr(transport, "answer_lost")
        self.cycle_timeout_s = cycle_timeout_s
        self.stall_cycles = stall_cycles
        self._log = log or LinkLog()
        # TELEMETRY is not needed inside the loop: its frames are kept as they came and checked
        # in bulk after the run (or when asked for), then unpacked in one go (``p.unpack_telemetry``)
        tlm = frozenset({p.MsgType.TELEMETRY})
        self._decoder = p.FrameDecoder(raw_types=tlm, defer_types=tlm)
        self._stats = LinkStats()
        self.keep_round_trips = keep_round_trips
        self.hello: p.Hello | None = None
        self.params_refused: list[RefusedParam] = []  # optional parameters refused in the handshake
        # checked TELEMETRY packets (header + body + CRC), arrival order; an entry may hold several
        # back to back (what the in-process lockstep call hands over)
        self._telemetry: list[bytes] = []
        self._seq = 0
        self._pending: list[p.Frame] = []
        # bytes read after the last lockstep answer (its TELEMETRY, usually), not yet fed to the
        # decoder: fed before the next read, while the flight code works on the next SENSORS, or
        # when anything reads the link's counters (_take_tally)
        self._unfed = b""
        self._missed_in_a_row = 0
        self._first_missed: tuple[int, int] | None = None
        self._last_sent: tuple[int, int, int, float] | None = None
        self._last_received: tuple[int, int, int, float] | None = None
        # the in-process rig's whole round in one C call (transports/loopback.py); looked up on the
        # class, so a wrapper (link faults) that forwards attributes to it never bypasses itself
        factory = getattr(type(transport), "in_process_lockstep", None)
        self._lockstep = factory(transport) if factory is not None else None
        self._lockstep_clean = False  # the decoder holds nothing the lockstep call would skip past
        # and no byte log wants the cycle's bytes: exchange_reading's one C call does the cycle's
        # bookkeeping too (its counts wait in C until read: _take_tally)
        self._lean = False
        self._reading = None    # the IMU reading exchange_reading sends (bind_reading)
        self._reading_c = None  # and its address, for the lockstep call
        self._then = None       # the compiled consumer of the COMMAND (bind_reading)
        self._then_c = None     # the same, or NULL, for the C call
        #: what the bound consumer of the COMMAND (``bind_reading``) returned in the last
        #: ``exchange_reading``; -1: it was not called (a plain attribute: the loop reads it every cycle)
        self.then_done = -1

    # what the in-process rig's lean cycles (exchange_reading) count in C, taken in when read -------
    @property
    def stats(self) -> LinkStats:
        self._take_tally()
        return self._stats

    @property
    def log(self) -> LinkLog:
        self._take_tally()
        return self._log

    @property
    def decoder(self) -> p.FrameDecoder:
        self._take_tally()
        return self._decoder

    @property
    def last_sent(self) -> tuple[int, int, int, float | None] | None:
        """(message type, seq, t_us, wall clock of the send or None) of the last frame sent."""
        self._take_tally()
        return self._last_sent

    @property
    def last_received(self) -> tuple[int, int, int, float | None] | None:
        """(message type, seq, t_us, wall clock or None) of the last frame received."""
        self._take_tally()
        return self._last_received

    def _take_tally(self) -> None:
        """Add what the lean lockstep cycles counted in C (``fsil_link_cycle``) to the Python
        counters: exchanges, good frames, bytes each way, and the last frames each way (their
        wall clock is not kept: None). Bytes read after the last lockstep answer are decoded first
        (``_feed_unfed``)."""
        if self._unfed:
            self._feed_unfed()
        lockstep = self._lockstep
        if lockstep is None:
            return
        tally = lockstep.tally
        n = tally.cycles
        if not n:
            return
        self._stats.exchanges += n
        self._decoder.counters.frames_ok += tally.frames_ok
        self._log.bytes_tx += tally.bytes_tx
        self._log.bytes_rx += tally.bytes_rx
        self._last_sent = (_SENSORS, tally.sent_seq, tally.sent_t_us, None)
        self._last_received = (_COMMAND, tally.command_seq, tally.command_t_us, None)
        self._missed_in_a_row = 0
        tally.cycles = tally.frames_ok = tally.bytes_tx = tally.bytes_rx = 0

    def _feed_unfed(self) -> None:
        """Decode the bytes that came after the last lockstep answer (``FrameDecoder.take_answer``),
        keeping what their frames tell, as ``exchange`` keeps the frames that come with an answer."""
        data, self._unfed = self._unfed, b""
        for f in self._decoder.feed(data):
            self._last_received = (f.msg_type, f.seq, f.t_us, _clock())
            self._absorb(f)

    # low level -------------------------------------------------------------------------
    def send(self, msg: p.Message, t_us: int) -> int:
        seq = self._next_seq()
        self._write_frame(_encode_frame(msg, seq, t_us), msg.MSG_TYPE, seq, t_us)
        return seq

    def _next_seq(self) -> int:
        """The sequence number of a frame about to be written by Python (the next one after it)."""
        if self._lockstep_clean:  # a frame past the lockstep call: it stands aside (see _exchange_in_process)
            self._lockstep_pause()
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        return seq

    def _write_frame(self, data: bytes, msg_type: int, seq: int, t_us: int) -> None:
        """Write one encoded frame and keep its bytes and header (for ``describe_last_frames``)."""
        try:
            self.transport.write(data)
        finally:  # the bookkeeping after the write runs while the flight code reads the frame
            log = self._log
            if log._fh is None:  # no byte log: what record() would do, without the call
                log.bytes_tx += len(data)
            else:
                log.record(b">", data)
            self._last_sent = (msg_type, seq, t_us, _clock())

    def _receive(self, timeout_s: float) -> list[p.Frame]:
        if self._unfed:
            self._feed_unfed()
        data = self.transport.read(timeout_s)
        if not data:
            return []
        return self._accept(data)

    def _accept(self, data: bytes) -> list[p.Frame]:
        """Log and decode bytes read from the transport: the frames they complete."""
        log = self._log
        if log._fh is None:  # no byte log: what record() would do, without the call
            log.bytes_rx += len(data)
        else:
            log.record(b"<", data)
        frames = self._decoder.feed(data)
        if frames:
            f = frames[-1]
            if self._lockstep is not None:
                self._take_tally()  # (what lean cycles counted came before)
            self._last_received = (f.msg_type, f.seq, f.t_us, _clock())
        return frames

    def _frames_until(self, want, timeout_s: float, answer: bool = False, seq: int = -1,
                      first: list[p.Frame] | None = None, t0: float | None = None) -> p.Frame | None:
        """Pump frames into the pending list until ``want(frame)`` or the wall time-out; ``want``
        None: the COMMAND that answers SENSORS ``seq`` (the lockstep answer, tested inline: no
        closure per cycle).

        On the lockstep path (SENSORS written, COMMAND awaited: ``answer``) the clock is read once
        before the first wait and again only when a wait ends without the frame, and the wait
        ends as soon as the transport knows the answer cannot come (``Transport.answer_lost``: a
        link fault dropped or held back the SENSORS or its COMMAND). ``first``: frames already
        received, taken before any read; ``t0``: when the wait began (the time-out counts from
        it; default now)."""
        pending = self._pending
        if pending:
            for i, f in enumerate(pending):
                if (f.msg_type == _COMMAND and f.msg.sensors_seq == seq) if want is None else want(f):
                    del pending[:i + 1]
                    return f
        transport = self.transport
        synchronous = transport.synchronous
        deadline = (_clock() if t0 is None else t0) + timeout_s
        wait = 0.0 if synchronous else (0.05 if timeout_s > 0.05 else timeout_s if timeout_s > 0.0 else 0.0)
        answer = answer and self._knows_lost
        while True:
            if first is None:
                frames = self._receive(0.0 if answer and transport.answer_lost else wait)
            else:
                frames, first = first, None
            if frames:
                hit = None
                for f in frames:
                    if hit is None and ((f.msg_type == _COMMAND and f.msg.sensors_seq == seq) if want is None
                                        else want(f)):
                        hit = f
                        continue
                    self._absorb(f) if hit is None else pending.append(f)
                if hit is not None:
                    return hit
            if synchronous:
                return None
            if answer and transport.answer_lost:
                self._stats.answers_known_lost += 1
                return None
            remaining = deadline - _clock()
            if remaining <= 0:
                return None
            wait = min(remaining, 0.05)

    def _absorb(self, f: p.Frame) -> None:
        """A frame that was not the one awaited: keep what it tells."""
        # (no TELEMETRY here: the decoder defers every well-formed one, see settle())
        if f.msg_type == p.MsgType.HELLO:
            self.hello = f.msg
        elif f.msg_type == p.MsgType.COMMAND:
            self._stats.late_commands += 1

    def settle(self) -> None:
        """Check the deferred TELEMETRY frames now (their errors join the decoder's counters),
        after those the in-process lockstep call checked (they came first, see _lockstep_resume);
        what lean cycles counted in C joins the counters (so a LinkLog held elsewhere, the
        runner's, has every byte once the link is closed)."""
        if self._unfed:
            self._feed_unfed()
        if self._lockstep is not None:
            self._take_tally()
            self._keep_telemetry(self._lockstep.take_telemetry())
        self._keep_telemetry(self._decoder.take_deferred())

    def _keep_telemetry(self, packets: list[bytes]) -> None:
        if packets:
            self._telemetry += packets
            last = packets[-1]
            _v, typ, seq, t_us = p.HEADER.unpack_from(last, len(last) - p.TELEMETRY_PACKET_SIZE)
            r = self.last_received
            if r is None or t_us > r[2]:
                self._last_received = (typ, seq, t_us, None)

    def telemetry_records(self):
        """Every TELEMETRY received so far, in arrival order, as one numpy structured array
        (``seq``, ``t_us`` of the cycle it reports, then the Telemetry fields)."""
        self.settle()
        return p.unpack_telemetry(self._telemetry)

    @property
    def telemetry(self) -> p.Telemetry | None:
        """The latest TELEMETRY received, decoded."""
        self.settle()
        if not self._telemetry:
            return None
        last = self._telemetry[-1]
        return p.Telemetry.unpack(last[len(last) - p.TELEMETRY_PACKET_SIZE + p.HEADER.size:-2])

    def describe_last_frames(self) -> str:
        self.settle()
        s = self._last_sent
        r = self._last_received
        return (f"last frame sent: {_describe(*s) if s else 'none'}; "
                f"last frame received: {_describe(*r) if r else 'none'}")

    # handshake -------------------------------------------------------------------------
    def wait_hello(self, timeout_s: float = 5.0) -> p.Hello:
        """Wait for the flight code's HELLO banner. A HELLO request goes out at once (flight code
        that booted before we connected, or that already flew, answers it) and again every
        second; a boot banner that is still queued counts just the same."""
        deadline = time.perf_counter() + timeout_s
        next_ask = 0.0
        while True:
            now = time.perf_counter()
            if now >= next_ask:
                self.send(p.Hello(p.PROTOCOL_VERSION, 0, "fsil-harness"), 0)
                next_ask = now + 1.0
            f = self._frames_until(lambda fr: fr.msg_type == p.MsgType.HELLO,
                                   max(0.0, min(next_ask, deadline) - time.perf_counter()))
            foreign = self._decoder.foreign_version
            if f is None and foreign is not None:  # a CRC-valid frame of another version: say so now
                raise HandshakeError(f"{self.transport.describe()}: flight code speaks protocol {foreign[0]} "
                                     f"(a CRC-valid frame with version byte {foreign[0]}), harness speaks "
                                     f"protocol {p.PROTOCOL_VERSION}; rebuild the flight code with the "
                                     f"protocol {p.PROTOCOL_VERSION} codec (docs/protocol.md)")
            if f is not None:
                self.hello = f.msg
                if f.msg.protocol_version != p.PROTOCOL_VERSION:
                    raise HandshakeError(f"{self.transport.describe()}: flight code "
                                         f"{printable(f.msg.firmware_name)!r} speaks protocol "
                                         f"{f.msg.protocol_version}, harness speaks {p.PROTOCOL_VERSION}")
                return f.msg
            if time.perf_counter() >= deadline or self.transport.synchronous:
                last = self._decoder.errors[-1][1] if self._decoder.errors else "none"
                raise HandshakeError(
                    f"{self.transport.describe()}: no HELLO from the flight code within {timeout_s:.1f} s "
                    f"({self._log.bytes_rx} bytes received, {self._decoder.counters.errors} bad frames, "
                    f"last error: {last})")

    def configure(self, values: list[tuple[ParamSpec, float]], timeout_s: float = 2.0, *,
                  required: frozenset[str] | set[str] = frozenset()) -> list[p.ConfigAck]:
        """The handshake after HELLO: every parameter in its own CONFIG (flags 0), then COMMIT
        (param_id 0), which must be answered COMMITTED.

        A core parameter (``harness.params.CORE_PARAMS``) or one named in ``required`` must be
        ACCEPTED, else HandshakeError naming it and the status. Any other refused parameter
        (UNKNOWN_ID, OUT_OF_RANGE) is optional: not applied, recorded in ``params_refused``, and
        the handshake goes on. An answer for another id, or a status no CONFIG may get, is a
        HandshakeError too."""
        acks = []
        for spec, value in values:
            self.send(p.Config(spec.id, float(value), 0), 0)
            ack = self._await_ack(f"{spec.name} (id {spec.id})", timeout_s)
            if ack.param_id != spec.id:
                raise HandshakeError(f"handshake failed: CONFIG {spec.name} (id {spec.id}) answered by a CONFIG_ACK "
                                     f"for id {ack.param_id} (status {p.status_name(ack.status)})")
            if ack.status != p.ConfigStatus.ACCEPTED:
                why = ("a core parameter every flight code must accept" if is_core(spec) else
                       "required by the scenario (required_params)" if spec.name in required else None)
                if why is None and ack.status in (p.ConfigStatus.UNKNOWN_ID, p.ConfigStatus.OUT_OF_RANGE):
                    self.params_refused.append(RefusedParam(spec.name, spec.id, float(value), spec.unit,
                                                            int(ack.status), float(ack.value)))
                    acks.append(ack)
                    continue
                raise HandshakeError(f"flight code refused parameter {spec.name} = {value} {spec.unit} "
                                     f"(id {spec.id}), {why or 'with a status no CONFIG may get'}: "
                                     f"status {p.status_name(ack.status)}")
            acks.append(ack)
        acks.append(self.commit(timeout_s))
        return acks

    def _await_ack(self, what: str, timeout_s: float) -> p.ConfigAck:
        f = self._frames_until(lambda fr: fr.msg_type == p.MsgType.CONFIG_ACK, timeout_s)
        if f is None:
            raise HandshakeError(f"no CONFIG_ACK for {what} within {timeout_s:.1f} s; {self.describe_last_frames()}")
        return f.msg

    def commit(self, timeout_s: float = 2.0) -> p.ConfigAck:
        """Send COMMIT (CONFIG param_id 0, flags COMMIT, value 0.0); anything but COMMITTED is a HandshakeError."""
        self.send(p.Config(p.COMMIT_PARAM_ID, 0.0, p.CONFIG_COMMIT), 0)
        ack = self._await_ack("COMMIT", timeout_s)
        if ack.param_id != p.COMMIT_PARAM_ID or ack.status != p.ConfigStatus.COMMITTED:
            detail = ""
            if ack.status == p.ConfigStatus.COMMIT_REFUSED:
                detail = f", first offending parameter id {ack.value:g}" if ack.value else ", no parameter named"
            raise HandshakeError(f"handshake failed: COMMIT answered with status {p.status_name(ack.status)} "
                                 f"for param_id {ack.param_id} (expected COMMITTED for param_id 0){detail}")
        return ack

    # lockstep ----------------------------------------------------------------------------
    def bind_reading(self, reading, then: tuple | None = None) -> None:
        """Where ``exchange_reading`` takes the IMU's values from: a C-contiguous float64 array
        whose first entries are ``p.SENSORS_READING_FIELDS`` (the IMU model's reading, updated in
        place every cycle; it must outlive the link's use of it).

        ``then``: ``(address, block, history, dt_s, n)`` of a compiled consumer of the COMMAND
        (``harness.cycle.Cycle.c_entry``, a ``fsil_cycle_fn``). On the in-process rig an
        ``exchange_reading`` given a row hands the regular COMMAND to it in the same C call and
        sets ``then_done`` to what it returned; elsewhere (and for any other answer) ``then_done``
        stays -1 and the caller hands the COMMAND on itself."""
        self._reading = reading
        lockstep = self._lockstep
        self._reading_c = lockstep.pointer_to(reading) if lockstep is not None else None
        self._then = lockstep.then(*then) if lockstep is not None and then is not None else None
        self._then_c = self._then if self._then is not None else (lockstep.null if lockstep is not None else None)
        self.then_done = -1

    def exchange_reading(self, lrf_range_m: float, lrf_sample_t_us: int, lrf_flags: int,
                         t_us: int, row: int = -1) -> p.Command | None:
        """``exchange`` of the SENSORS that the bound IMU reading (``bind_reading``) and these LRF
        fields make (``lrf_flags``: the LRF bits; IMU_VALID comes from the reading). On the
        in-process rig the packet is packed in C from the reading, the same bytes
        ``p.sensors_packet`` packs (tests/test_loopback_link.py); elsewhere it is built here.
        ``row`` >= 0: the regular COMMAND goes on to the bound consumer (``bind_reading``).

        The in-process rig with no byte log: the cycle, its checks and its bookkeeping are one C
        call (``fsil_link_cycle``) while the answers are regular; its counts join the link's when
        they are read (``stats``, ``log``, ``decoder``, ``last_sent``...)."""
        if self._lean and not self._pending:
            lockstep = self._lockstep
            seq = self._seq
            self._seq = (seq + 1) & 0xFFFF
            keep = self.keep_round_trips
            t0 = _clock() if keep else 0.0
            regular = lockstep.call_cycle(lockstep.ctx, seq, t_us, self._reading_c, lrf_range_m, lrf_sample_t_us,
                                          lrf_flags, self._then_c, row)
            if regular > 0:
                throttle, tx, ty, tz, sensors_seq, mode, flags, self.then_done = _COMMAND_BODY_DONE.unpack_from(
                    lockstep.result, _RESULT_BODY)
                if regular == 2:  # the TELEMETRY held in C nears its room
                    self._keep_telemetry(lockstep.take_telemetry())
                if keep:
                    self._stats.round_trip_s.append(_clock() - t0)
                return _new_tuple(p.Command, (throttle, (tx, ty, tz), sensors_seq, mode, flags))
            self.then_done = -1  # (C did not hand this cycle's COMMAND on)
            if regular == -3:  # a value that does not fit its field (nothing was fed): struct.pack names it
                self._seq = seq
                return self._exchange_in_process(None, t_us, (lrf_range_m, lrf_sample_t_us, lrf_flags), row)
            return self._lockstep_irregular(regular, seq, t_us, t0)
        self.then_done = -1
        if self.transport.synchronous and not self._pending:
            return self._exchange_in_process(None, t_us, (lrf_range_m, lrf_sample_t_us, lrf_flags), row)
        seq = self._next_seq()
        return self._exchange_frame(_encode_reading_frame(self._reading, lrf_range_m, lrf_sample_t_us, lrf_flags,
                                                          seq, t_us), seq, t_us)

    def _reading_sensors(self, lrf_range_m: float, lrf_sample_t_us: int, lrf_flags: int) -> p.Sensors:
        """The SENSORS of the bound reading and these LRF fields (see exchange_reading)."""
        dvx, dvy, dvz, dthx, dthy, dthz, dt_s, valid, avx, avy, avz, atx, aty, atz = _reading_values(self._reading)
        return _new_tuple(p.Sensors, ((dvx, dvy, dvz), (dthx, dthy, dthz), round(dt_s * 1e6), lrf_range_m,
                                      lrf_sample_t_us, lrf_flags | (p.SENSORS_IMU_VALID if valid != 0.0 else 0),
                                      (avx, avy, avz), (atx, aty, atz)))

    def exchange(self, sensors: p.Sensors, t_us: int) -> p.Command | None:
        """Send SENSORS and wait for the COMMAND that answers it (None: this cycle was missed).

        Raises FlightCodeStalled after ``stall_cycles`` missed cycles in a row.
        """
        if self.transport.synchronous and not self._pending:
            return self._exchange_in_process(sensors, t_us, None, -1)
        seq = self._next_seq()
        return self._exchange_frame(_encode_frame(sensors, seq, t_us), seq, t_us)

    def _exchange_frame(self, data: bytes, seq: int, t_us: int) -> p.Command | None:
        """``exchange`` of an encoded SENSORS frame ``data`` (its ``seq`` and ``t_us``) over a
        transport that is not in-process."""
        t0 = _clock()
        self._write_frame(data, _SENSORS, seq, t_us)
        if self._unfed:  # the bytes that came after the last answer, decoded while the flight code works
            self._feed_unfed()
        first = None
        transport = self.transport
        if not self._pending and not (self._knows_lost and transport.answer_lost):
            # the usual lockstep answer: one read, the COMMAND decoded first and the rest (its
            # TELEMETRY) left for the next cycle's wait; anything else takes the general path
            wait = self.cycle_timeout_s
            data = transport.read(wait if wait < 0.05 else 0.05)  # (the general path's first wait)
            if data:
                hit = self._decoder.take_answer(data, seq)
                if hit is None:
                    first = self._accept(data)
                else:
                    if self._lockstep is not None:  # (what lean cycles counted came before)
                        self._take_tally()
                    command, rx_seq, rx_t_us, self._unfed = hit
                    log = self._log
                    if log._fh is None:  # no byte log: what record() would do, without the call
                        log.bytes_rx += len(data)
                    else:
                        log.record(b"<", data)
                    self._answered(rx_seq, rx_t_us, t0)
                    return command
        f = self._frames_until(None, self.cycle_timeout_s, True, seq, first, t0)
        if f is not None:
            stats = self._stats
            if self.keep_round_trips:
                stats.round_trip_s.append(_clock() - t0)
            stats.exchanges += 1
            self._missed_in_a_row = 0
            # frames that came with it (TELEMETRY is deferred in the decoder). No read for more
            # here: the flight program writes its COMMAND and TELEMETRY together, and whatever
            # comes later is read with the next cycle's answer (or by drain() at the end)
            pending = self._pending
            if pending:
                for g in pending:
                    self._absorb(g)
                pending.clear()
            return f.msg
        return self._missed(seq, t_us)

    def _answered(self, rx_seq: int, rx_t_us: int, t0: float) -> None:
        """Keep what the awaited COMMAND (its ``seq`` and ``t_us``) tells: when it came, the round
        trip since ``t0`` (the SENSORS write), one more exchange, no cycle missed in a row."""
        now = _clock()
        self._last_received = (_COMMAND, rx_seq, rx_t_us, now)
        stats = self._stats
        if self.keep_round_trips:
            stats.round_trip_s.append(now - t0)
        stats.exchanges += 1
        self._missed_in_a_row = 0

    def _missed(self, seq: int, t_us: int) -> None:
        self._stats.missed_cycles += 1
        if self._missed_in_a_row == 0:
            self._first_missed = (seq, t_us)
        self._missed_in_a_row += 1
        if self._missed_in_a_row >= self.stall_cycles:
            first_seq, first_t = self._first_missed
            last_frames = self.describe_last_frames()
            bad = self._decoder.counters.errors  # an answer that came but was refused: say why
            raise FlightCodeStalled(
                f"flight code stalled on {self.transport.describe()}: no COMMAND for {self._missed_in_a_row} "
                f"consecutive cycles since SENSORS seq {first_seq} at t={first_t / 1e6:.3f} s "
                f"(limit {self.stall_cycles} cycles, {self.cycle_timeout_s:.2f} s wall each); {last_frames}"
                + (f"; {bad} bad frame{'s' if bad != 1 else ''} from the flight code in this run, the last: "
                   f"{self._decoder.errors[-1][1]}" if bad and self._decoder.errors else "")
                + (f"; {self._stats.late_commands} COMMAND{'s' if self._stats.late_commands != 1 else ''} in this run "
                   f"answered a SENSORS other than the one awaited" if self._stats.late_commands else ""))
        return None

    def _exchange_in_process(self, sensors: p.Sensors | None, t_us: int, lrf: tuple | None,
                             row: int) -> p.Command | None:
        """exchange() for an in-process flight code: its whole answer is there after the write.

        On the loopback rig the round is one C call (``InProcessLockstep``: the frame is made with
        the C codec and fed to the flight code's own byte input, its answer drained and checked)
        whenever the decoder holds no partial frame. The regular answer (good frames only, the
        COMMAND to this SENSORS and TELEMETRY) is taken from it here; any other answer goes to the
        decoder as bytes, exactly as on the way without it, which counts, names and handles it.
        ``sensors`` None: the SENSORS of the bound reading and the LRF fields ``lrf`` (see
        exchange_reading), packed in C when the lockstep call takes the cycle.
        """
        t0 = time.perf_counter()
        lockstep = self._lockstep
        if lockstep is not None and (self._lockstep_clean or self._lockstep_resume()):
            seq = self._seq
            self._seq = (seq + 1) & 0xFFFF
            if sensors is None:
                regular = lockstep.call_reading_then(lockstep.ctx, seq, t_us, self._reading_c, *lrf, self._then_c, row)
                if self._then is not None:
                    self.then_done = self._then.done
                if regular == -3:  # a value that does not fit its field: struct.pack names it
                    sensors = self._reading_sensors(*lrf)
            if sensors is not None:
                regular = lockstep.call(lockstep.ctx, p.sensors_packet(sensors, seq, t_us), _SENSORS_PACKET_LEN)
            if regular > 0:
                (frames, n_tx, n_rx, n_tlm, c_seq, c_t_us, throttle, tx, ty, tz, sensors_seq, mode,
                 flags) = _LOCKSTEP_RESULT.unpack_from(lockstep.result)
                log = self._log
                if log._fh is None:
                    log.bytes_tx += n_tx
                    log.bytes_rx += n_rx
                else:
                    log.record(b">", lockstep.tx_bytes())
                    log.record(b"<", lockstep.rx_bytes())
                self._decoder.counters.frames_ok += frames
                if n_tlm > lockstep.telemetry_high_water:
                    self._keep_telemetry(lockstep.take_telemetry())
                self._last_sent = (_SENSORS, seq, t_us, t0)
                self._answered(c_seq, c_t_us, t0)
                return _new_tuple(p.Command, (throttle, (tx, ty, tz), sensors_seq, mode, flags))
            return self._lockstep_irregular(regular, seq, t_us, t0)
        seq = self.send(sensors if sensors is not None else self._reading_sensors(*lrf), t_us)
        return self._answer_in_process(seq, t_us, t0)

    def _lockstep_irregular(self, regular: int, seq: int, t_us: int, t0: float) -> p.Command | None:
        """After a lockstep call that did not take the cycle (``regular`` 0: an answer other than
        the regular one, which the decoder now gets as bytes; < 0: nothing was fed)."""
        lockstep = self._lockstep
        if regular < 0:
            raise lockstep.refused(regular)
        self._lockstep_pause()
        self._log.record(b">", lockstep.tx_bytes())
        self._last_sent = (_SENSORS, seq, t_us, time.perf_counter())
        lockstep.hand_back()  # the answer goes to the decoder
        return self._answer_in_process(seq, t_us, t0)

    def _answer_in_process(self, seq: int, t_us: int, t0: float) -> p.Command | None:
        """The in-process flight code's answer to SENSORS ``seq``, through the decoder."""
        command = None
        for f in self._receive(0.0):
            if command is None and f.msg_type == _COMMAND and f.msg.sensors_seq == seq:
                command = f.msg
            else:
                self._absorb(f)
        if command is None:
            return self._missed(seq, t_us)
        if self.keep_round_trips:
            self._stats.round_trip_s.append(time.perf_counter() - t0)
        self._stats.exchanges += 1
        self._missed_in_a_row = 0
        return command

    def _lockstep_resume(self) -> bool:
        """Let the lockstep call take cycles again, if the decoder holds no partial frame (the
        call would skip past it); TELEMETRY the decoder set aside is settled first, so that the
        packets stay in arrival order."""
        if self._unfed:
            self._feed_unfed()
        if not self._decoder.idle:
            return False
        self.settle()
        self._lockstep_clean = True
        self._lean = self._log._fh is None
        return True

    def _lockstep_pause(self) -> None:
        """Bytes are about to reach the decoder: what the lockstep call counted and its TELEMETRY
        are kept first."""
        self._lockstep_clean = self._lean = False
        self._take_tally()
        self._keep_telemetry(self._lockstep.take_telemetry())

    def drain(self, timeout_s: float = 0.05) -> None:
        """Collect frames still in flight (the last TELEMETRY) before the link is closed."""
        for f in self._pending:
            self._absorb(f)
        self._pending.clear()
        deadline = time.perf_counter() + (0.0 if self.transport.synchronous else timeout_s)
        while True:  # until the bytes stop (a read that waits in vain) or the time-out: a frame
            # may arrive in several reads (a slow UART), so a read that completes none is no end
            if self._unfed:
                self._feed_unfed()
            left = deadline - time.perf_counter()
            data = self.transport.read(left if left > 0.0 else 0.0)
            if data:
                for f in self._accept(data):
                    self._absorb(f)
            if not data or left <= 0.0:
                self.settle()
                return

    def close(self) -> None:
        self.settle()
        self._log.close()
