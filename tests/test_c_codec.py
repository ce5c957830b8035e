"""The C codec (firmware_stub/fsw_protocol.c) through cffi.

(a) the shared test vectors (tests/vectors/protocol_v2.json), (b) bad input
on the C side, counted and visible in TELEMETRY, (c) randomized and
adversarial byte streams (hypothesis), plus C <-> Python codec cross-checks.
"""
from __future__ import annotations

import json
import math
import random
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.targets import load_flight_code  # noqa: E402

VECTORS = ROOT / "tests" / "vectors" / "protocol_v2.json"
VERSION = 2

TYPES = {"HELLO": 0x01, "CONFIG": 0x02, "CONFIG_ACK": 0x03, "SENSORS": 0x10, "COMMAND": 0x11, "TELEMETRY": 0x12}
MEMBER = {0x01: "hello", 0x02: "config", 0x03: "config_ack", 0x10: "sensors", 0x11: "command", 0x12: "telemetry"}
FIELDS = {
    0x01: ["protocol_version", "firmware_id", "firmware_name"],
    0x02: ["param_id", "flags", "value"],
    0x03: ["param_id", "status", "value"],
    0x10: ["imu_dv_body", "imu_dtheta_body", "imu_dt_us", "lrf_range", "lrf_sample_t_us", "flags",
           "imu_dv_accum_body", "imu_dtheta_accum_body"],
    0x11: ["throttle", "torque_body", "sensors_seq", "mode", "flags"],
    0x12: ["est_r_mci", "est_v_mci", "est_q_mci_body", "est_alt", "lrf_innovation", "phase", "lrf_status",
           "lrf_rejects", "rx_crc_errors", "rx_framing_errors", "rx_length_errors", "rx_unknown_msgs",
           "rx_frames_ok", "cycle_overruns", "sensors_gaps", "sensors_rejected", "fault_flags"],
}
COUNTERS = ("crc_errors", "framing_errors", "length_errors", "unknown_msgs")


@pytest.fixture(scope="module")
def fc():
    return load_flight_code()


# ------------------------------------------------------------------ helpers
def make_msg(ffi, msg_type: int, seq: int, t_us: int, fields: dict):
    m = ffi.new("fsw_msg_t *")
    m.hdr.version = VERSION
    m.hdr.msg_type = msg_type
    m.hdr.seq = seq
    m.hdr.t_us = t_us
    body = getattr(m.body, MEMBER[msg_type])
    for k, v in fields.items():
        if k == "firmware_name":
            raw = v.encode("ascii")[:16].ljust(16, b"\0")
            for i, b in enumerate(raw):
                body.firmware_name[i] = bytes([b])
        elif isinstance(v, list):
            arr = getattr(body, k)
            for i, x in enumerate(v):
                arr[i] = x
        else:
            setattr(body, k, v)
    return m


def msg_fields(ffi, m) -> dict:
    t = m.hdr.msg_type
    body = getattr(m.body, MEMBER[t])
    out = {}
    for k in FIELDS[t]:
        if k == "firmware_name":
            out[k] = bytes(ffi.buffer(body.firmware_name, 16)).rstrip(b"\0").decode("ascii", "replace")
        else:
            v = getattr(body, k)
            out[k] = list(v) if isinstance(v, ffi.CData) else v
    return out


def pack(ffi, lib, m) -> bytes:
    buf = ffi.new("uint8_t[]", 256)
    n = lib.fsw_msg_pack(m, buf, 256)
    return bytes(ffi.buffer(buf, n))


def encode_frame(ffi, lib, m) -> bytes:
    buf = ffi.new("uint8_t[]", 300)
    n = lib.fsw_msg_encode_frame(m, buf, 300)
    assert n > 0
    return bytes(ffi.buffer(buf, n))


def parse(ffi, lib, data: bytes, parser=None, max_msgs: int = 512):
    p = parser if parser is not None else ffi.new("fsw_parser_t *")
    if parser is None:
        lib.fsw_parser_init(p)
    msgs = ffi.new("fsw_msg_t[]", max_msgs)
    n = lib.fsw_test_parse(p, data, len(data), msgs, max_msgs)
    return [msgs[i] for i in range(min(n, max_msgs))], p, n


