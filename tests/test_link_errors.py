"""Bad input on the live link, both directions: a frame with a bad CRC, a truncated frame,
garbage between frames and an unknown message type are each counted, dropped, resynchronised
on the next delimiter, and reported in the run summary, while the descent still lands."""
from cobs import cobs

from harness import protocol as p
from harness.rigs import open_rig
from harness.scenario_files import terminal_descent


def _bad_crc(frame: bytes) -> bytes:
    pkt = bytearray(cobs.decode(frame[:-1]))
    pkt[-1] ^= 0x5A
    return cobs.encode(bytes(pkt)) + b"\x00"


def _unknown_type(seq: int) -> bytes:
    body = p.HEADER.pack(p.PROTOCOL_VERSION, 0x6E, seq, 0) + b"\x01\x02\x03"
    return cobs.encode(body + p.CRC.pack(p.crc16(body))) + b"\x00"


INJECTIONS = {  # what is injected ahead of a good frame, and the counter it must move
    "bad_crc": "crc_errors",
    "truncated": "framing_errors",
    "garbage": "framing_errors",
    "unknown": "unknown_msgs",
}


class Corrupting:
    """Wraps a transport; every ``every``-th write (H->F) and read (F->H) gets one kind of bad
    input in front of the real bytes, cycling through INJECTIONS."""

    def __init__(self, inner, every=97):
        self.inner, self.every = inner, every
        self.synchronous = inner.synchronous
        self.name = inner.name
        self.diagnose = None
        self.n_write = self.n_read = 0
        self.sent = {k: 0 for k in INJECTIONS}
        self.received = {k: 0 for k in INJECTIONS}

    def _junk(self, k: int, good: bytes, tally: dict) -> bytes:
        kind = list(INJECTIONS)[(k // self.every) % len(INJECTIONS)]
        tally[kind] += 1
        if kind == "bad_crc":
            return _bad_crc(good)
        if kind == "truncated":
            return good[:5] + b"\x00"
        if kind == "garbage":
            return b"\x13\x37\xff\x42\x99" + b"\x00"
        return _unknown_type(k & 0xFFFF)

    def write(self, data):
        self.n_write += 1
        if self.n_write % self.every == 0 and data.count(0) == 1:
            data = self._junk(self.n_write, data, self.sent) + data
        self.inner.write(data)

    def read(self, timeout_s):
        data = self.inner.read(timeout_s)
        if data and data.endswith(b"\x00"):
            self.n_read += 1
            if self.n_read % self.every == 0:
                first = data[:data.index(0) + 1]
                data = self._junk(self.n_read, first, self.received) + data
        return data

    def close(self):
        self.inner.close()

    def describe(self):
        return self.inner.name


def test_bad_frames_both_ways_are_counted_dropped_and_reported():
    with open_rig("loopback") as up:
        bad = Corrupting(up.transport)
        up.transport = bad
        res = up.fly(terminal_descent())
    assert res.outcome == "landed", res.verdict()
    assert min(bad.sent.values()) >= 8 and min(bad.received.values()) >= 8, (bad.sent, bad.received)
    # harness side: what the flight code's bytes carried
    h = res.link_counters
    assert h["crc_errors"] == bad.received["bad_crc"]
    assert h["framing_errors"] == bad.received["truncated"] + bad.received["garbage"]
    assert h["unknown_msgs"] == bad.received["unknown"]
    # flight-code side, from its TELEMETRY counters (the last telemetry frame of the run)
    f = res.flight_counters
    assert f["rx_crc_errors"] == bad.sent["bad_crc"]
    assert f["rx_framing_errors"] == bad.sent["truncated"] + bad.sent["garbage"]
    assert f["rx_unknown_msgs"] == bad.sent["unknown"]
    # nothing good was lost: every SENSORS was answered
    assert res.link_stats["missed_cycles"] == 0
    text = res.verdict()
    assert "link errors: harness side" in text
    assert f"'crc_errors': {h['crc_errors']}" in text and f"'rx_unknown_msgs': {f['rx_unknown_msgs']}" in text
