"""The harness end of the lockstep cycle in C (harness/targets/loopback_link.[ch]) on the loopback rig.

(a) its codec (the project's C codec under fsil_ names) against the Python codec: the shared
vectors, random SENSORS framed byte-identically, random and corrupted byte streams classified
frame by frame as the Python decoder does; (b) FlightLink with it against FlightLink without it
(a LoopbackTransport subclass that overrides ``write`` takes the generic path): the same
commands, counters, error messages, late and missed cycles, stall, TELEMETRY in arrival order
and link log, with unusual bytes slipped into the flight code's output; whole flights
bit-identical; (c) wrappers (link faults) never bypassed; the harness-side object exports
fsil_ names only.
"""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import protocol as p
from harness.link import FlightCodeStalled, FlightLink, LinkLog, read_link_log
from harness.params import load_param_table
from harness.runner import COLUMNS, fly
from harness.scenario_files import load_scenario
from harness.targets import load_flight_code
from harness.targets.build import FLIGHT_CFLAGS, run_compiler
from harness.targets.loopback import LINK_C, loopback_compiler
from harness.targets.sources import FIRMWARE_DIR
from harness.transports.loopback import LoopbackTransport

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "tests" / "vectors" / "protocol_v2.json").read_text())
KIND = {0: "ok", 2: "framing_errors", 3: "crc_errors", 4: "length_errors", 5: "unknown_msgs"}


@pytest.fixture(scope="module")
def fc():
    return load_flight_code()


def c_frame(fc, packet: bytes) -> bytes:
    ffi, lib = fc
    out = ffi.new("uint8_t[]", 256)
    n = lib.fsil_link_frame(packet, len(packet), out, 256)
    return bytes(ffi.buffer(out, n))


def c_check(fc, data: bytes) -> list[tuple[str, int]]:
    """(kind, message type or 0) of every non-empty delimited chunk, as the lockstep call checks it."""
    ffi, lib = fc
    cap = len(data) + 1
    kinds, types = ffi.new("uint8_t[]", cap), ffi.new("uint8_t[]", cap)
    n = lib.fsil_link_check_stream(data, len(data), kinds, types, cap)
    return [(KIND[kinds[i]], types[i]) for i in range(n)]


def py_check(data: bytes) -> tuple[list[int], list[str], dict]:
    """The Python decoder over the same bytes (up to the last delimiter): good frame types, error
    kinds in order, counters."""
    dec = p.FrameDecoder(max_error_log=10**6)
    frames = dec.feed(data[:data.rfind(0) + 1]) if 0 in data else []
    return [f.msg_type for f in frames], [k for k, _ in dec.errors], dec.counters.as_dict()


def assert_same_checks(fc, data: bytes) -> None:
    got = c_check(fc, data)
    types, errors, counters = py_check(data)
    assert [t for k, t in got if k == "ok"] == types
    assert [k for k, _ in got if k != "ok"] == errors
    assert sum(k == "ok" for k, _ in got) == counters["frames_ok"]


