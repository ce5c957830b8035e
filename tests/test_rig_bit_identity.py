"""The serial path changes nothing: a descent with sensor noise and faults flown on the in-process
loopback and on the host program behind a pty (pyserial, the fd-level serial transport, the
link's serial receive path) gives bit-identical telemetry, every column, NaNs in the same places.

The comparison is shown to fail when the serial path loses one chunk of the flight code's
answer (a COMMAND and its TELEMETRY): the plant then holds the previous command for a cycle
and the columns part from that cycle on.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness import faults as F
from harness import protocol as p
from harness.rigs import load_rig, open_rig
from harness.runner import COLUMNS
from harness.scenario_files import terminal_descent

# noise (the library scenario's IMU and 0.5 m + 0.1 % LRF noise, seeded) and three faults: RNG-drawn
# LRF dropouts, an IMU spike, and COMMANDs lost at random (the plant holds the last one)
SCENARIO = terminal_descent(name="bit-identity", seed=23, faults=(
    F.LrfDropout(prob=0.3, burst_samples=2),
    F.ImuGlitch(mode="spike", spike_dv_mps=(0.0, 0.05, 0.4), trigger=F.below_altitude(2000.0), duration_s=0.1),
    F.CommandLoss(prob=0.2, trigger=F.below_altitude(800.0), duration_s=2.0),
))


def differing_columns(a: dict, b: dict) -> list[str]:
    """Columns of two telemetry records that are not bit-identical (dtype, length, values;
    a NaN matches only a NaN in the same row)."""
    assert a.keys() == b.keys()
    return [c for c in a if a[c].dtype != b[c].dtype
            or not np.array_equal(a[c], b[c], equal_nan=a[c].dtype.kind in "fc")]


def _host_pty():
    spec = load_rig("host-pty")
    if spec.requirements():
        pytest.skip(f"rig host-pty: missing {'; '.join(spec.requirements())}")
    return spec


@pytest.fixture(scope="module")
def on_loopback():
    with open_rig("loopback") as up:
        return up.fly(SCENARIO)


def test_a_noisy_faulted_descent_is_bit_identical_on_loopback_and_host_pty(on_loopback):
    spec = _host_pty()
    with open_rig(spec) as up:
        on_pty = up.fly(SCENARIO)
    a, b = on_loopback.telemetry, on_pty.telemetry
    # the run exercises what could go wrong: noise, NaN rows, dropped LRF samples, lost COMMANDs
    assert on_loopback.outcome == on_pty.outcome and on_loopback.outcome != "link-failure"
    assert set(COLUMNS) <= a.keys() and a["t_s"].size > 1000
    assert np.isnan(a["lrf_range_m"]).any() and not np.isnan(a["lrf_range_m"]).all()
    assert on_loopback.link_stats["lost_commands"] > 0
    assert "lrf_dropout" in " ".join(on_loopback.notes) and "imu_glitch" in " ".join(on_loopback.notes)
    assert differing_columns(a, b) == []
    for key in ("exchanges", "missed_cycles", "late_commands", "lost_commands"):
        assert on_loopback.link_stats[key] == on_pty.link_stats[key], key
    assert on_loopback.touchdown == on_pty.touchdown


@pytest.mark.parametrize("damage", ["lose", "reorder"])
def test_the_comparison_catches_a_serial_path_that_loses_or_reorders_an_answer(on_loopback, damage):
    """Lose the flight code's answer to the SENSORS of cycle 300 between the pty and the link, or
    hand it over only after the next cycle's answer: that cycle's COMMAND is missed (the plant
    holds the previous one; a reordered one arrives late), and the telemetry parts from the
    loopback's at exactly that row, while every row before it still matches."""
    spec = _host_pty()
    lost_cycle = 300
    with open_rig(spec) as up:
        transport = up.transport
        write, read = transport.write, transport.read
        outgoing = p.FrameDecoder()
        sensors_sent = [0]
        lost = []

        def counting_write(data: bytes) -> None:
            sensors_sent[0] += sum(f.msg_type == p.MsgType.SENSORS for f in outgoing.feed(data))
            write(data)

        def lossy_read(timeout_s: float = 0.0) -> bytes:
            data = read(timeout_s)
            if data and sensors_sent[0] == lost_cycle + 1 and not lost:
                lost.append(data)
                return b""
            if data and damage == "reorder" and len(lost) == 1 and sensors_sent[0] == lost_cycle + 2:
                lost.append(data)
                return data + lost[0]  # the next cycle's answer, then the held-back one
            return data
        transport.write, transport.read = counting_write, lossy_read
        damaged = up.fly(SCENARIO, cycle_timeout_s=0.05)
    assert lost and lost[0].count(0) >= 1  # at least one whole frame (its COMMAND) went missing
    assert damaged.link_stats["missed_cycles"] == 1
    assert damaged.link_stats["late_commands"] == (1 if damage == "reorder" else 0)
    a, b = on_loopback.telemetry, damaged.telemetry
    bad = differing_columns(a, b)
    assert "throttle_cmd" in bad
    head = {c: v[:lost_cycle] for c, v in a.items()}
    assert differing_columns(head, {c: v[:lost_cycle] for c, v in b.items()}) == []
    assert a["throttle_cmd"][lost_cycle] != b["throttle_cmd"][lost_cycle]
    assert b["throttle_cmd"][lost_cycle] == b["throttle_cmd"][lost_cycle - 1]  # held