def counters(p) -> dict:
    return {k: getattr(p, k) for k in COUNTERS + ("frames_ok",)}


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def fields_equal(got: dict, want: dict) -> bool:
    for k, v in want.items():
        if k == "reserved":
            continue
        g = got[k]
        if isinstance(v, list):
            if len(g) != len(v) or not all(same(x, y) for x, y in zip(g, v)):
                return False
        elif not same(g, v):
            return False
    return True


def load_vectors():
    return json.loads(VECTORS.read_text())


# ---------------------------------------------------------- CRC and COBS
def test_crc_check_value(fc):
    ffi, lib = fc
    assert lib.fsw_crc16(b"123456789", 9) == 0x29B1
    # incremental == one-shot
    c = lib.fsw_crc16_update(0xFFFF, b"1234", 4)
    assert lib.fsw_crc16_update(c, b"56789", 5) == 0x29B1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_cobs_matches_reference(fc, data):
    from cobs import cobs

    ffi, lib = fc
    out = ffi.new("uint8_t[]", 700)
    n = lib.fsw_cobs_encode(data, len(data), out, 700)
    enc = bytes(ffi.buffer(out, n))
    assert enc == cobs.encode(data)
    dec = ffi.new("uint8_t[]", 700)
    ln = ffi.new("size_t *")
    assert lib.fsw_cobs_decode(enc, len(enc), dec, 700, ln) == 0
    assert bytes(ffi.buffer(dec, ln[0])) == data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=300).filter(lambda b: 0 not in b))
def test_cobs_decode_agrees_on_arbitrary_input(fc, enc):
    from cobs import cobs

    ffi, lib = fc
    dec = ffi.new("uint8_t[]", 400)
    ln = ffi.new("size_t *")
    rc = lib.fsw_cobs_decode(enc, len(enc), dec, 400, ln)
    try:
        ref = cobs.decode(enc)
    except cobs.DecodeError:
        ref = None
    if ref is None:
        assert rc != 0
    else:
        assert rc == 0 and bytes(ffi.buffer(dec, ln[0])) == ref


def test_cobs_encode_small_cap_fails_cleanly(fc):
    ffi, lib = fc
    out = ffi.new("uint8_t[]", 4)
    assert lib.fsw_cobs_encode(b"\x01\x02\x03\x04\x05", 5, out, 4) == 0
    assert lib.fsw_cobs_encode(b"", 0, out, 4) == 1 and out[0] == 1


def test_body_lengths(fc):
    _, lib = fc
    assert [lib.fsw_body_len(t) for t in (1, 2, 3, 0x10, 0x11, 0x12)] == [24, 12, 12, 92, 24, 84]
    assert lib.fsw_body_len(0x55) == -1


# ------------------------------------------------------ (a) shared vectors
def lib_version() -> int:
    return load_flight_code()[1].FSW_PROTO_VERSION


def test_vectors_file_header():
    d = load_vectors()
    assert d["protocol_version"] == VERSION == lib_version()


def test_vectors_encode_and_decode(fc):
    ffi, lib = fc
    d = load_vectors()
    assert d["vectors"], "no vectors"
    for v in d["vectors"]:
        t = v["msg_type"]
        assert TYPES[v["type_name"]] == t, v["name"]
        m = make_msg(ffi, t, v["seq"], v["t_us"], v["fields"])
        assert pack(ffi, lib, m).hex() == v["packet_hex"], f"{v['name']}: packet differs"
        assert encode_frame(ffi, lib, m).hex() == v["frame_hex"], f"{v['name']}: frame differs"
        out = ffi.new("fsw_msg_t *")
        frame = bytes.fromhex(v["frame_hex"])
        assert lib.fsw_test_decode_frame(frame, len(frame), out) == lib.FSW_RX_OK, v["name"]
        assert (out.hdr.version, out.hdr.msg_type, out.hdr.seq, out.hdr.t_us) == (VERSION, t, v["seq"], v["t_us"])
        got = msg_fields(ffi, out)
        assert fields_equal(got, v["fields"]), f"{v['name']}: {got} != {v['fields']}"
        # and through the streaming parser
        msgs, p, n = parse(ffi, lib, frame)
        assert n == 1 and fields_equal(msg_fields(ffi, msgs[0]), v["fields"])