# ------------------------------------------------------------------ (a) codec against codec
@pytest.mark.parametrize("vec", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector_framed_and_checked_by_the_harness_c_codec(fc, vec):
    packet, frame = bytes.fromhex(vec["packet_hex"]), bytes.fromhex(vec["frame_hex"])
    assert fc[1].fsil_link_crc16(packet[:-2], len(packet) - 2) == int.from_bytes(packet[-2:], "little")
    assert c_frame(fc, packet[:-2]) == frame
    assert c_check(fc, frame) == [("ok", vec["msg_type"])]


@pytest.mark.parametrize("stream", VECTORS["streams"], ids=lambda s: s["name"])
def test_vector_streams_checked_as_specified(fc, stream):
    data = bytes.fromhex(stream["stream_hex"])
    got = c_check(fc, data)
    names = {v["name"]: v["msg_type"] for v in VECTORS["vectors"]}
    assert [t for k, t in got if k == "ok"] == [names[n] for n in stream["expect_frames"]]
    for kind, count in stream["expect_counters"].items():
        assert sum(k == kind for k, _ in got) == count, kind
    assert_same_checks(fc, data)


f32 = st.floats(width=32)
f64 = st.floats()


@st.composite
def sensors(draw):
    return p.Sensors(tuple(draw(f32) for _ in range(3)), tuple(draw(f32) for _ in range(3)),
                     draw(st.integers(0, 2**32 - 1)), draw(f32), draw(st.integers(0, 2**64 - 1)),
                     draw(st.integers(0, 255)), tuple(draw(f64) for _ in range(3)), tuple(draw(f64) for _ in range(3)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sensors(), st.integers(0, 2**16 - 1), st.integers(0, 2**64 - 1))
def test_random_sensors_framed_byte_identically_by_both_codecs(fc, msg, seq, t_us):
    frame = c_frame(fc, p.sensors_packet(msg, seq, t_us))
    assert frame == p.encode_frame(msg, seq, t_us)
    assert c_check(fc, frame) == [("ok", p.MsgType.SENSORS)]


def c_pack_reading(fc, seq, t_us, reading, lrf_range, lrf_t_us, lrf_flags) -> bytes | None:
    ffi, lib = fc
    out = ffi.new("uint8_t[]", int(lib.FSIL_LINK_SENSORS_PACKET))
    n = lib.fsil_link_pack_reading(out, seq, t_us, ffi.from_buffer("double[]", np.asarray(reading, dtype=float)),
                                   lrf_range, lrf_t_us, lrf_flags)
    return bytes(ffi.buffer(out, n)) if n else None


def test_reading_fields_are_where_the_imu_model_writes_them():
    from sensor_models.imu import READING_FIELDS

    assert READING_FIELDS[:len(p.SENSORS_READING_FIELDS)] == p.SENSORS_READING_FIELDS


#: doubles a reading may hold: any (NaN, infinities, beyond float32's range, subnormals), with
#: the values that round exactly half-way between float32s or between whole microseconds
any_double = st.one_of(f64, st.sampled_from([3.4028235677973366e38, 3.4028235677973362e38, 3.5e38, -3.5e38,
                                              1.0000000596046448, 1.401298464324817e-45 / 2, -0.0,
                                              2.5e-6, 3.5e-6, 0.0200005, 4294.9672955, 4294.9672965]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(any_double, min_size=14, max_size=14), any_double, st.integers(0, 2**64 - 1), st.integers(0, 7),
       st.integers(0, 2**16 - 1), st.integers(0, 2**64 - 1))
def test_reading_packed_in_c_as_python_packs_it(fc, reading, lrf_range, lrf_t_us, lrf_flags, seq, t_us):
    """fsil_link_pack_reading (the in-process rig's SENSORS from the IMU reading) gives the bytes
    p.sensors_packet gives for the Sensors FlightLink builds from the same reading on every
    other rig; where Python refuses a value (beyond float32, an interval that is no u32 of us),
    C refuses it too, and the harness then packs in Python, which names it."""
    link = FlightLink.__new__(FlightLink)
    link._reading = np.asarray(reading, dtype=float)
    try:
        want = p.sensors_packet(link._reading_sensors(lrf_range, lrf_t_us, lrf_flags), seq, t_us)
    except (OverflowError, ValueError, struct.error):
        want = None
    assert c_pack_reading(fc, seq, t_us, reading, lrf_range, lrf_t_us, lrf_flags) == want


@st.composite
def messages(draw):
    kind = draw(st.sampled_from(["command", "telemetry", "sensors", "config", "hello"]))
    if kind == "command":
        return p.Command(draw(f32), tuple(draw(f32) for _ in range(3)), draw(st.integers(0, 2**16 - 1)),
                         draw(st.integers(0, 255)), draw(st.integers(0, 255)))
    if kind == "telemetry":
        u16 = st.integers(0, 2**16 - 1)
        return p.Telemetry(tuple(draw(f64) for _ in range(3)), tuple(draw(f32) for _ in range(3)),
                           tuple(draw(f32) for _ in range(4)), draw(f32), draw(f32), draw(st.integers(0, 255)),
                           draw(st.integers(0, 255)), *[draw(u16) for _ in range(9)], draw(st.integers(0, 2**32 - 1)))
    if kind == "sensors":
        return draw(sensors())
    if kind == "config":
        return p.Config(draw(st.integers(0, 2**16 - 1)), draw(f64), draw(st.integers(0, 2**16 - 1)))
    return p.Hello(draw(st.integers(0, 2**16 - 1)), draw(st.integers(0, 2**32 - 1)), "fw")


@st.composite
def corrupted_streams(draw):
    """Good frames of every type, some corrupted (bit flip, cut, garbage inserted, delimiter dropped
    or added, CRC-valid frame of another version, unknown type, wrong length), some bare garbage."""
    out = []
    for _ in range(draw(st.integers(1, 8))):
        what = draw(st.sampled_from(["good", "flip", "cut", "insert", "nodelim", "zero", "garbage",
                                     "version", "unknown", "length"]))
        if what == "garbage":
            out.append(draw(st.binary(min_size=1, max_size=300)))
            continue
        msg, seq, t_us = draw(messages()), draw(st.integers(0, 2**16 - 1)), draw(st.integers(0, 2**64 - 1))
        packet = bytearray(p.encode_packet(msg, seq, t_us)[:-2])
        if what in ("version", "unknown", "length"):
            if what == "version":
                packet[0] = draw(st.integers(0, 255).filter(lambda v: v != p.PROTOCOL_VERSION))
            elif what == "unknown":
                packet[1] = draw(st.integers(0, 255).filter(lambda v: v not in p.BODY_SIZES))
            else:
                packet += draw(st.binary(min_size=1, max_size=8))
            packet += p.crc16(bytes(packet)).to_bytes(2, "little")
            out.append(p.cobs_encode(bytes(packet)) + b"\x00")
            continue
        f = bytearray(p.encode_frame(msg, seq, t_us))
        i = draw(st.integers(0, len(f) - 1))
        if what == "flip":
            f[i] ^= 1 << draw(st.integers(0, 7))
        elif what == "cut":
            f = f[:i] + b"\x00"
        elif what == "insert":
            f = f[:i] + draw(st.binary(min_size=1, max_size=300)) + f[i:]
        elif what == "nodelim":
            f = f[:-1]
        elif what == "zero":
            f = f[:i] + b"\x00" + f[i:]
        out.append(bytes(f))
    return b"".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corrupted_streams())
def test_corrupted_streams_checked_frame_by_frame_as_the_python_decoder_does(fc, data):
    assert_same_checks(fc, data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=1500))
def test_random_bytes_checked_frame_by_frame_as_the_python_decoder_does(fc, data):
    assert_same_checks(fc, data)


def test_harness_object_exports_fsil_names_only(tmp_path):
    """The project codec is compiled into the harness object under fsil_ names: a flight code's own
    fsw_* codec (a team's, or a broken one) can never be the one the harness decodes with."""
    if not shutil.which("nm"):
        pytest.skip("nm (binutils) not installed")
    obj = tmp_path / "link.o"
    run_compiler(loopback_compiler() + list(FLIGHT_CFLAGS) + ["-fPIC", "-I", str(FIRMWARE_DIR), "-c", str(LINK_C),
                                                              "-o", str(obj)], "compiling loopback_link.c")
    names = subprocess.run(["nm", "-g", "--defined-only", str(obj)], capture_output=True, text=True,
                           check=True).stdout.split()[2::3]
    assert "fsil_link_exchange" in names and "fsil_codec_crc16" in names
    assert [n for n in names if not n.startswith("fsil_")] == []


# ------------------------------------------------------------------ (b) FlightLink with and without it
class GenericPath(LoopbackTransport):
    """The loopback rig with ``write`` overridden (to itself): FlightLink must take the generic path."""

    def write(self, data: bytes) -> None:
        super().write(data)


def _sensors(i: int) -> p.Sensors:
    return p.Sensors((0.0, 0.0, 0.03 + 1e-4 * i), (1e-5 * i, 0.0, 0.0), 20_000, 1500.0 - i, 20_000 * i,
                     p.SENSORS_IMU_VALID | p.SENSORS_LRF_VALID | p.SENSORS_LRF_NEW,
                     (0.0, 0.0, 0.03 * i), (1e-5 * i, 0.0, 0.0))


def _slip(transport: LoopbackTransport, data: bytes) -> None:
    """Bytes in the flight code's transmit buffer, ahead of whatever it answers next (as if it
    had sent them): capped, like the flight code's own output, at its buffer's size."""
    lb, ffi = transport._lb, transport.ffi
    room = len(lb.tx_buf) - lb.tx_len
    data = data[:room]
    ffi.memmove(lb.tx_buf + lb.tx_len, data, len(data))
    lb.tx_len += len(data)


def _link(transport, log_path=None, stall_cycles=25) -> FlightLink:
    link = FlightLink(transport, log=LinkLog(log_path), stall_cycles=stall_cycles)
    link.wait_hello(1.0)
    table = load_param_table()
    link.configure([(table["MASS0"], 700.0)])
    return link


TLM_MARK = p.encode_frame(p.Telemetry((1.0, 2.0, 3.0), (0.0,) * 3, (1.0, 0.0, 0.0, 0.0), 5.0, 0.0, 0, 0,
                                      *[0] * 9, 0), 999, 77)
#: what is slipped into the flight code's output before which cycle (all in one run)
SLIPS = {
    3: b"\x07garbage\x00",                                                      # framing error
    5: p.encode_frame(p.Command(0.5, (0.0, 0.0, 0.0), 1, 1, 1), 3, 0),         # a late COMMAND
    7: p.encode_frame(p.Hello(p.PROTOCOL_VERSION, 0x42, "again"), 9, 0),       # a HELLO mid-run
    9: bytes([*TLM_MARK[:-3], TLM_MARK[-3] ^ 0x40, 0]),                          # TELEMETRY with a bad CRC
    11: TLM_MARK,                                                               # a good TELEMETRY, out of turn
    13: b"\x05\x01\x02",                                                        # a frame cut short: COMMAND lost
    15: b"\x01" * 300 + b"\x00",                                                # an oversize run
    17: b"\x00\x00",                                                            # flushes: nothing counted
    19: b"\x11" * 5000,                                                         # fills the TX buffer: answer cut
    23: p.encode_frame(p.Command(0.5, (0.0, 0.0, 0.0), 1, 1, 1), 30, 0),       # a COMMAND for a future seq
}


def _reading(s: p.Sensors) -> np.ndarray:
    """An IMU reading (p.SENSORS_READING_FIELDS) holding what ``s`` reports of the IMU."""
    return np.array([*s.imu_dv_body, *s.imu_dtheta_body, s.imu_dt_us / 1e6, float(bool(s.flags & p.SENSORS_IMU_VALID)),
                     *s.imu_dv_accum_body, *s.imu_dtheta_accum_body])


def _fly_link(transport_cls, log_path, cycles=40, via_reading=False):
    """``via_reading``: every SENSORS through exchange_reading (C-packed on the lockstep path)."""
    tr = transport_cls()
    link = _link(tr, log_path)
    reading = np.zeros(len(p.SENSORS_READING_FIELDS))
    link.bind_reading(reading)
    commands = []
    for i in range(1, cycles):
        if i in SLIPS:
            _slip(tr, SLIPS[i])
        s = _sensors(i)
        if via_reading:
            reading[:] = _reading(s)
            commands.append(link.exchange_reading(s.lrf_range, s.lrf_sample_t_us,
                                                  s.flags & ~p.SENSORS_IMU_VALID, 20_000 * i))
        else:
            commands.append(link.exchange(s, 20_000 * i))
    link.drain()
    link.close()
    return link, commands


def _no_wall(t):
    return t[:3] if t else t


@pytest.mark.parametrize("via_reading, logged", [(False, True), (True, True), (True, False)],
                         ids=["sensors", "reading", "reading-unlogged"])
def test_lockstep_takes_regular_cycles_and_hands_the_rest_to_the_decoder_unchanged(tmp_path, via_reading, logged):
    """``reading-unlogged``: no byte log, so exchange_reading's lean C call (fsil_link_cycle) takes
    the regular cycles and counts them in C; the counts read back are the generic path's."""
    fast, fast_cmds = _fly_link(LoopbackTransport, tmp_path / "fast.log" if logged else None, via_reading=via_reading)
    slow, slow_cmds = _fly_link(GenericPath, tmp_path / "slow.log")
    assert fast._lockstep is not None and slow._lockstep is None
    assert fast_cmds == slow_cmds
    assert None in fast_cmds  # the cut-short frames cost COMMANDs
    assert fast.stats.exchanges == slow.stats.exchanges and fast.stats.missed_cycles == slow.stats.missed_cycles
    assert fast.stats.late_commands == slow.stats.late_commands >= 1
    assert fast.decoder.counters == slow.decoder.counters
    # the same messages; a TELEMETRY's may come earlier in the list (the decoder's set-aside
    # TELEMETRY is checked when the C call takes over again, to keep the packets in arrival order)
    assert sorted(fast.decoder.errors) == sorted(slow.decoder.errors)
    c = fast.decoder.counters
    assert c.framing_errors >= 3 and c.crc_errors == 1
    assert fast.hello == slow.hello and fast.hello.firmware_name == "again"
    # same packets, same (arrival) order (the C call hands its packets over back to back, in one bytes object)
    assert b"".join(fast._telemetry) == b"".join(slow._telemetry)
    assert sum(rec.tobytes() == p.cobs_decode(TLM_MARK[:-1]) for rec in fast.telemetry_records()) == 1
    assert _no_wall(fast.last_sent) == _no_wall(slow.last_sent)
    assert _no_wall(fast.last_received) == _no_wall(slow.last_received)
    assert (fast.log.bytes_tx, fast.log.bytes_rx) == (slow.log.bytes_tx, slow.log.bytes_rx)
    if logged:
        fast_log = [(d, b) for d, _t, b in read_link_log(tmp_path / "fast.log")]
        slow_log = [(d, b) for d, _t, b in read_link_log(tmp_path / "slow.log")]
        assert fast_log == slow_log
    else:
        assert fast._lockstep.tally.cycles == 0  # all taken into the link's own counters
    np.testing.assert_array_equal(fast.telemetry_records(), slow.telemetry_records())


@pytest.mark.parametrize("logged", [False, True], ids=["lean", "logged"])
def test_then_done_is_the_consumers_answer_for_regular_cycles_and_minus_one_otherwise(tmp_path, logged):
    """``then_done`` after each exchange_reading: what the bound consumer returned when C handed it
    the regular COMMAND (on the lean path it travels in the call's result), -1 for every other
    cycle, also right after a regular one (the slipped bytes make irregular answers), and for a
    cycle given no row."""
    import ctypes

    calls = []
    proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                             ctypes.c_double, ctypes.c_uint8, ctypes.c_double, ctypes.c_double, ctypes.c_double,
                             ctypes.c_double, ctypes.c_int64)

    @proto
    def consumer(block, history, rows, row, throttle, engine_on, tx, ty, tz, dt_s, n):
        calls.append(row)
        return 1000 + row  # not a count a real cycle returns: it must come back unchanged

    tr = LoopbackTransport()
    link = _link(tr, tmp_path / "l.log" if logged else None)
    reading = np.zeros(len(p.SENSORS_READING_FIELDS))
    block, history = np.zeros(8), np.zeros((4, 2))
    link.bind_reading(reading, (ctypes.cast(consumer, ctypes.c_void_p).value, block, history, 0.02, 1))
    seen, lean = [], set()
    for i in range(1, 30):
        if i in SLIPS:
            _slip(tr, SLIPS[i])
        s = _sensors(i)
        reading[:] = _reading(s)
        row = i if i % 4 else -1  # every fourth cycle is given no row: nothing is handed on
        answer = link.exchange_reading(s.lrf_range, s.lrf_sample_t_us, s.flags & ~p.SENSORS_IMU_VALID, 20_000 * i,
                                       row)
        seen.append((i, row, answer is not None, link.then_done))
        lean.add(link._lean)
    link.close()
    assert lean == ({False} if logged else {False, True})  # (the lean path pauses for the slips)
    handed = [i for i, row, _answered, done in seen if done != -1]
    assert handed == calls  # a consumer's answer only for the cycles it was called for
    assert all(done == 1000 + row for _i, row, _a, done in seen if done != -1)
    assert all(row >= 0 and answered for i, row, answered, done in seen if done != -1)
    # cycles after a slip are not regular: nothing handed on, and -1 right after a regular cycle
    irregular = [i for i, row, answered, done in seen if row >= 0 and done == -1]
    assert set(irregular) >= {3, 13} and len(handed) >= 12
    assert all(done == -1 for _i, row, _a, done in seen if row < 0)


