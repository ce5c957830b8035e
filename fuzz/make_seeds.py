"""Write the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from the protocol test
vectors (tests/vectors/protocol_v2.json) and a few hand-made structured inputs. Re-run after
the vectors change: ``python fuzz/make_seeds.py``. Seeds are named by content hash, as libFuzzer
names what it adds."""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
VECTORS = HERE.parent / "tests" / "vectors" / "protocol_v2.json"


def write(target: str, data: bytes) -> None:
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> None:
    vec = json.loads(VECTORS.read_text())
    frames = [bytes.fromhex(v["frame_hex"]) for v in vec["vectors"]]
    streams = [bytes.fromhex(s["stream_hex"]) for s in vec["streams"]]
    # byte stream and decoder: first byte = chunk length - 1
    for chunk in (0, 7, 63):
        write("rx_bytes", bytes([chunk]) + b"".join(frames))
        write("decoder", bytes([chunk]) + b"".join(frames))
    for s in streams:
        write("rx_bytes", bytes([5]) + s)
        write("decoder", bytes([5]) + s)
    for f in frames:
        write("decoder", bytes([63]) + f)
    # a lockstep read: the COMMAND first, its TELEMETRY after it (the serial link's answer-first way)
    commands = [f for f, v in zip(frames, vec["vectors"]) if v["type_name"] == "COMMAND"]
    telemetry = [f for f, v in zip(frames, vec["vectors"]) if v["type_name"] == "TELEMETRY"]
    for c in commands:
        for t in telemetry[:1]:
            write("decoder", bytes([63]) + c + t + c + t)
    # structured frames (fuzz_frames.c): head bit 0 = committed start; opcodes % 5
    cfg, commit, ideal, raw, lost = 0, 1, 2, 3, 4
    write("frames", bytes([1]) + bytes([ideal, 0]) * 50)                          # a clean descent
    write("frames", bytes([1]) + bytes([ideal, 0] * 10 + [lost] * 3 + [ideal, 0] * 10))  # lost frames
    write("frames", bytes([1]) + bytes([ideal, 0] * 5 + [ideal, 1]) + struct.pack("<f", 999.0)
          + bytes([ideal, 0] * 5))                                                    # accelerometer spike
    write("frames", bytes([1]) + bytes([ideal, 0] * 5 + [ideal, 3]) + struct.pack("<f", 1.0e6)
          + bytes([ideal, 0] * 5))                                                    # corrupted dt
    write("frames", bytes([1]) + bytes([ideal, 0] * 5 + [ideal, 4 + 8 * 3, 0, 0, 0, 0]) + bytes([ideal, 0] * 5))
    write("frames", bytes([0, cfg, 0, 8, commit]) + bytes([ideal, 0] * 5))        # near-centre CONFIG, COMMIT
    write("frames", bytes([1, raw]) + struct.pack("<HI", 1, 20000) + struct.pack("<6fIfQB", 0, 0, 0.03, 0, 0, 0,
                                                                                   20000, 0, 0, 2)
          + struct.pack("<6d", 0, 0, 0.03, 0, 0, 0) + bytes([ideal, 0] * 3))


if __name__ == "__main__":
    main()