def test_vectors_streams(fc):
    ffi, lib = fc
    d = load_vectors()
    by_name = {v["name"]: v for v in d["vectors"]}
    rng = random.Random(1)
    for s in d["streams"]:
        data = bytes.fromhex(s["stream_hex"])
        # in one piece, byte by byte, and in random chunks: same result
        splits = [[data], [data[i:i + 1] for i in range(len(data))]]
        for _ in range(5):
            cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
            splits.append([data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])])
        for chunks in splits:
            p = ffi.new("fsw_parser_t *")
            lib.fsw_parser_init(p)
            got = []
            for ch in chunks:
                msgs, _, _ = parse(ffi, lib, ch, parser=p)
                got += [(m.hdr.msg_type, m.hdr.seq, m.hdr.t_us, msg_fields(ffi, m)) for m in msgs]
            assert len(got) == len(s["expect_frames"]), s["name"]
            for g, name in zip(got, s["expect_frames"]):
                v = by_name[name]
                assert g[:3] == (v["msg_type"], v["seq"], v["t_us"]), (s["name"], name)
                assert fields_equal(g[3], v["fields"]), (s["name"], name)
            c = counters(p)
            for k, want in s["expect_counters"].items():
                assert c[k] == want, f"{s['name']}: {k} = {c[k]}, expected {want}"
            assert c["frames_ok"] == len(s["expect_frames"])


# ------------------------------------------------------------ own vectors
def sensors_fields(**kw):
    f = {"imu_dv_body": [0.0, 0.0, 0.0324], "imu_dtheta_body": [0.0, 0.0, 0.0], "imu_dt_us": 20000,
         "lrf_range": 100.0, "lrf_sample_t_us": 0, "flags": 2}
    f.update(kw)
    return f


def sensors_frame(ffi, lib, seq=1, t_us=20000, **kw) -> bytes:
    return encode_frame(ffi, lib, make_msg(ffi, 0x10, seq, t_us, sensors_fields(**kw)))


def raw_frame(packet: bytes) -> bytes:
    from cobs import cobs

    return cobs.encode(packet) + b"\0"


def packet(msg_type: int, body: bytes, seq=7, t_us=99, version=VERSION, crc_ok=True) -> bytes:
    from harness.protocol import crc16

    data = struct.pack("<BBHQ", version, msg_type, seq, t_us) + body
    crc = crc16(data) ^ (0 if crc_ok else 0x5A5A)
    return data + struct.pack("<H", crc)


def test_header_is_little_endian_byte_by_byte(fc):
    ffi, lib = fc
    m = make_msg(ffi, 0x03, 0x1234, 0x0102030405060708, {"param_id": 0xBEEF, "status": 3, "value": 1.5})
    pk = pack(ffi, lib, m)
    assert pk[:12] == bytes([VERSION, 3, 0x34, 0x12, 8, 7, 6, 5, 4, 3, 2, 1])
    assert pk[12:14] == b"\xef\xbe" and pk[14:16] == b"\x03\x00"
    assert struct.unpack("<d", pk[16:24])[0] == 1.5
    assert len(pk) == 12 + 12 + 2


