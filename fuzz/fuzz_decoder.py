"""Atheris (libFuzzer for Python) target: the Python link decoder, differential against the C
parser of the flight code (through cffi).

The input is cut into chunks (first byte: chunk length 1-64) and fed, as a transport would
deliver it, to four decoders at once: ``harness.protocol.FrameDecoder`` (messages unpacked),
the same with every body kept raw, the same driven as the serial link drives it (each read
offered to ``take_answer`` first), and the C streaming parser (``fsw_parser_push``). On every
input: no exception escapes the Python decoder, both count the same frames and the same errors
by kind (frames_ok, crc, framing, length, unknown), and every frame agrees on type, sequence,
time and body bytes (the C side re-packs what it decoded; bit-exact, NaN payloads included).

Run: ``python fuzz/fuzz_decoder.py [libFuzzer options] CORPUS_DIR`` (fuzz/run does this).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from harness import protocol as p  # noqa: E402

from harness.targets import load_flight_code  # noqa: E402

FFI, LIB = load_flight_code()
ALL_TYPES = frozenset(int(t) for t in p.MsgType)
COUNTERS = ("frames_ok", "crc_errors", "framing_errors", "length_errors", "unknown_msgs")


def c_parse(chunks):
    """The C parser over the chunks: (counters, [(type, seq, t_us, body bytes)])."""
    parser = FFI.new("fsw_parser_t *")
    LIB.fsw_parser_init(parser)
    msg = FFI.new("fsw_msg_t *")
    packet = FFI.new("uint8_t[]", 256)
    frames = []
    for chunk in chunks:
        for b in chunk:
            if LIB.fsw_parser_push(parser, b, msg):
                n = LIB.fsw_msg_pack(msg, packet, 256)
                raw = bytes(FFI.buffer(packet, n))
                frames.append((msg.hdr.msg_type, msg.hdr.seq, msg.hdr.t_us, raw[12:-2]))
    return tuple(getattr(parser, k) for k in COUNTERS), frames


def py_parse(chunks, raw_types):
    dec = p.FrameDecoder(raw_types=raw_types)
    frames = []
    for chunk in chunks:
        frames += dec.feed(chunk)
    return tuple(getattr(dec.counters, k) for k in COUNTERS), frames, dec


def answer_first_parse(chunks):
    """The serial link's way (``FlightLink``): each read is offered to ``take_answer`` first, with
    the ``sensors_seq`` its first frame carries if that is a COMMAND (so the quick way is taken
    whenever it may be), and the rest fed after it; else the read is fed whole."""
    dec = p.FrameDecoder()
    frames = []
    for chunk in chunks:
        seq = 0
        body = chunk.lstrip(b"\x00")  # (flush delimiters before the first frame)
        end = body.find(0)
        if end > 0:
            try:
                first = p.decode_frame(body[:end])
                if first.msg_type == p.MsgType.COMMAND:
                    seq = first.msg.sensors_seq
            except p.LinkError:
                pass
        answer = dec.take_answer(chunk, seq)
        if answer is None:
            frames += dec.feed(chunk)
        else:
            command, rx_seq, t_us, rest = answer
            frames.append(p.Frame(int(p.MsgType.COMMAND), rx_seq, t_us, command))
            frames += dec.feed(rest)
    return tuple(getattr(dec.counters, k) for k in COUNTERS), frames


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    step = data[0] % 64 + 1
    chunks = [data[i:i + step] for i in range(1, len(data), step)]
    counters_raw, raw, _ = py_parse(chunks, ALL_TYPES)
    counters_full, full, dec = py_parse(chunks, frozenset())
    counters_c, cframes = c_parse(chunks)
    counters_answer, answer_first = answer_first_parse(chunks)
    if counters_answer != counters_full or list(map(repr, answer_first)) != list(map(repr, full)):  # (NaN-safe)
        raise AssertionError(f"answer-first decoding differs: counters {counters_answer} {counters_full}, "
                             f"frames {answer_first} {full}")
    if counters_raw != counters_full:
        raise AssertionError(f"Python raw vs unpacked decoder counters differ: {counters_raw} {counters_full}")
    if counters_raw != counters_c:
        raise AssertionError(f"counters differ: Python {dict(zip(COUNTERS, counters_raw))} "
                             f"C {dict(zip(COUNTERS, counters_c))}")
    if len(raw) != len(cframes) or len(full) != len(raw):
        raise AssertionError(f"frame counts differ: Python {len(raw)}/{len(full)}, C {len(cframes)}")
    for fr, ff, fc in zip(raw, full, cframes):
        if (fr.msg_type, fr.seq, fr.t_us, bytes(fr.msg)) != fc:
            raise AssertionError(f"frame differs: Python {fr} C {fc}")
        if (ff.msg_type, ff.seq, ff.t_us) != (fr.msg_type, fr.seq, fr.t_us) or not isinstance(ff.msg, tuple):
            raise AssertionError(f"unpacked frame differs from the raw one: {ff} {fr}")
    if dec.pending > p.MAX_RUN:
        raise AssertionError(f"decoder holds {dec.pending} bytes without a delimiter (bound {p.MAX_RUN})")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