def test_lean_cycles_are_counted_when_read_and_keep_every_telemetry(tmp_path):
    """Without a byte log, exchange_reading's regular cycles are counted in C: every read of the
    link's counters sees them (mid-run too), the last frames each way are those cycles', and
    TELEMETRY past the C buffer's high-water mark is taken in time (one a cycle here: nothing
    lost over 2,000 cycles, more than the buffer holds)."""
    tr = LoopbackTransport()
    link = _link(tr)
    table = load_param_table()
    link.configure([(table["TLM_DECIMATION"], 1.0)])
    reading = np.zeros(len(p.SENSORS_READING_FIELDS))
    link.bind_reading(reading)
    calls = []
    real = link._lockstep.call_cycle
    link._lockstep.call_cycle = lambda *a: calls.append(real(*a)) or calls[-1]
    before = (link.stats.exchanges, link.decoder.counters.frames_ok, link.log.bytes_tx, link.log.bytes_rx)
    n, seqs = 2_000, []
    for i in range(1, n + 1):
        s = _sensors(i)
        reading[:] = _reading(s)
        cmd = link.exchange_reading(s.lrf_range, s.lrf_sample_t_us, s.flags & ~p.SENSORS_IMU_VALID, 20_000 * i)
        assert cmd.sensors_seq == link.last_sent[1]  # read mid-run: the C count is taken in
        seqs.append(cmd.sensors_seq)
        if i == 1:
            assert link.last_received[:3] == (p.MsgType.COMMAND, link.last_received[1], 20_000)
    assert set(calls[1:]) <= {1, 2} and 2 in calls  # every cycle lean (the first may not be), the buffer's mark reached
    assert link.stats.exchanges - before[0] == n and link.stats.missed_cycles == 0
    assert link.last_sent[:3] == (p.MsgType.SENSORS, link.last_sent[1], 20_000 * n)
    link.close()
    tlm = link.telemetry_records()
    assert len(tlm) >= n and list(tlm["t_us"][-n:]) == [20_000 * i for i in range(1, n + 1)]
    assert link.decoder.counters.frames_ok - before[1] == n + len(tlm[-n:])  # a COMMAND and a TELEMETRY each
    assert link.log.bytes_tx - before[2] == sum(len(p.encode_frame(_sensors(i), seq, 20_000 * i))
                                                for i, seq in enumerate(seqs, 1))
    assert link.log.bytes_rx - before[3] > n * (38 + 98)  # a COMMAND and a TELEMETRY packet each, framed


