"""Hostile bytes on the harness side of the link: the stream decoder's memory stays bounded on
garbage that looks like deferred TELEMETRY, and ``fsil replay`` on a broken or hostile link log
gives a LinkError naming the offset and the cause (exit 2 from the CLI), never a traceback."""
from __future__ import annotations

import random
import struct
import tracemalloc

import numpy as np
import pytest

from harness import protocol as p
from harness.cli import main as fsil
from harness.link import LOG_MAGIC, LinkError, LinkLog, read_link_log, replay_link_log

TLM = frozenset({p.MsgType.TELEMETRY})


def _tlm_lookalikes(n_bytes: int, seed: int = 1) -> list[bytes]:
    """Garbage frames shaped to be deferred: COBS code byte >= 3, third byte 0x12 (TELEMETRY),
    the rest random non-zero bytes (so each fails its CRC or COBS check), 99 bytes + 0x00."""
    rng = random.Random(seed)
    out, total = [], 0
    while total < n_bytes:
        body = bytes(rng.randrange(1, 256) for _ in range(96))
        chunk = bytes([0x40, 0x02, 0x12]) + body + b"\x00"
        out.append(chunk)
        total += len(chunk)
    return out


def test_garbage_that_looks_like_telemetry_is_not_kept():
    """Old decoder: every such chunk was kept until the end of the run (34 -> 185 MB per 100 MB
    of input). Now it is checked in batches: what is held stays small whatever the input size."""
    chunks = _tlm_lookalikes(4_000_000)
    stream = [b"".join(chunks[i:i + 500]) for i in range(0, len(chunks), 500)]  # ~50 kB writes
    good = p.encode_frame(p.Telemetry((1.0, 2.0, 3.0), (0.0,) * 3, (1.0, 0.0, 0.0, 0.0), 10.0, 0.0,
                                      3, 1, 0, 0, 0, 0, 0, 1, 0), 7, 20_000)
    dec = p.FrameDecoder(raw_types=TLM, defer_types=TLM)
    import numpy  # noqa: F401  (the batch check imports it: not the decoder's memory)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for k, data in enumerate(stream):
            dec.feed(data + (good if k == len(stream) // 2 else b""))
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 600_000, f"decoder holds {held} bytes after {sum(map(len, stream))} bytes of garbage"
    assert len(dec._deferred) < 1024
    packets = dec.take_deferred()
    assert len(packets) == 1 and p.Telemetry.unpack(packets[0][12:-2]).est_alt == 10.0  # the good one survives
    assert dec.counters.errors == len(chunks) and dec.counters.frames_ok == 1
    assert len(dec.errors) == dec.max_error_log


def test_batched_checking_counts_exactly_like_the_immediate_decoder():
    chunks = _tlm_lookalikes(60_000, seed=2)
    goods = [p.encode_frame(p.Telemetry((float(k), 0.0, 0.0), (0.0,) * 3, (1.0, 0.0, 0.0, 0.0), 0.0, 0.0,
                                        3, 1, 0, 0, 0, 0, 0, k, 0), k, 20_000 * k) for k in range(300)]
    mixed = [x for pair in zip(chunks, goods) for x in pair] + chunks[len(goods):]
    batched = p.FrameDecoder(raw_types=TLM, defer_types=TLM, defer_batch=64)
    immediate = p.FrameDecoder(raw_types=TLM)
    for c in mixed:
        batched.feed(c)
    want = [f.msg for f in immediate.feed(b"".join(mixed))]
    got = batched.take_deferred()
    assert [g[12:-2] for g in got] == want and len(want) == 300
    assert batched.counters.as_dict() == immediate.counters.as_dict()


# ---------------------------------------------------------------------------- link logs
def _log(tmp_path, records: bytes, name="link.log"):
    path = tmp_path / name
    path.write_bytes(LOG_MAGIC + records)
    return path


def _rec(direction: bytes, data: bytes, length: int | None = None) -> bytes:
    return struct.pack("<cdI", direction, 0.5, len(data) if length is None else length) + data


GOOD = p.encode_frame(p.Hello(p.PROTOCOL_VERSION, 1, "fsil-ref"), 0, 0)


def test_a_good_log_replays(tmp_path):
    log = LinkLog(tmp_path / "ok.log")
    log.record(b">", p.encode_frame(p.Hello(), 0, 0))
    log.record(b"<", GOOD)
    log.close()
    frames = replay_link_log(tmp_path / "ok.log")
    assert [f.msg.firmware_name for f in frames["F>H"]] == ["fsil-ref"] and len(frames["H>F"]) == 1


@pytest.mark.parametrize("records,offset,words", [
    (_rec(b"<", GOOD) + b"\x3c\x00\x00", 8 + 13 + len(GOOD), ["truncated", "3 bytes left"]),
    (_rec(b"<", GOOD, length=0xFFFFFFF0), 8, ["claims 4294967280 bytes", "remain"]),
    (_rec(b"<", GOOD) + _rec(b"?", GOOD), 8 + 13 + len(GOOD), ["direction byte 0x3f"]),
    (_rec(b"\x00", b""), 8, ["direction byte 0x00"]),
], ids=["truncated_record", "huge_length", "bad_direction", "zero_direction"])
def test_hostile_log_gives_a_link_error_naming_offset_and_cause(tmp_path, records, offset, words):
    path = _log(tmp_path, records)
    with pytest.raises(LinkError) as ei:
        read_link_log(path)
    msg = str(ei.value)
    assert str(path) in msg and f"byte offset {offset}" in msg
    for w in words:
        assert w in msg


def test_not_a_log(tmp_path):
    path = tmp_path / "x.log"
    path.write_bytes(b"\x1b[2J not a log")
    with pytest.raises(LinkError, match="not an fsil link log") as ei:
        read_link_log(path)
    assert "\x1b" not in str(ei.value)


def test_cli_replay_hostile_log_exits_2_with_the_cause(tmp_path, capsys):
    path = _log(tmp_path, _rec(b"<", GOOD, length=10**9))
    assert fsil(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert "byte offset 8" in err and "Traceback" not in err


def test_cli_replay_escapes_device_text(tmp_path, capsys):
    evil = p.encode_frame(p.Hello(p.PROTOCOL_VERSION, 1, "\x1b]0;pwn\x07\x1b[2J"), 0, 0)
    path = _log(tmp_path, _rec(b"<", evil))
    assert fsil(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "pwn" in out


# ---------------------------------------------------------------------------- a hostile far end
# A real process on a real pty (tests/far_end/hostile_fsw.py) does the handshake like good flight
# code, answers 25 SENSORS, then misbehaves. The run ends with an outcome that names the cause, and
# the telemetry and the raw link log of everything before are on disk.

def _fly_hostile(tmp_path, mode):
    from pathlib import Path

    from harness.rigs import open_rig
    from harness.scenario_files import terminal_descent
    from test_program_rig import program_rig  # tests/ is on sys.path

    far_end = Path(__file__).parent / "far_end" / "hostile_fsw.py"
    with open_rig(program_rig(tmp_path, mode, name="hostile", far_end=far_end)) as up:
        res = up.fly(terminal_descent(t_max_s=3.0), artifacts=tmp_path / "run")
    return res, tmp_path / "run"


def _kept_on_disk(res, folder) -> dict:
    """The telemetry and link log written so far are on disk and agree with the result."""
    n = res.telemetry["t_s"].size
    assert (folder / "telemetry.csv").read_text().count("\n") == n + 1
    frames = replay_link_log(folder / "link.log")
    sensors = [f for f in frames["H>F"] if isinstance(f.msg, p.Sensors)]
    assert len(sensors) >= n
    assert res.outcome in (folder / "summary.txt").read_text().lower()
    return frames


@pytest.mark.parametrize("mode, cause", [
    ("wrong-version", "the last: protocol version 9, expected 2 (message type 0x11)"),
    ("short-command", "the last: COMMAND body of 5 bytes, expected 24"),
    ("oversize", "the last: COMMAND body of 224 bytes, expected 24"),
    ("wrong-seq", "3 COMMANDs in this run answered a SENSORS other than the one awaited"),
])
def test_refused_answers_stall_the_run_naming_why_each_was_refused(tmp_path, mode, cause):
    """Valid CRC, wrong content: every answer is refused. The old stall message said only "no
    COMMAND for 3 cycles ... last frame received: COMMAND seq 75" (the last good one), not why the
    answers that did come were refused."""
    res, folder = _fly_hostile(tmp_path, mode)
    assert res.outcome == "link-failure"
    assert "FlightCodeStalled" in res.error and "no COMMAND for 3 consecutive cycles" in res.error
    assert cause in res.error, res.error
    frames = _kept_on_disk(res, folder)
    assert 25 <= res.telemetry["t_s"].size < 30
    assert len(frames["F>H"]) >= 2 * 25  # the good answers before, kept in the log


@pytest.mark.parametrize("mode", ["nan-throttle", "inf-torque", "hello", "garbage", "flood", "flood-before-hello",
                                  "binary-name"])
def test_absurd_values_a_mid_flight_hello_and_garbage_fly_to_the_end(tmp_path, mode):
    """Held before this audit (kept as regression tests): the plant reads a non-finite throttle
    or torque as 0 and clamps the rest; a HELLO, garbage or 2,000 TELEMETRY frames between answers
    are logged and skipped; 1 MB of garbage before the HELLO is skipped; a HELLO name that is not
    ASCII is shown escaped."""
    res, folder = _fly_hostile(tmp_path, mode)
    assert res.outcome == "timeout" and res.error is None  # 3 s of a 60 s descent: flown to t_max
    assert res.telemetry["t_s"].size == 151
    for col in ("altitude_m", "v_up_mps", "tilt_deg", "mass_kg"):
        assert np.isfinite(res.telemetry[col]).all(), col
    if mode == "nan-throttle":  # what the flight code sent is recorded as sent
        assert np.isnan(res.telemetry["throttle_cmd"][30:]).all()
    if mode in ("nan-throttle", "inf-torque"):  # and the verdict says how often it sent such a value
        bad = res.nonfinite_commands
        assert 100 <= bad <= 151 - 25, bad
        assert f"NaN or infinite throttle or torque: the plant flew {bad} step(s) with it read as 0" in res.verdict()
    else:
        assert res.nonfinite_commands == 0 and "NaN or infinite" not in res.verdict()
    if mode == "binary-name":
        assert "\x1b" not in (folder / "summary.txt").read_text() and "\x1b" not in res.verdict()
    frames = _kept_on_disk(res, folder)
    if mode == "flood":
        assert len(frames["F>H"]) > 2000 * 100  # every TELEMETRY of the flood is in the log


def test_a_config_ack_for_another_parameter_fails_the_handshake_naming_both(tmp_path):
    res, folder = _fly_hostile(tmp_path, "ack-wrong-id")
    assert res.outcome == "link-failure"
    assert "CONFIG NAV_R0_X (id 1) answered by a CONFIG_ACK for id 8" in res.error, res.error
    assert replay_link_log(folder / "link.log")["F>H"]


def test_a_far_end_that_exits_mid_flight_is_named_and_the_data_kept(tmp_path):
    res, folder = _fly_hostile(tmp_path, "exit0")
    assert res.outcome == "link-failure" and "exited with status 0" in res.error, res.error
    _kept_on_disk(res, folder)


# ---------------------------------------------------------------------------- a log that cannot be written
def _fly_onto_a_full_disk(tmp_path, t_max_s: float):
    """A loopback flight of ``t_max_s`` whose link.log is /dev/full (every write: no space left)."""
    import os
    from pathlib import Path

    from harness.rigs import open_rig
    from harness.scenario_files import terminal_descent

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    folder = tmp_path / "run"
    folder.mkdir()
    os.symlink("/dev/full", folder / "link.log")
    with open_rig("loopback") as up:
        return up.fly(terminal_descent(t_max_s=t_max_s), artifacts=folder), folder


def test_a_link_log_that_cannot_be_written_ends_the_run_as_a_link_failure_naming_it(tmp_path):
    """The disk fills up under the link log (here: link.log is /dev/full). The old log raised a
    bare OSError out of fly(): no outcome, no telemetry, a traceback. Now the run ends as a link
    failure naming the file and the cause, and the telemetry up to then is written beside it."""
    res, folder = _fly_onto_a_full_disk(tmp_path, 5.0)
    assert res.outcome == "link-failure"
    assert f"{folder / 'link.log'}: cannot write the link log (No space left on device)" in res.error, res.error
    n = res.telemetry["t_s"].size
    assert 0 < n < 251  # the cycles flown before the log's buffer first failed to reach the disk
    assert (folder / "telemetry.csv").read_text().count("\n") == n + 1
    assert "link-failure" in (folder / "summary.txt").read_text().lower()


def test_a_link_log_whose_last_records_do_not_fit_ends_the_run_as_a_link_failure(tmp_path):
    """A flight short enough that its link log is still in the file's buffer at the end: the disk
    is full when the log is closed. That error used to leave fly() as an exception (no result, no
    telemetry written); it is the run's link failure, with the telemetry written beside it."""
    res, folder = _fly_onto_a_full_disk(tmp_path, 0.1)
    assert res.outcome == "link-failure"
    assert "cannot write the link log (No space left on device)" in res.error, res.error
    assert res.telemetry["t_s"].size == 6  # every cycle flown is kept
    assert (folder / "telemetry.csv").read_text().count("\n") == 7


def test_link_log_write_errors_are_link_errors_naming_the_file():
    from pathlib import Path

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    log = LinkLog("/dev/full")
    with pytest.raises(LinkError, match="/dev/full: cannot write the link log"):
        for _ in range(10_000):
            log.record(b">", GOOD)
        log.flush()
    log.record(b">", GOOD)  # stopped logging: no second error, nothing written
    log.close()


def test_replay_of_a_device_or_a_pipe_is_refused_without_reading_it(tmp_path):
    """fsil replay /dev/zero read until memory ran out (a MemoryError traceback); a named pipe
    blocked for ever. Checked in a child process with its memory capped at 1 GB."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    fifo = tmp_path / "link.log"
    os.mkfifo(fifo)
    targets = [str(fifo)] + (["/dev/zero"] if Path("/dev/zero").exists() else [])
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from harness.cli import main\n"
            "sys.exit(main(['replay', sys.argv[1]]))\n")
    for target in targets:
        try:
            cp = subprocess.run([sys.executable, "-c", code, target], capture_output=True, text=True, timeout=20,
                                cwd=Path(__file__).resolve().parent.parent)
        except subprocess.TimeoutExpired:
            pytest.fail(f"fsil replay {target} blocked")
        assert cp.returncode == 2, (target, cp.stderr[-500:])
        assert f"{target}: not a regular file (a pipe, socket or device)" in cp.stderr
