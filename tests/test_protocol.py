"""Python codec against the shared test vectors, and its handling of bad input."""
import json
import random
from pathlib import Path

import pytest
from cobs import cobs
from hypothesis import given, settings, strategies as st

from harness import protocol as p

VECTORS = json.loads((Path(__file__).parent / "vectors" / "protocol_v2.json").read_text())
BY_NAME = {v["name"]: v for v in VECTORS["vectors"]}


def test_crc_is_ccitt_false_check_value():
    assert p.crc16(b"123456789") == int(VECTORS["crc_check_123456789"], 16) == 0x29B1


@pytest.mark.parametrize("vec", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector_decodes_to_its_fields(vec):
    frame = p.decode_frame(bytes.fromhex(vec["frame_hex"]))
    assert (frame.msg_type, frame.seq, frame.t_us) == (vec["msg_type"], vec["seq"], vec["t_us"])
    for name, want in vec["fields"].items():
        got = getattr(frame.msg, name)
        assert (list(got) if isinstance(got, tuple) else got) == want, name


@pytest.mark.parametrize("vec", VECTORS["vectors"], ids=lambda v: v["name"])
def test_fields_encode_to_the_vector_bytes(vec):
    cls = p.MESSAGE_CLASSES[vec["msg_type"]]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in vec["fields"].items()}
    msg = cls(**kwargs)
    assert p.encode_packet(msg, vec["seq"], vec["t_us"]).hex() == vec["packet_hex"]
    assert p.encode_frame(msg, vec["seq"], vec["t_us"]).hex() == vec["frame_hex"]


def _names(frames):
    by_bytes = {bytes.fromhex(v["frame_hex"]): v["name"] for v in VECTORS["vectors"]}
    return [by_bytes[p.encode_frame(f.msg, f.seq, f.t_us)] for f in frames]


@pytest.mark.parametrize("stream", VECTORS["streams"], ids=lambda s: s["name"])
def test_stream_in_one_piece(stream):
    dec = p.FrameDecoder()
    frames = dec.feed(bytes.fromhex(stream["stream_hex"]))
    assert _names(frames) == stream["expect_frames"]
    for k, v in stream["expect_counters"].items():
        assert getattr(dec.counters, k) == v, (k, dec.errors)
    assert dec.counters.frames_ok == len(stream["expect_frames"])


@pytest.mark.parametrize("stream", VECTORS["streams"], ids=lambda s: s["name"])
def test_stream_byte_by_byte_and_random_chunks(stream):
    data = bytes.fromhex(stream["stream_hex"])
    rng = random.Random(stream["name"])
    for chunking in ("bytes", "random"):
        dec = p.FrameDecoder()
        frames, i = [], 0
        while i < len(data):
            n = 1 if chunking == "bytes" else rng.randint(1, 40)
            frames += dec.feed(data[i:i + n])
            i += n
        assert _names(frames) == stream["expect_frames"]
        for k, v in stream["expect_counters"].items():
            assert getattr(dec.counters, k) == v


def test_errors_name_their_cause():
    good = bytes.fromhex(BY_NAME["command_terminal"]["frame_hex"])
    dec = p.FrameDecoder()
    corrupt = bytearray(good)
    corrupt[5] ^= 0x40  # a bit error inside the COBS payload
    dec.feed(bytes(corrupt) + good)
    assert dec.counters.frames_ok == 1
    kind, text = dec.errors[0]
    assert kind in ("crc_errors", "framing_errors")
    assert "CRC" in text or "COBS" in text or "truncated" in text


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=600), split=st.integers(min_value=1, max_value=64))
def test_any_garbage_then_delimiter_never_loses_the_next_good_frame(garbage, split):
    good = bytes.fromhex(BY_NAME["sensors_lrf_valid"]["frame_hex"])
    data = garbage + b"\x00" + good
    dec = p.FrameDecoder()
    frames = []
    for i in range(0, len(data), split):
        frames += dec.feed(data[i:i + split])
    assert frames, dec.errors
    assert p.encode_frame(frames[-1].msg, frames[-1].seq, frames[-1].t_us) == good
    # every garbage frame was either decoded (by chance) or counted
    assert dec.counters.frames_ok + dec.counters.errors >= 1