def test_a_miss_between_lean_cycles_does_not_count_as_consecutive(tmp_path):
    """The flight code misses one cycle in every three: with a stall limit of 2 consecutive
    misses it is never declared stalled, because the lean cycles between the misses (counted in
    C) reset the run of misses."""
    tr = LoopbackTransport()
    link = _link(tr, stall_cycles=2)
    reading = np.zeros(len(p.SENSORS_READING_FIELDS))
    link.bind_reading(reading)
    got = []
    for i in range(1, 31):
        if i % 3 == 0:
            _slip(tr, b"\x05\x01\x02")  # this cycle's COMMAND spoilt
        s = _sensors(i)
        reading[:] = _reading(s)
        got.append(link.exchange_reading(s.lrf_range, s.lrf_sample_t_us, s.flags & ~p.SENSORS_IMU_VALID, 20_000 * i))
    assert sum(c is None for c in got) == 10 and link.stats.missed_cycles == 10
    assert link.stats.exchanges == 20


def test_regular_cycles_take_the_c_call_and_count_every_byte(tmp_path):
    """Without anything unusual every cycle is answered by the one C call; the link log still
    gets every byte both ways and the counters every frame."""
    tr = LoopbackTransport()
    link = _link(tr, tmp_path / "link.log")
    calls = []
    real = link._lockstep.call
    link._lockstep.call = lambda *a: calls.append(real(*a)) or calls[-1]
    for i in range(1, 30):
        assert link.exchange(_sensors(i), 20_000 * i).sensors_seq == link.last_sent[1]
    link.close()
    assert calls == [1] * 28  # the first cycle takes the generic path: the boot HELLO is still pending
    frames = p.FrameDecoder()
    log = read_link_log(tmp_path / "link.log")
    sent = [f for d, _t, b in log if d == ">" for f in frames.feed(b)]
    got = [f for d, _t, b in log if d == "<" for f in p.FrameDecoder().feed(b)]
    assert [f.msg_type for f in sent[-29:]] == [p.MsgType.SENSORS] * 29
    tx = [b for d, _t, b in log if d == ">"][-29:]  # one record a frame, as the Python codec makes it
    assert tx == [p.encode_frame(_sensors(i), f.seq, 20_000 * i) for i, f in zip(range(1, 30), sent[-29:])]
    assert sum(f.msg_type == p.MsgType.COMMAND for f in got) == 29
    tlm = sum(f.msg_type == p.MsgType.TELEMETRY for f in got)
    assert len(link.telemetry_records()) == tlm > 0
    assert link.log.bytes_tx == sum(len(b) for d, _t, b in log if d == ">")
    assert link.log.bytes_rx == sum(len(b) for d, _t, b in log if d == "<")
    assert link.decoder.counters.frames_ok == len(got) and link.decoder.counters.errors == 0