# ------------------------------------------------------- (b) bad input
BAD_CASES = {
    "bad_crc": ("crc_errors", lambda good_pkt: raw_frame(good_pkt[:-2] + bytes([good_pkt[-2] ^ 1, good_pkt[-1]]))),
    "truncated": ("framing_errors", lambda good_pkt: raw_frame(good_pkt[:10])),
    "cobs_error": ("framing_errors", lambda good_pkt: b"\x05\x01\x02\x00"),  # code says 4 bytes, 2 follow
    "garbage": ("framing_errors", lambda good_pkt: b"\xff\xfe\x13\x37\x42" * 3 + b"\x00"),
    "unknown_type": ("unknown_msgs", lambda good_pkt: raw_frame(packet(0x7E, b"\x01" * 10))),
    "wrong_length": ("length_errors", lambda good_pkt: raw_frame(packet(0x10, b"\x00" * 40))),
    "bad_version": ("length_errors", lambda good_pkt: raw_frame(packet(0x10, b"\x00" * 92, version=1))),
    "v1_sized_sensors": ("length_errors", lambda good_pkt: raw_frame(packet(0x10, b"\x00" * 44))),
    "oversize": ("framing_errors", lambda good_pkt: b"\x11" * 300 + b"\x00"),
    "oversize_254": ("framing_errors", lambda good_pkt: b"\x11" * 254 + b"\x00"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_counted_dropped_and_resynced(fc, case):
    ffi, lib = fc
    counter, make = BAD_CASES[case]
    good = sensors_frame(ffi, lib, seq=5)
    from cobs import cobs

    bad = make(cobs.decode(good[:-1]))
    stream = good + bad + good + b"\x00\x00" + good
    msgs, p, n = parse(ffi, lib, stream)
    assert n == 3
    assert all(m.hdr.msg_type == 0x10 and m.hdr.seq == 5 for m in msgs)
    c = counters(p)
    assert c[counter] == 1, c
    assert sum(c[k] for k in COUNTERS) == 1, c  # exactly one error, nothing else disturbed


def test_exactly_253_nonzero_bytes_is_not_oversize(fc):
    ffi, lib = fc
    # 253 bytes before the delimiter still fit the buffer: a COBS/CRC problem, not oversize... but
    # counted once as *some* error, and the next frame parses.
    good = sensors_frame(ffi, lib)
    msgs, p, n = parse(ffi, lib, b"\x11" * 253 + b"\x00" + good)
    assert n == 1 and sum(getattr(p, k) for k in COUNTERS) == 1


def test_partial_frame_flushed_by_leading_zero(fc):
    ffi, lib = fc
    good = sensors_frame(ffi, lib)
    msgs, p, n = parse(ffi, lib, good[:20] + b"\x00" + good)
    assert n == 1 and p.framing_errors + p.crc_errors == 1


def _loopback(ffi, lib):
    lb = ffi.new("fsw_loopback_t *")
    lib.fsw_loopback_init(lb)
    return lb


def _drain_msgs(ffi, lib, lb):
    out = ffi.new("uint8_t[]", 8192)
    n = lib.fsw_loopback_drain(lb, out, 8192)
    msgs, p, cnt = parse(ffi, lib, bytes(ffi.buffer(out, n)))
    assert sum(getattr(p, k) for k in COUNTERS) == 0, "flight code sent a bad frame"
    return msgs


def test_bad_input_visible_in_telemetry(fc):
    ffi, lib = fc
    lb = _loopback(ffi, lib)
    _drain_msgs(ffi, lib, lb)  # HELLO
    good = sensors_frame(ffi, lib, seq=9, t_us=40000)
    from cobs import cobs

    pkt = cobs.decode(good[:-1])
    junk = b"".join(
        [
            raw_frame(pkt[:-2] + bytes([pkt[-2] ^ 0xFF, pkt[-1]])),  # crc
            raw_frame(pkt[:8]),  # truncated
            b"\x11" * 400 + b"\x00",  # oversize
            b"\x07\x01\x00",  # COBS error
            raw_frame(packet(0x66, b"")),  # unknown
            raw_frame(packet(0x11, b"\x00" * 24)),  # unknown-direction but known type: ignored, counted OK
            raw_frame(packet(0x10, b"\x00" * 45)),  # wrong length
            raw_frame(packet(0x10, b"\x00" * 92, version=3)),  # bad version
            b"\x00\x00\x00",  # flushes
        ]
    )
    lib.fsw_loopback_feed(lb, junk + good, len(junk + good))
    msgs = _drain_msgs(ffi, lib, lb)
    assert [m.hdr.msg_type for m in msgs] == [0x11, 0x12]
    cmd, tlm = msgs[0].body.command, msgs[1].body.telemetry
    assert cmd.sensors_seq == 9 and msgs[0].hdr.t_us == 40000 and msgs[1].hdr.t_us == 40000
    assert tlm.rx_crc_errors == 1
    assert tlm.rx_framing_errors == 3
    assert tlm.rx_unknown_msgs == 1
    assert tlm.rx_length_errors == 2
    assert tlm.rx_frames_ok == 2  # the stray COMMAND and the SENSORS


# ------------------------------------------------ application protocol
def test_hello_at_boot_and_on_request(fc):
    ffi, lib = fc
    lb = _loopback(ffi, lib)
    msgs = _drain_msgs(ffi, lib, lb)
    assert len(msgs) == 1 and msgs[0].hdr.msg_type == 0x01
    h = msg_fields(ffi, msgs[0])
    assert h["protocol_version"] == VERSION and h["firmware_name"] == "fsil-ref" and h["firmware_id"] != 0
    assert msgs[0].hdr.seq == 0
    req = encode_frame(ffi, lib, make_msg(ffi, 0x01, 0, 0, {"protocol_version": VERSION, "firmware_id": 0}))
    lib.fsw_loopback_feed(lb, req, len(req))
    msgs = _drain_msgs(ffi, lib, lb)
    assert len(msgs) == 1 and msgs[0].hdr.msg_type == 0x01 and msgs[0].hdr.seq == 1


def _config(ffi, lib, lb, pid, value, flags=0, seq=0):
    f = encode_frame(ffi, lib, make_msg(ffi, 0x02, seq, 0, {"param_id": pid, "flags": flags, "value": value}))
    lib.fsw_loopback_feed(lb, f, len(f))
    msgs = _drain_msgs(ffi, lib, lb)
    assert len(msgs) == 1 and msgs[0].hdr.msg_type == 0x03
    return msgs[0].body.config_ack


def test_config_ack_statuses(fc):
    ffi, lib = fc
    lb = _loopback(ffi, lib)
    _drain_msgs(ffi, lib, lb)
    a = _config(ffi, lib, lb, 15, 4500.0)
    assert (a.param_id, a.status, a.value) == (15, 0, 4500.0)
    assert lb.fsw.params.THRUST_MAX == 4500.0
    a = _config(ffi, lib, lb, 9999, 1.0)
    assert (a.param_id, a.status) == (9999, 1)
    a = _config(ffi, lib, lb, 17, 1.5)  # THROTTLE_MIN beyond its max
    assert (a.status, a.value) == (2, 0.2)
    a = _config(ffi, lib, lb, 17, float("nan"))
    assert (a.status, a.value) == (2, 0.2)
    assert not lb.fsw.committed
    # v2: a COMMIT bit on a parameter's CONFIG is not a COMMIT (the parameter is applied, nothing committed)
    a = _config(ffi, lib, lb, 11, 650.0, flags=1)
    assert (a.param_id, a.status, a.value) == (11, 0, 650.0)
    assert not lb.fsw.committed
    a = _config(ffi, lib, lb, 0, 0.0)  # id 0 without COMMIT: reserved, unknown
    assert (a.param_id, a.status) == (0, 1) and not lb.fsw.committed
    a = _config(ffi, lib, lb, 0, 0.0, flags=1)  # COMMIT: id 0, flag COMMIT
    assert (a.param_id, a.status, a.value) == (0, 3, 0.0)
    assert lb.fsw.committed and lb.fsw.guid.mass == pytest.approx(650.0)


def test_param_table_matches_def(fc):
    ffi, lib = fc
    from harness.targets import parse_param_table

    rows = parse_param_table(ROOT / "firmware_stub" / "fsw_params.def")
    assert lib.fsw_param_count() == len(rows)
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    p = ffi.new("fsw_params_t *")
    lib.fsw_params_defaults(p)
    for r in rows:
        info = lib.fsw_param_info(r["id"])
        assert ffi.string(info.name).decode() == r["name"]
        assert (info.id, info.min, info.max) == (r["id"], r["min"], r["max"])
        assert getattr(p, r["name"]) == r["default"]
        assert lib.fsw_param_check(r["id"], r["min"]) == 0 and lib.fsw_param_check(r["id"], r["max"]) == 0
        assert lib.fsw_param_check(r["id"], r["max"] + abs(r["max"]) * 1e-9 + 1e-9) == 2


def test_sensors_answered_with_command_and_decimated_telemetry(fc):
    ffi, lib = fc
    lb = _loopback(ffi, lib)
    _drain_msgs(ffi, lib, lb)
    _config(ffi, lib, lb, 19, 3.0)  # TLM_DECIMATION
    kinds = []
    for k in range(7):
        f = sensors_frame(ffi, lib, seq=100 + k, t_us=20000 * (k + 1))
        lib.fsw_loopback_feed(lb, f, len(f))
        msgs = _drain_msgs(ffi, lib, lb)
        assert msgs[0].hdr.msg_type == 0x11 and msgs[0].body.command.sensors_seq == 100 + k
        assert msgs[0].body.command.mode == 0  # not committed: idle
        assert msgs[0].body.command.flags == 0 and msgs[0].body.command.throttle == 0.0
        kinds.append(len(msgs))
    assert kinds == [2, 1, 1, 2, 1, 1, 2]


def test_tx_sequence_numbers_increment(fc):
    ffi, lib = fc
    lb = _loopback(ffi, lib)
    seqs = [m.hdr.seq for m in _drain_msgs(ffi, lib, lb)]
    for k in range(3):
        f = sensors_frame(ffi, lib, seq=k, t_us=20000 * (k + 1))
        lib.fsw_loopback_feed(lb, f, len(f))
        seqs += [m.hdr.seq for m in _drain_msgs(ffi, lib, lb)]
    assert seqs == list(range(7))


# ------------------------------------------- C <-> Python codec agreement
f32 = st.floats(width=32, allow_nan=False)
u8, u16, u32 = st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)


@st.composite
def any_message(draw):
    from harness import protocol as P

    t = draw(st.sampled_from(sorted(MEMBER)))
    if t == 0x01:
        name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", max_size=16))
        return P.Hello(draw(u16), draw(u32), name)
    if t == 0x02:
        return P.Config(draw(u16), draw(st.floats(allow_nan=False)), draw(u16))
    if t == 0x03:
        return P.ConfigAck(draw(u16), draw(u16), draw(st.floats(allow_nan=False)))
    if t == 0x10:
        return P.Sensors(
            tuple(draw(f32) for _ in range(3)), tuple(draw(f32) for _ in range(3)), draw(u32), draw(f32),
            draw(u64), draw(u8), tuple(draw(st.floats(allow_nan=False)) for _ in range(3)),
            tuple(draw(st.floats(allow_nan=False)) for _ in range(3)),
        )
    if t == 0x11:
        return P.Command(draw(f32), tuple(draw(f32) for _ in range(3)), draw(u16), draw(u8), draw(u8))
    return P.Telemetry(
        tuple(draw(st.floats(allow_nan=False)) for _ in range(3)), tuple(draw(f32) for _ in range(3)),
        tuple(draw(f32) for _ in range(4)), draw(f32), draw(f32), draw(u8), draw(u8),
        *[draw(u16) for _ in range(9)], draw(u32),
    )


def test_python_codec_interop_smoke(fc):
    """A few hand-made messages both ways (C encode -> Python decode and back)."""
    ffi, lib = fc
    from harness import protocol as P

    m = make_msg(ffi, 0x10, 77, 123456789, sensors_fields(flags=7, lrf_range=1234.5, lrf_sample_t_us=123000000))
    frame = encode_frame(ffi, lib, m)
    fr = P.decode_frame(frame)
    assert fr.msg_type == 0x10 and fr.seq == 77 and fr.t_us == 123456789
    assert P.encode_frame(fr.msg, 77, 123456789) == frame


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(any_message(), u16, u64)
def test_python_encoded_frames_decode_identically_in_c(fc, msg, seq, t_us):
    from harness import protocol as P

    ffi, lib = fc
    frame = P.encode_frame(msg, seq, t_us)
    out = ffi.new("fsw_msg_t *")
    assert lib.fsw_test_decode_frame(frame, len(frame), out) == lib.FSW_RX_OK
    assert (out.hdr.seq, out.hdr.t_us) == (seq, t_us)
    # re-encode in C: byte-identical
    assert encode_frame(ffi, lib, out) == frame


# ------------------------------------------- (c) randomized / adversarial
def _python_decode(data: bytes, chunks=None):
    from harness.protocol import FrameDecoder

    d = FrameDecoder()
    frames = []
    for ch in chunks or [data]:
        frames += d.feed(ch)
    c = d.counters.as_dict()
    return [(f.msg_type, f.seq, f.t_us) for f in frames], c


def _good_frames(ffi, lib, k: int) -> list[bytes]:
    out = []
    for i in range(k):
        if i % 3 == 0:
            out.append(sensors_frame(ffi, lib, seq=i, t_us=20000 * (i + 1), flags=7, lrf_range=100.0 + i))
        elif i % 3 == 1:
            out.append(encode_frame(ffi, lib, make_msg(ffi, 0x02, i, 0, {"param_id": 19, "flags": 0, "value": 1.0})))
        else:
            out.append(encode_frame(ffi, lib, make_msg(ffi, 0x01, i, 5, {"protocol_version": VERSION, "firmware_id": 0})))
    return out


@st.composite
def mutated_stream(draw):
    """Valid frames with random corruptions: bit flips, cuts, inserted garbage, dropped or doubled delimiters."""
    k = draw(st.integers(1, 8))
    ops = draw(st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "dropzero", "zero", "none"]),
                                  st.integers(0, 10**6), st.binary(min_size=1, max_size=300)), min_size=k, max_size=k))
    return k, ops


