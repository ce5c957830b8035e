"""Regenerate protocol_v2.json: PYTHONPATH=. python tests/vectors/generate.py

The file is the contract between the Python codec and the C codec. It is
generated once from hand-chosen field values (all exactly representable in
binary32) and then frozen in git: a codec change that alters any byte fails
both sides' tests until the file is deliberately regenerated and reviewed.
"""
import json
from pathlib import Path

from harness import protocol as p

VECTORS = [
    ("hello_banner", p.Hello(2, 0x5EED1234, "fsil-ref"), 0, 0),
    ("config_thrust_max", p.Config(15, 4000.0, 0), 1, 0),
    ("config_commit", p.Config(p.COMMIT_PARAM_ID, 0.0, p.CONFIG_COMMIT), 2, 0),
    ("config_ack_out_of_range", p.ConfigAck(17, p.ConfigStatus.OUT_OF_RANGE, 0.2), 3, 0),
    ("config_ack_unknown_id", p.ConfigAck(31, p.ConfigStatus.UNKNOWN_ID, 0.0), 4, 0),
    ("config_ack_committed", p.ConfigAck(p.COMMIT_PARAM_ID, p.ConfigStatus.COMMITTED, 0.0), 5, 0),
    ("config_ack_commit_refused", p.ConfigAck(p.COMMIT_PARAM_ID, p.ConfigStatus.COMMIT_REFUSED, 1.0), 6, 0),
    ("sensors_lrf_valid", p.Sensors((0.03125, -0.0078125, 0.0625), (0.0009765625, -0.00048828125, 0.0),
                                    20000, 2987.5, 1_020_000,
                                    p.SENSORS_LRF_VALID | p.SENSORS_IMU_VALID | p.SENSORS_LRF_NEW,
                                    (1.5, -0.25, 101.125), (0.001953125, -0.0078125, 3.0e-7)), 51, 1_220_000),
    ("sensors_lrf_invalid", p.Sensors((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 20000, 0.0, 0, p.SENSORS_IMU_VALID,
                                      (-12345.678901234567, 0.1, 1e-300), (0.0, -0.0, 2.0 ** -40)), 65535,
     2**40 + 7),
    ("sensors_first_frame", p.Sensors((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0, 0.0, 0, 0,
                                      (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)), 0, 0),
    ("command_terminal", p.Command(0.4375, (1.5, -2.25, 0.0), 51, p.Phase.TERMINAL, p.COMMAND_ENGINE_ON), 52, 1_220_000),
    ("command_safe_mode", p.Command(0.0, (0.0, 0.0, 0.0), 60, p.Phase.SAFE,
                                    p.COMMAND_SAFE_MODE | p.COMMAND_SENSORS_REJECTED), 61, 1_400_000),
    ("telemetry_latched_out", p.Telemetry((1740400.5, -12.25, 3.0), (-60.5, 1.25, 0.0), (1.0, 0.0, 0.0, 0.0),
                                          3000.0, -2950.0, p.Phase.APPROACH, p.LrfStatus.LATCHED_OUT, 3,
                                          1, 2, 3, 4, 65535, 0, 7, 65535, 0x80000001), 53, 1_220_000),
    ("telemetry_lrf_pending", p.Telemetry((1738400.0, 0.5, -0.5), (-2.0, 0.0, 0.25), (0.5, 0.5, 0.5, 0.5),
                                          900.0, 0.0, p.Phase.SAFE, p.LrfStatus.PENDING, 0,
                                          0, 0, 0, 0, 12, 1, 0, 0, 0), 54, 1_240_000),
]


def fields(msg):
    out = {}
    for name in msg._fields:
        v = getattr(msg, name)
        out[name] = list(v) if isinstance(v, tuple) else (int(v) if isinstance(v, int) else v)
    return out


def main():
    vectors, frames = [], {}
    for name, msg, seq, t_us in VECTORS:
        pkt = p.encode_packet(msg, seq, t_us)
        frame = p.encode_frame(msg, seq, t_us)
        frames[name] = frame
        vectors.append({"name": name, "msg_type": int(msg.MSG_TYPE), "type_name": msg.MSG_TYPE.name,
                        "seq": seq, "t_us": t_us, "fields": fields(msg),
                        "packet_hex": pkt.hex(), "frame_hex": frame.hex()})
    good_a, good_b = frames["sensors_lrf_valid"], frames["command_terminal"]
    bad_crc = bytearray(p.encode_packet(next(v[1] for v in VECTORS if v[0] == "sensors_lrf_valid"), 9, 5))
    bad_crc[-1] ^= 0x01
    from cobs import cobs
    bad_crc_frame = cobs.encode(bytes(bad_crc)) + b"\x00"
    unknown = bytearray(p.HEADER.pack(p.PROTOCOL_VERSION, 0x7F, 4, 0) + b"\x01\x02")
    unknown += p.CRC.pack(p.crc16(bytes(unknown)))
    unknown_frame = cobs.encode(bytes(unknown)) + b"\x00"
    wrong_len = bytearray(p.HEADER.pack(p.PROTOCOL_VERSION, p.MsgType.COMMAND, 5, 0) + b"\x00" * 10)
    wrong_len += p.CRC.pack(p.crc16(bytes(wrong_len)))
    wrong_len_frame = cobs.encode(bytes(wrong_len)) + b"\x00"
    # a v1 SENSORS frame (44-byte body, version byte 1): refused as a length error, like any other version
    v1 = bytearray(p.HEADER.pack(1, p.MsgType.SENSORS, 6, 0) + b"\x00" * 44)
    v1 += p.CRC.pack(p.crc16(bytes(v1)))
    v1_frame = cobs.encode(bytes(v1)) + b"\x00"
    streams = [
        {"name": "two_good_frames_split_anywhere", "stream_hex": (good_a + good_b).hex(),
         "expect_frames": ["sensors_lrf_valid", "command_terminal"],
         "expect_counters": {"crc_errors": 0, "framing_errors": 0, "length_errors": 0, "unknown_msgs": 0}},
        {"name": "bad_crc_then_good", "stream_hex": (bad_crc_frame + good_a).hex(),
         "expect_frames": ["sensors_lrf_valid"],
         "expect_counters": {"crc_errors": 1, "framing_errors": 0, "length_errors": 0, "unknown_msgs": 0}},
        {"name": "truncated_then_good", "stream_hex": (good_a[:9] + b"\x00" + good_b).hex(),
         "expect_frames": ["command_terminal"],
         "expect_counters": {"crc_errors": 0, "framing_errors": 1, "length_errors": 0, "unknown_msgs": 0}},
        {"name": "garbage_between_frames", "stream_hex": (good_a + bytes([0x13, 0x37, 0xFF, 0x42]) + b"\x00" + good_b).hex(),
         "expect_frames": ["sensors_lrf_valid", "command_terminal"],
         "expect_counters": {"crc_errors": 0, "framing_errors": 1, "length_errors": 0, "unknown_msgs": 0}},
        {"name": "unknown_type_then_good", "stream_hex": (unknown_frame + good_b).hex(),
         "expect_frames": ["command_terminal"],
         "expect_counters": {"crc_errors": 0, "framing_errors": 0, "length_errors": 0, "unknown_msgs": 1}},
        {"name": "wrong_length_then_good", "stream_hex": (wrong_len_frame + good_a).hex(),
         "expect_frames": ["sensors_lrf_valid"],
         "expect_counters": {"crc_errors": 0, "framing_errors": 0, "length_errors": 1, "unknown_msgs": 0}},
        {"name": "oversize_run_then_good", "stream_hex": (bytes([0x55]) * 300 + b"\x00" + good_a).hex(),
         "expect_frames": ["sensors_lrf_valid"],
         "expect_counters": {"crc_errors": 0, "framing_errors": 1, "length_errors": 0, "unknown_msgs": 0}},
        {"name": "v1_frame_then_good", "stream_hex": (v1_frame + good_b).hex(),
         "expect_frames": ["command_terminal"],
         "expect_counters": {"crc_errors": 0, "framing_errors": 0, "length_errors": 1, "unknown_msgs": 0}},
        {"name": "empty_frames_are_flushes", "stream_hex": (b"\x00\x00" + good_b + b"\x00").hex(),
         "expect_frames": ["command_terminal"],
         "expect_counters": {"crc_errors": 0, "framing_errors": 0, "length_errors": 0, "unknown_msgs": 0}},
    ]
    doc = {"protocol_version": p.PROTOCOL_VERSION, "crc": "crc-ccitt-false", "crc_check_123456789": "29b1",
           "vectors": vectors, "streams": streams}
    out = Path(__file__).with_name(f"protocol_v{p.PROTOCOL_VERSION}.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}: {len(vectors)} vectors, {len(streams)} streams")


if __name__ == "__main__":
    main()