def test_stall_detected_the_same_way(tmp_path):
    def run(cls):
        tr = cls()
        link = _link(tr, stall_cycles=3)
        link.exchange(_sensors(1), 20_000)
        with pytest.raises(FlightCodeStalled) as err:
            for i in range(2, 10):
                _slip(tr, b"\x05\x01\x02")  # every COMMAND spoilt from here on
                link.exchange(_sensors(i), 20_000 * i)
        return link, re.sub(r"\d+\.\d+ s wall ago", "", str(err.value))

    (fast, fast_err), (slow, slow_err) = run(LoopbackTransport), run(GenericPath)
    assert fast_err == slow_err and "no COMMAND for 3 consecutive cycles" in fast_err
    assert fast.stats.missed_cycles == slow.stats.missed_cycles == 3


def test_wrapped_or_subclassed_transports_are_never_bypassed():
    from harness.faults import FaultSet
    from harness.faults.link import FaultyTransport

    inner = LoopbackTransport()
    wrapped = FaultyTransport(inner, FaultSet([]), [])
    assert hasattr(wrapped, "in_process_lockstep")  # forwarded to the inner transport...
    assert FlightLink(wrapped)._lockstep is None    # ...but never used through the wrapper
    assert FlightLink(GenericPath())._lockstep is None
    assert FlightLink(inner)._lockstep is not None