def test_the_serial_transport_on_a_real_pty_tells_no_data_from_a_closed_far_end_and_writes_everything():
    """pyserial leaves the tty at VMIN 0: an empty read there returns 0 bytes, as an end of file
    does. The transport must answer b"" when nothing came (also with time-out 0), the bytes when
    they came, write a burst far larger than the pty buffer whole (the far end reading slowly),
    and raise TransportClosed once the far end is gone."""
    import os
    import threading

    from harness.transports import TransportClosed
    from harness.transports.serial_port import SerialTransport

    master, slave = os.openpty()
    t = SerialTransport(os.ttyname(slave))
    os.close(slave)
    try:
        assert t.read(0.0) == b"" and t.read(0.01) == b""
        os.write(master, b"\x01\x02\x00")
        assert t.read(1.0) == b"\x01\x02\x00"
        burst = bytes(range(256)) * 1024  # 256 KiB: many times a pty's buffer
        got = bytearray()

        def slow_reader():
            while len(got) < len(burst):
                got.extend(os.read(master, 4096))
        reader = threading.Thread(target=slow_reader)
        reader.start()
        t.write(burst)
        reader.join(10.0)
        assert bytes(got) == burst
    finally:
        os.close(master)
    with pytest.raises(TransportClosed, match="the other end closed"):
        for _ in range(3):
            t.read(0.5)
    t.close()


def test_link_faults_on_a_serial_rig_are_bit_identical_and_not_waited_for():
    """SENSORS dropped on the way up and COMMANDs dropped on the way down by the link-fault layer:
    the harness knows their answers cannot come and counts each cycle missed at once (on a
    serial rig it used to wait the rig's cycle time-out, 2 s, for every one of them); the run
    is the loopback's bit for bit."""
    spec = _host_pty()
    sc = terminal_descent(name="link-drops", seed=7, t_max_s=3.0, faults=(
        F.LinkDrop(prob=0.15, direction="up", message="SENSORS", trigger=F.at_time(0.5)),
        F.LinkDrop(prob=0.15, direction="down", message="COMMAND", trigger=F.at_time(0.5)),
    ))
    with open_rig("loopback") as up:
        ref = up.fly(sc)
    with open_rig(spec) as up:
        pty = up.fly(sc)
    missed = pty.link_stats["missed_cycles"]
    assert missed > 10 and missed == ref.link_stats["missed_cycles"]
    assert pty.link_stats["answers_known_lost"] == missed   # none waited for
    assert differing_columns(ref.telemetry, pty.telemetry) == []
    assert pty.outcome == ref.outcome == "timeout"
