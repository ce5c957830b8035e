"""COBS framing of the C flight code (fsw_protocol.c) against the maintained Python ``cobs``
package: every output capacity from 0 up to the exact size, so each bounds check must refuse
exactly when the output does not fit (encode returns 0, decode -1) and succeed when it does."""
from __future__ import annotations

import random

import pytest
from cobs import cobs


def cases():
    rng = random.Random(14)
    out = [b"", b"\x00", b"\x00\x00", b"\x01", b"\x01\x00\x02", bytes(range(1, 255)),
           bytes(range(1, 255)) + b"\x00", bytes(range(1, 256)) + b"\x07" * 20, b"\x05" * 600]
    for _ in range(30):
        n = rng.randrange(1, 400)
        out.append(bytes(rng.choice((0, rng.randrange(1, 256))) if rng.random() < 0.1 else rng.randrange(1, 256)
                         for _ in range(n)))
    return out


@pytest.mark.parametrize("data", cases(), ids=lambda d: f"{len(d)}B")
def test_encode_matches_cobs_and_refuses_every_too_small_buffer(fc, data):
    ffi, lib = fc
    want = cobs.encode(data)
    buf = ffi.new("uint8_t[]", len(want) + 8)
    for cap in range(len(want)):
        assert lib.fsw_cobs_encode(data, len(data), buf, cap) == 0, cap
    n = lib.fsw_cobs_encode(data, len(data), buf, len(want))
    assert bytes(ffi.buffer(buf, n)) == want
    assert lib.fsw_cobs_encode(data, len(data), buf, len(want) + 8) == len(want)


@pytest.mark.parametrize("data", cases(), ids=lambda d: f"{len(d)}B")
def test_decode_matches_cobs_and_refuses_every_too_small_buffer(fc, data):
    ffi, lib = fc
    enc = cobs.encode(data)
    out = ffi.new("uint8_t[]", len(data) + 8)
    n = ffi.new("size_t *")
    for cap in range(len(data)):
        assert lib.fsw_cobs_decode(enc, len(enc), out, cap, n) == -1, cap
    assert lib.fsw_cobs_decode(enc, len(enc), out, len(data), n) == 0
    assert bytes(ffi.buffer(out, n[0])) == data


def test_decode_refuses_zero_bytes_and_groups_past_the_end(fc):
    ffi, lib = fc
    out = ffi.new("uint8_t[]", 64)
    n = ffi.new("size_t *")
    assert lib.fsw_cobs_decode(b"\x03\x01\x00", 3, out, 64, n) == -1      # zero inside a group
    assert lib.fsw_cobs_decode(b"\x00", 1, out, 64, n) == -1              # zero code byte
    assert lib.fsw_cobs_decode(b"\x05\x01\x02", 3, out, 64, n) == -1      # group longer than the input
    assert lib.fsw_cobs_decode(b"\x03\x01\x02", 3, out, 64, n) == 0 and bytes(ffi.buffer(out, n[0])) == b"\x01\x02"