def _same(a, b):
    return [c for c in COLUMNS if not np.array_equal(a[c], b[c], equal_nan=True)]


@pytest.mark.parametrize("name, logged", [("nominal-terminal-descent", True), ("im1", True),
                                          ("nominal-terminal-descent", False)])
def test_whole_flight_bit_identical_with_and_without_the_c_call(tmp_path, name, logged):
    """``logged`` False: no artefacts, no byte log: the lean C call takes the regular cycles."""
    sc = load_scenario(name).with_(t_max_s=30.0)
    fast = fly(sc, LoopbackTransport(), artifacts=tmp_path / "fast" if logged else None)
    slow = fly(sc, GenericPath(), artifacts=tmp_path / "slow")
    assert fast.error is None and fast.outcome == slow.outcome
    assert _same(fast.telemetry, slow.telemetry) == []
    assert fast.link_counters == slow.link_counters and fast.flight_counters == slow.flight_counters
    for k in ("exchanges", "missed_cycles", "late_commands", "lost_commands", "bytes_tx", "bytes_rx"):
        assert fast.link_stats[k] == slow.link_stats[k], k
    if logged:
        assert ([(d, b) for d, _t, b in read_link_log(tmp_path / "fast" / "link.log")]
                == [(d, b) for d, _t, b in read_link_log(tmp_path / "slow" / "link.log")])