def _telemetry(k: int) -> p.Telemetry:
    return p.Telemetry((1.0e6 + k, 2.0, 3.0), (0.5, -1.0, float(k)), (1.0, 0.0, 0.0, 0.0), 100.0 - k, 0.25,
                       3, 1, 0, 0, 0, 0, 0, 40 + k, 0)


def test_deferred_telemetry_is_checked_in_bulk_and_counted_as_if_decoded_on_arrival():
    """The lockstep loop defers TELEMETRY (kept COBS-encoded, checked after the run). Bad ones
    among them must still be counted under the same counter, with the same message, as the
    immediate decoder would, and the good ones returned in order, unpacked field for field."""
    good = [p.encode_frame(_telemetry(k), 100 + k, 20_000 * k) for k in range(6)]
    bad_crc = bytearray(good[2])
    bad_crc[20] ^= 0x08                                     # payload bit error, type byte intact
    pkt = p.HEADER.pack(p.PROTOCOL_VERSION, p.MsgType.TELEMETRY, 7, 0) + b"\x01" * 10
    wrong_len = cobs.encode(pkt + p.CRC.pack(p.crc16(pkt))) + b"\x00"
    command = p.encode_frame(p.Command(0.5, (0.0, 0.0, 0.0), 3, 2, 1), 9, 40_000)
    stream = good[0] + good[1] + command + bytes(bad_crc) + good[3] + wrong_len + good[4] + good[5]

    immediate = p.FrameDecoder(raw_types=frozenset({p.MsgType.TELEMETRY}))
    expect = [f for f in immediate.feed(stream) if f.msg_type == p.MsgType.TELEMETRY]

    tlm = frozenset({p.MsgType.TELEMETRY})
    deferred = p.FrameDecoder(raw_types=tlm, defer_types=tlm)
    frames = deferred.feed(stream)
    assert [f.msg_type for f in frames] == [p.MsgType.COMMAND]  # decoded at once: the loop needs it
    assert deferred.counters.frames_ok == 1 and deferred.counters.errors == 0
    packets = deferred.take_deferred()
    assert deferred.counters.as_dict() == immediate.counters.as_dict()
    assert deferred.errors == immediate.errors and deferred.counters.crc_errors == 1 \
        and deferred.counters.length_errors == 1
    rec = p.unpack_telemetry(packets)
    assert list(rec["seq"]) == [f.seq for f in expect] == [100, 101, 103, 104, 105]
    assert list(rec["t_us"]) == [f.t_us for f in expect]
    for r, f in zip(rec, expect):
        t = p.Telemetry.unpack(f.msg)
        assert tuple(r["est_r_mci"]) == t.est_r_mci and r["rx_frames_ok"] == t.rx_frames_ok
    assert deferred.take_deferred() == []  # taken once


def test_deferred_telemetry_all_good_takes_the_bulk_path():
    tlm = frozenset({p.MsgType.TELEMETRY})
    dec = p.FrameDecoder(raw_types=tlm, defer_types=tlm)
    for k in range(50):
        dec.feed(p.encode_frame(_telemetry(k), k, 20_000 * k))
    rec = p.unpack_telemetry(dec.take_deferred())
    assert dec.counters.frames_ok == 50 and dec.counters.errors == 0
    assert list(rec["est_alt"]) == [100.0 - k for k in range(50)]


def test_deferred_telemetry_one_bad_crc_among_equal_lengths_is_found():
    tlm = frozenset({p.MsgType.TELEMETRY})
    dec = p.FrameDecoder(raw_types=tlm, defer_types=tlm)
    frames = [p.encode_frame(_telemetry(k), k, 20_000 * k) for k in range(20)]
    packet = bytearray(cobs.decode(frames[11][:-1]))
    packet[30] ^= 0x01  # one bit of the body: same length, wrong CRC
    frames[11] = cobs.encode(bytes(packet)) + b"\x00"
    for f in frames:
        dec.feed(f)
    rec = p.unpack_telemetry(dec.take_deferred())
    assert dec.counters.frames_ok == 19 and dec.counters.crc_errors == 1
    assert 11 not in list(rec["seq"]) and len(rec) == 19