def _apply(frames: list[bytes], ops) -> bytes:
    return b"".join(_mutate(frames, ops))


def _mutate(frames: list[bytes], ops) -> list[bytes]:
    out = []
    for f, (op, pos, junk) in zip(frames, ops):
        f = bytearray(f)
        i = pos % len(f)
        if op == "flip":
            f[i] ^= 1 << (pos % 8)
        elif op == "cut":
            f = f[:i] + b"\x00"
        elif op == "insert":
            f = f[:i] + junk + f[i:]
        elif op == "dropzero":
            f = f[:-1]
        elif op == "zero":
            f = f[:i] + b"\x00" + f[i:]
        out.append(bytes(f))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=10))
def test_random_bytes_c_parser_agrees_with_python_decoder(fc, data, cuts):
    """Differential test: the C parser and the Python FrameDecoder see the same frames and count the same errors."""
    ffi, lib = fc
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(data[pos:pos + c])
        pos += c
    chunks.append(data[pos:])
    p = ffi.new("fsw_parser_t *")
    lib.fsw_parser_init(p)
    got = []
    for ch in chunks:
        msgs, _, _ = parse(ffi, lib, ch, parser=p)
        got += [(m.hdr.msg_type, m.hdr.seq, m.hdr.t_us) for m in msgs]
    want, wc = _python_decode(data, chunks)
    assert got == want
    assert counters(p) == wc
    # every delimiter ends at most one counted outcome; oversize runs add at most one each
    zeros = data.count(0)
    assert p.crc_errors + p.length_errors + p.unknown_msgs + p.frames_ok <= zeros
    assert p.framing_errors <= zeros + len(data) // 254 + 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated_stream())