@pytest.mark.parametrize("cls", [LoopbackTransport, GenericPath], ids=["c-call", "generic"])
def test_exchange_after_close_is_refused_on_both_paths(cls):
    from harness.transports.base import TransportClosed

    tr = cls()
    link = _link(tr)
    link.exchange(_sensors(1), 20_000)
    link.exchange(_sensors(2), 40_000)
    tr.close()
    with pytest.raises(TransportClosed, match="write after close"):
        link.exchange(_sensors(3), 60_000)


def test_lean_exchange_after_close_is_refused_and_the_counts_kept():
    """A transport closed under the lean C call (exchange_reading, no byte log): refused by name,
    and the cycles counted in C before it still reach the link's counters."""
    from harness.transports.base import TransportClosed

    tr = LoopbackTransport()
    link = _link(tr)
    reading = np.zeros(len(p.SENSORS_READING_FIELDS))
    link.bind_reading(reading)
    for i in range(1, 6):
        reading[:] = _reading(_sensors(i))
        assert link.exchange_reading(0.0, 0, 0, 20_000 * i) is not None
    assert link._lean  # the last cycles went through fsil_link_cycle
    tr.close()
    with pytest.raises(TransportClosed, match="write after close"):
        link.exchange_reading(0.0, 0, 0, 120_000)
    assert link.stats.exchanges == 5 and link.last_sent[2] == 100_000


