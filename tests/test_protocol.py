"""Python codec against the shared test vectors, and its handling of bad input."""
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from harness import protocol as p

VECTORS = json.loads((Path(__file__).parent / "vectors" / "protocol_v1.json").read_text())
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
