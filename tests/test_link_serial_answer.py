"""The serial rigs' lockstep answer (FlightLink on a transport that is not in-process).

A read that starts with the COMMAND answering the SENSORS just written is decoded first
(``FrameDecoder.take_answer``) and the bytes after it (the TELEMETRY) are fed to the decoder while
the flight code works on the next SENSORS. Whatever the bytes' chunking, the link must give the
same commands, counters, byte counts and TELEMETRY as the general decoder does."""
import numpy as np
import pytest

from harness import protocol as p
from harness.link import FlightLink


def _answer(sensors_seq: int, k: int) -> tuple[bytes, bytes]:
    """(COMMAND frame, TELEMETRY frame) a flight code sends for SENSORS ``sensors_seq``, cycle ``k``."""
    command = p.encode_frame(p.Command(0.25 + 0.001 * k, (0.0, 0.5, -0.5), sensors_seq, 3, 1), 2 * k, 20_000 * k)
    telemetry = p.encode_frame(p.Telemetry((1.7374e6 + k, 0.0, 0.0), (-1.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0),
                                           100.0 - k, 0.5, 3, 1, *([k] * 10)), 2 * k + 1, 20_000 * k)
    return command, telemetry


class ScriptedFarEnd:
    """A flight code's side of a serial link, answering each SENSORS written, its bytes delivered
    in the reads as ``shape`` says: "whole" (COMMAND and TELEMETRY in one read), "late-telemetry"
    (the TELEMETRY in the next read, after the next SENSORS), "leading-delimiter" (a 0x00 before
    each frame as well as after it), "bytewise" (one byte per read),
    "noise" (a garbage run and a stray HELLO before each answer)."""

    synchronous = False
    answer_lost = False
    name = "scripted"

    def __init__(self, shape: str):
        self.shape = shape
        self.queue: list[bytes] = []
        self.carry = b""
        self.k = 0

    def write(self, data: bytes) -> None:
        frame = p.decode_frame(data[:-1])
        assert frame.msg_type == p.MsgType.SENSORS
        command, telemetry = _answer(frame.seq, self.k)
        self.k += 1
        if self.shape == "whole":
            self.queue.append(command + telemetry)
        elif self.shape == "late-telemetry":
            self.queue.append(self.carry + command)
            self.carry = telemetry
        elif self.shape == "leading-delimiter":  # a flight code that starts each frame with 0x00 too
            self.queue.append(b"\x00" + command + b"\x00" + telemetry)
        elif self.shape == "bytewise":
            self.queue += [bytes([b]) for b in command + telemetry]
        else:
            hello = p.encode_frame(p.Hello(p.PROTOCOL_VERSION, 0xC0FFEE, "fsw"), 0, 0)
            self.queue.append(b"\x13\x37\xff" * 5 + b"\x00" + hello + command + telemetry)

    def read(self, timeout_s: float) -> bytes:
        return self.queue.pop(0) if self.queue else b""

    def describe(self) -> str:
        return self.name


def _fly(shape: str, cycles: int = 40):
    far_end = ScriptedFarEnd(shape)
    link = FlightLink(far_end)
    reading = np.zeros(len(p.SENSORS_READING_FIELDS))
    link.bind_reading(reading)
    fed = []
    feed = link._decoder.feed
    link._decoder.feed = lambda data: (fed.append(bytes(data)), feed(data))[1]
    commands = []
    for k in range(cycles):
        reading[:8] = (0.0, 0.0, 0.03 * k, 0.0, 0.0, 0.0, 0.02, 1.0)
        commands.append(link.exchange_reading(100.0 + k, 20_000 * k, p.SENSORS_LRF_VALID, 20_000 * (k + 1)))
    far_end.queue.append(far_end.carry)
    link.drain()
    tlm = link.telemetry_records()
    return commands, link, tlm, fed


@pytest.mark.parametrize("shape", ["late-telemetry", "leading-delimiter", "bytewise", "noise"])
def test_the_answer_taken_first_gives_what_the_general_decoder_gives(shape):
    commands, link, tlm, _ = _fly("whole")
    other_commands, other, other_tlm, _ = _fly(shape)
    assert commands == other_commands and all(c is not None for c in commands)
    assert [c.sensors_seq for c in commands] == list(range(40))
    assert np.array_equal(tlm, other_tlm) and len(tlm) == 40
    assert link.stats.exchanges == other.stats.exchanges == 40
    assert link.stats.late_commands == other.stats.late_commands == 0
    assert link.log.bytes_tx == other.log.bytes_tx
    assert link.last_sent[:3] == other.last_sent[:3]
    counts, other_counts = link.decoder.counters.as_dict(), other.decoder.counters.as_dict()
    if shape == "noise":  # the garbage runs are counted there, and the HELLOs are good frames
        assert other_counts["frames_ok"] == counts["frames_ok"] + 40 and other.hello is not None
        other_counts.update(frames_ok=counts["frames_ok"], framing_errors=0, crc_errors=0)
    elif shape == "leading-delimiter":
        assert other.log.bytes_rx == link.log.bytes_rx + 2 * 40
    else:
        assert link.log.bytes_rx == other.log.bytes_rx
    assert counts == other_counts and counts["frames_ok"] == 80


def test_a_whole_answer_is_taken_without_the_general_decoder():
    """The usual read (COMMAND then its TELEMETRY) does not go through ``feed`` for the COMMAND:
    only the TELEMETRY after it does, before the next read; ``late-telemetry`` reads keep a COMMAND
    last, so it is taken first too."""
    for shape in ("whole", "late-telemetry", "leading-delimiter"):
        _, link, _, fed = _fly(shape)
        assert fed and not any(p.MsgType.COMMAND == f[2] for f in fed), shape
    _, _, _, fed = _fly("bytewise")
    assert len(fed) > 40 * 39  # byte by byte, every byte goes the general way