def test_mutated_frames_c_agrees_with_python_and_resyncs(fc, case):
    ffi, lib = fc
    k, ops = case
    frames = _good_frames(ffi, lib, k)
    data = _apply(frames, ops)
    tail = sensors_frame(ffi, lib, seq=4242, t_us=1)
    stream = data + b"\x00" + tail  # a delimiter, then one good frame
    msgs, p, n = parse(ffi, lib, stream)
    got = [(m.hdr.msg_type, m.hdr.seq, m.hdr.t_us) for m in msgs]
    want, wc = _python_decode(stream)
    assert got == want and counters(p) == wc
    assert got[-1] == (0x10, 4242, 1), "a valid frame after a delimiter must parse"
    # an untouched frame whose predecessor still ends in a delimiter always survives
    mutated = _mutate(frames, ops)
    safe = sum(1 for i, (op, _, _) in enumerate(ops) if op == "none" and (i == 0 or mutated[i - 1].endswith(b"\x00")))
    assert n >= safe + 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=8))
def test_loopback_survives_arbitrary_bytes(fc, chunks):
    """Arbitrary bytes into the flight code: no crash, counters only grow, it still answers a good SENSORS."""
    ffi, lib = fc
    lb = _loopback(ffi, lib)
    out = ffi.new("uint8_t[]", 8192)
    lib.fsw_loopback_drain(lb, out, 8192)
    prev = counters(lb.fsw.parser)
    sent = b""
    for ch in chunks:
        lib.fsw_loopback_feed(lb, ch, len(ch))
        sent += ch
        now = counters(lb.fsw.parser)
        assert all(now[k] >= prev[k] for k in now)
        prev = now
        n = lib.fsw_loopback_drain(lb, out, 8192)
        _, pc = _python_decode(bytes(ffi.buffer(out, n)))
        assert sum(pc[k] for k in COUNTERS) == 0  # whatever it answers is well-formed
    assert lb.tx_overflow == 0
    good = b"\x00" + sensors_frame(ffi, lib, seq=31337, t_us=777)
    lib.fsw_loopback_feed(lb, good, len(good))
    n = lib.fsw_loopback_drain(lb, out, 8192)
    msgs, p, _ = parse(ffi, lib, bytes(ffi.buffer(out, n)))
    assert [m.hdr.msg_type for m in msgs][-2:] == [0x11, 0x12]
    cmd = [m for m in msgs if m.hdr.msg_type == 0x11][-1]
    assert cmd.body.command.sensors_seq == 31337 and cmd.hdr.t_us == 777
    tlm = msgs[-1].body.telemetry
    c = counters(lb.fsw.parser)
    assert (tlm.rx_crc_errors, tlm.rx_framing_errors, tlm.rx_length_errors, tlm.rx_unknown_msgs) == tuple(
        min(c[k], 65535) for k in COUNTERS)
    assert tlm.rx_frames_ok == c["frames_ok"] & 0xFFFF