def _command_chunk(version: int = p.PROTOCOL_VERSION, crc_swap: bool = False) -> bytes:
    """A COMMAND frame without its delimiter (39 bytes, the size the decoder's quick path takes)."""
    pkt = p.HEADER.pack(version, p.MsgType.COMMAND, 0x0203, 40_000) + \
        p.Command(0.75, (0.5, -0.25, 1.0), 0x0102, 3, 1).pack()
    crc = p.crc16(pkt)
    if crc_swap:
        crc = ((crc & 0xFF) << 8) | (crc >> 8)
    chunk = cobs.encode(pkt + p.CRC.pack(crc))
    assert len(chunk) == p.COMMAND_PACKET.size + 1 and chunk[0] >= 3 and chunk[2] == p.MsgType.COMMAND
    return chunk


def _as_decode_frame_says(chunk: bytes, raw_types=frozenset()):
    """(frames, counters, errors, foreign_version) that decoding ``chunk`` on its own, with
    ``decode_frame`` and no quick path, implies for a decoder fed it."""
    try:
        return [p.decode_frame(chunk, raw_types)], {"frames_ok": 1}, [], None
    except p.LinkError as exc:
        foreign = (exc.version, exc.msg_type) if isinstance(exc, p.VersionError) else None
        return [], {exc.kind: 1}, [(exc.kind, str(exc))], foreign


def _check_like_decode_frame(chunk: bytes, raw_types=frozenset(), defer_types=frozenset()):
    expect_frames, expect_counts, expect_errors, expect_foreign = _as_decode_frame_says(chunk, raw_types)
    # a deferred TELEMETRY after it, as in the lockstep loop (set aside: nothing else to count)
    good = p.encode_frame(_telemetry(1), 5, 20_000) if p.MsgType.TELEMETRY in defer_types else b""
    for pieces in ([chunk + b"\x00" + good], [chunk[:7], chunk[7:] + b"\x00", good]):  # whole frames, and not
        dec = p.FrameDecoder(raw_types=raw_types, defer_types=defer_types)
        frames = [f for piece in pieces for f in dec.feed(piece)]
        assert frames == expect_frames
        counts = {k: v for k, v in dec.counters.as_dict().items() if v}
        assert counts == expect_counts
        assert dec.errors == expect_errors and dec.foreign_version == expect_foreign
    # the serial lockstep's way (FlightLink): the answer taken first, the rest fed after it (with
    # and without a flush delimiter before the frame)
    answers = []
    for flush in (b"", b"\x00"):
        dec = p.FrameDecoder(raw_types=raw_types, defer_types=defer_types)
        data = flush + chunk + b"\x00" + good
        answer = dec.take_answer(data, 0x0102)
        if answer is None:
            frames = dec.feed(data)
        else:
            command, seq, t_us, rest = answer
            assert rest == good
            frames = [p.Frame(p.MsgType.COMMAND, seq, t_us, command)] + dec.feed(rest)
        assert frames == expect_frames
        assert {k: v for k, v in dec.counters.as_dict().items() if v} == expect_counts
        assert dec.errors == expect_errors and dec.foreign_version == expect_foreign
        answers.append(answer)
    assert answers[0] == answers[1]
    return answers[0]


@pytest.mark.parametrize("case", ["good", "version 3", "crc swapped", "crc off by one", "bad COBS", "COBS short"])
def test_command_shaped_frames_are_decoded_counted_and_named_as_decode_frame_does(case):
    """The decoder takes a regular COMMAND (39 bytes, its type byte readable) without the full
    decode; whatever fails a check there must come out exactly as decode_frame says."""
    chunk = bytearray(_command_chunk(version=3 if case == "version 3" else p.PROTOCOL_VERSION,
                                     crc_swap=case == "crc swapped"))
    if case == "crc off by one":
        chunk[-2] = chunk[-2] % 255 + 1
    elif case == "bad COBS":
        chunk[0] = 0x30   # the code byte points past the end: not COBS
    elif case == "COBS short":
        chunk[0] = 0x02   # decodes, but not to the packet (type byte no longer at chunk[2] for the decoder)
    tlm = frozenset({p.MsgType.TELEMETRY})
    taken = _check_like_decode_frame(bytes(chunk), tlm, tlm)
    assert (taken is not None) == (case == "good")  # only a good answer takes the quick way
    if case == "good":  # a decoder told to keep COMMAND raw, or defer it, is obeyed on the quick path too
        _check_like_decode_frame(bytes(chunk), frozenset({p.MsgType.COMMAND}))
        dec = p.FrameDecoder(raw_types=frozenset({p.MsgType.COMMAND}), defer_types=frozenset({p.MsgType.COMMAND}))
        assert dec.feed(bytes(chunk) + b"\x00") == [] and dec.take_deferred() == [cobs.decode(bytes(chunk))]
        assert dec.take_answer(bytes(chunk) + b"\x00", 0x0102) is None