def test_a_rig_flying_many_runs_keeps_no_lockstep_context_of_finished_ones():
    """Each run's link has its own lockstep context (~100 kB of buffers); the transport, which a
    rig keeps across runs, refers to them only while a link holds them (a campaign worker flies
    thousands of runs on one rig)."""
    import gc

    tr = LoopbackTransport()
    links = [_link(tr) for _ in range(3)]
    assert len(tr._locksteps) == 3
    del links
    gc.collect()
    assert len(tr._locksteps) == 0
    live = _link(tr)
    tr.close()  # a live link's context is still told the transport closed
    with pytest.raises(Exception, match="write after close"):
        live.exchange(_sensors(1), 20_000)


def test_a_log_held_outside_the_link_has_every_byte_once_it_is_closed():
    """The runner keeps its own reference to the LinkLog and reads its byte counts after
    ``close``: the lean cycles' bytes, counted in C, must be in it by then without any read
    through the link."""
    tr = LoopbackTransport()
    log = LinkLog(None)
    link = FlightLink(tr, log=log)
    link.wait_hello(1.0)
    table = load_param_table()
    # no TELEMETRY in these cycles: nothing else in close() reads the link's counters
    link.configure([(table["MASS0"], 700.0), (table["TLM_DECIMATION"], 1000.0)])
    reading = np.zeros(len(p.SENSORS_READING_FIELDS))
    link.bind_reading(reading)
    tx0 = log.bytes_tx
    for i in range(1, 11):
        reading[:] = _reading(_sensors(i))
        link.exchange_reading(0.0, 0, 0, 20_000 * i)
    assert link._lean and not link._lockstep.ctx.tlm_len
    link.close()
    assert log.bytes_tx - tx0 == sum(len(p.encode_frame(_sensors(i), seq, 20_000 * i))
                                     for i, seq in zip(range(1, 11), range(link._seq - 10, link._seq)))