any_f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.lists(any_f32, min_size=6, max_size=6), any_f32, u32, u8, u64), min_size=1, max_size=20))
def test_committed_flight_code_survives_hostile_sensor_values(fc, cycles):
    """NaN, inf, huge values, odd flags and intervals in SENSORS: COMMAND stays finite and in range."""
    ffi, lib = fc
    lb = _loopback(ffi, lib)
    out = ffi.new("uint8_t[]", 8192)
    for seq, (pid, flags, value) in enumerate(((1, 0, 1737400.0 + 3000.0), (0, 1, 0.0))):  # NAV_R0_X, COMMIT
        f = encode_frame(ffi, lib, make_msg(ffi, 0x02, seq, 0, {"param_id": pid, "flags": flags, "value": value}))
        lib.fsw_loopback_feed(lb, f, len(f))
        lib.fsw_loopback_drain(lb, out, 8192)
    assert lb.fsw.committed
    for k, (imu, rng, dt_us, flags, samp) in enumerate(cycles):
        fields = {"imu_dv_body": imu[:3], "imu_dtheta_body": imu[3:], "imu_dt_us": dt_us, "lrf_range": rng,
                  "lrf_sample_t_us": samp, "flags": flags}
        fr = encode_frame(ffi, lib, make_msg(ffi, 0x10, k, 20000 * (k + 1), fields))
        lib.fsw_loopback_feed(lb, fr, len(fr))
        n = lib.fsw_loopback_drain(lb, out, 8192)
        msgs, p, _ = parse(ffi, lib, bytes(ffi.buffer(out, n)))
        cmd = msgs[0].body.command
        assert msgs[0].hdr.msg_type == 0x11 and cmd.sensors_seq == k
        assert 0.0 <= cmd.throttle <= 1.0
        assert all(math.isfinite(x) for x in cmd.torque_body)
        assert cmd.mode in (0, 1, 2, 3, 4, 5, 6)
        assert msgs[1].body.telemetry.lrf_status in (0, 1, 2, 3, 4, 5)