def test_take_answer_takes_only_the_awaited_answer_at_a_frame_boundary():
    """``take_answer`` (the serial lockstep's first look at a read) takes the COMMAND answering the
    SENSORS awaited, and only when the read starts a frame; otherwise it takes nothing, and feed()
    gives what it always gave."""
    tlm = frozenset({p.MsgType.TELEMETRY})
    frame = _command_chunk() + b"\x00"
    telemetry = p.encode_frame(_telemetry(1), 5, 20_000)
    dec = p.FrameDecoder(raw_types=tlm, defer_types=tlm)
    command, seq, t_us, rest = dec.take_answer(frame + telemetry, 0x0102)
    assert (command, seq, t_us, rest) == (p.Command(0.75, (0.5, -0.25, 1.0), 0x0102, 3, 1), 0x0203, 40_000, telemetry)
    assert dec.counters.frames_ok == 1
    # a flight code that also starts each frame with a delimiter: the flushes are skipped
    assert dec.take_answer(b"\x00\x00" + frame + b"\x00" + telemetry, 0x0102) == (command, seq, t_us,
                                                                                 b"\x00" + telemetry)
    assert dec.take_answer(b"\x00" * 3, 0x0102) is None and dec.take_answer(b"", 0x0102) is None
    assert dec.counters.frames_ok == 2
    dec.counters.frames_ok = 1
    assert dec.take_answer(frame, 0x0103) is None           # answers another SENSORS (late): not taken
    assert dec.take_answer(frame[:-1], 0x0102) is None      # no delimiter yet
    assert dec.take_answer(telemetry + frame, 0x0102) is None  # not first in the read
    assert dec.counters.frames_ok == 1 and not dec.errors
    assert dec.feed(frame[:5]) == []                         # a partial frame held: the read continues it
    assert dec.take_answer(frame, 0x0102) is None
    assert dec.feed(frame) == [] and dec.counters.framing_errors + dec.counters.crc_errors == 1


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=14, max_size=14),
       dt_s=st.floats(0.0, 0.06), valid=st.sampled_from([0.0, 1.0, -2.5]),
       lrf_range=st.floats(0.0, 2e4), lrf_t_us=st.integers(0, 2**32 - 1), lrf_flags=st.integers(0, 5),
       seq=st.integers(0, 2**20), t_us=st.integers(0, 2**63 - 1))
def test_a_reading_encodes_to_the_frame_of_its_sensors(values, dt_s, valid, lrf_range, lrf_t_us, lrf_flags, seq, t_us):
    """``encode_reading_frame`` (the serial rigs' lockstep SENSORS, built from the IMU reading)
    gives the bytes ``encode_frame`` gives for the Sensors the reading and LRF fields make."""
    import numpy as np

    reading = np.array(values[:6] + [dt_s, valid] + values[8:], dtype=np.float64)
    sensors = p.Sensors(tuple(values[0:3]), tuple(values[3:6]), round(dt_s * 1e6), lrf_range, lrf_t_us,
                        lrf_flags | (p.SENSORS_IMU_VALID if valid != 0.0 else 0), tuple(values[8:11]),
                        tuple(values[11:14]))
    assert p.encode_reading_frame(reading, lrf_range, lrf_t_us, lrf_flags, seq, t_us) == \
        p.encode_frame(sensors, seq, t_us)


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 38), st.integers(1, 255)), min_size=1, max_size=3))
def test_any_damaged_command_is_counted_and_named_as_decode_frame_does(edits):
    chunk = bytearray(_command_chunk())
    for i, b in edits:
        chunk[i] = b  # never 0x00: it stays one 39-byte chunk
    tlm = frozenset({p.MsgType.TELEMETRY})
    _check_like_decode_frame(bytes(chunk), tlm, tlm)
