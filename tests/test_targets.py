"""The non-loopback targets: the host program on a pty and the Cortex-M4F firmware in QEMU.

Each test skips, naming the tool, when gcc / arm-none-eabi-gcc / qemu-system-arm is absent.
FSIL_FSW_SRC=<dir> builds the targets from another portable source directory.
"""
from __future__ import annotations

import os
import random
import select
import signal
import socket
import time
from pathlib import Path

import pytest

from harness import protocol as p
from harness import targets as T
from harness.link import FlightLink, LinkError
from harness.params import load_param_table
from harness.rigs import RigSpec, open_rig
from harness.transports.base import TransportError
from harness.transports.serial_port import SerialTransport

pytestmark = pytest.mark.timeout(120)

SRC_DIR = os.environ.get("FSIL_FSW_SRC") or None


def _need(target: str) -> None:
    missing = T.missing_tools(target)
    if missing:
        pytest.skip(f"{target} target: {missing[0]} not found")
    src = Path(SRC_DIR) if SRC_DIR else T.FIRMWARE_DIR
    if not (src / "fsw_app.h").exists():
        pytest.skip(f"flight code not there yet: {src / 'fsw_app.h'} not found")


# ---------------------------------------------------------------------------------------
# Builds and budgets
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def host_exe() -> Path:
    _need("host")
    return T.build_host_program(SRC_DIR)


@pytest.fixture(scope="module")
def fw_elf() -> Path:
    _need("qemu")
    return T.build_qemu_firmware(SRC_DIR)


def test_host_program_builds_warning_free(host_exe):
    assert "-Werror" in T.HOST_CFLAGS and "-Wextra" in T.HOST_CFLAGS and "-Wall" in T.HOST_CFLAGS
    assert host_exe.is_file() and os.access(host_exe, os.X_OK)


def test_firmware_builds_warning_free_without_heap(fw_elf):
    assert {"-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-mfloat-abi=hard"} <= set(T.ARM_CFLAGS)
    syms = set(T.defined_symbols(fw_elf))
    assert "Reset_Handler" in syms and "fsw_init" in syms and "fsw_rx_bytes" in syms
    assert not syms & set(T.FORBIDDEN_SYMBOLS)


def test_rebuild_is_cached_and_keyed_by_source(fw_elf, tmp_path):
    assert T.build_qemu_firmware(SRC_DIR) == fw_elf  # same sources: the cached build
    src = Path(SRC_DIR) if SRC_DIR else T.FIRMWARE_DIR
    copy = tmp_path / "src"
    copy.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    (copy / "fsw_hal.h").write_text((src / "fsw_hal.h").read_text() + "\n/* changed */\n")
    other = T.build_qemu_firmware(copy, out_dir=tmp_path / "cache")
    assert other != fw_elf and other.is_file()


def test_firmware_fits_budgets(fw_elf):
    sizes = T.check_budgets(fw_elf)
    assert sizes["flash"] == sizes["text"] + sizes["data"] <= T.FLASH_BUDGET
    assert sizes["ram"] == sizes["data"] + sizes["bss"] <= T.RAM_BUDGET
    assert sizes["bss"] >= T.STACK_SIZE  # the stack is counted


def test_budget_check_fails_when_exceeded(fw_elf):
    with pytest.raises(T.BudgetError, match=r"flash \(text \+ data\) is \d+ bytes, budget 1024: \d+ bytes over"):
        T.check_budgets(fw_elf, flash_max=1024)
    with pytest.raises(T.BudgetError, match=r"RAM \(data \+ bss \+ stack\) is \d+ bytes, budget 512: \d+ bytes over"):
        T.check_budgets(fw_elf, ram_max=512)


def test_heap_use_fails_the_link(tmp_path):
    if T.missing_tools("arm"):
        pytest.skip(f"{T.missing_tools('arm')[0]} not found")
    c = tmp_path / "heap.c"
    c.write_text("#include <stdlib.h>\nvoid *use_heap(void);\nvoid *use_heap(void) { return malloc(16); }\n"
                 "int main(void) { return use_heap() != 0; }\n")
    start = T.MPS2_DIR / "startup.c", T.MPS2_DIR / "cmsdk_uart.c"
    cmd = [T.ARM_CC, *T.ARM_CFLAGS, f"-I{T.MPS2_DIR}", str(c), *map(str, start), *T.ARM_LDFLAGS,
           f"-T{T.MPS2_DIR / 'mps2_an386.ld'}", *T.ARM_LIBS, "-o", str(tmp_path / "heap.elf")]
    with pytest.raises(T.BuildError, match="no heap"):
        T.run_compiler(cmd, "heap test link")


# ---------------------------------------------------------------------------------------
# Running targets: brought up as the rigs do (harness.rigs), spoken to through FlightLink
# ---------------------------------------------------------------------------------------
TARGETS = {"host": "host-pty", "qemu-socket": "qemu-m4", "qemu-pty": "qemu-m4"}


@pytest.fixture(params=list(TARGETS))
def target(request):
    """A running target on its rig: ``rig.transport``, ``rig.process``, and a FlightLink as ``link``."""
    kind = request.param
    request.getfixturevalue("host_exe" if kind == "host" else "fw_elf")  # build (or skip) first
    spec = RigSpec(name=kind, kind=TARGETS[kind], source_dir=Path(SRC_DIR) if SRC_DIR else None,
                   qemu_attach=kind.split("-")[1] if kind != "host" else "socket")
    with open_rig(spec) as rig:
        rig.link = FlightLink(rig.transport, cycle_timeout_s=2.0, stall_cycles=3)
        yield rig


def _sensors(i: int) -> p.Sensors:
    return p.Sensors(imu_dv_body=(0.0, 0.0, 0.162), imu_dtheta_body=(0.0, 0.0, 0.0), imu_dt_us=100_000,
                     lrf_range=1500.0 - i, lrf_sample_t_us=100_000 * i,
                     flags=p.SENSORS_IMU_VALID | p.SENSORS_LRF_VALID | p.SENSORS_LRF_NEW)


def _configure(link: FlightLink) -> None:
    """HELLO, then MASS0 = 700 kg and COMMIT: the initial state is set."""
    link.wait_hello(10.0)
    (ack, *_) = link.configure([(load_param_table(SRC_DIR)["MASS0"], 700.0)])
    assert ack.param_id == load_param_table(SRC_DIR)["MASS0"].id and ack.value == 700.0


def _cycle(link: FlightLink, i: int) -> tuple[p.Command, p.Telemetry]:
    """One SENSORS -> COMMAND exchange; the TELEMETRY of the same cycle."""
    t = 100_000 * i
    cmd = link.exchange(_sensors(i), t)
    assert cmd is not None, f"no COMMAND for cycle {i}; {link.describe_last_frames()}"
    deadline = time.monotonic() + 5.0
    while not (len(records := link.telemetry_records()) and records["t_us"][-1] == t):
        assert time.monotonic() < deadline, f"no TELEMETRY for cycle {i}; {link.describe_last_frames()}"
        link.drain(0.05)
    return cmd, link.telemetry


def test_hello_config_and_cycles(target):
    link = target.link
    _configure(link)
    assert link.hello.protocol_version == p.PROTOCOL_VERSION
    for i in range(1, 6):
        cmd, tlm = _cycle(link, i)
        assert 0.0 <= cmd.throttle <= 1.0
    assert link.stats.exchanges == 5 and link.stats.missed_cycles == 0
    assert link.decoder.counters.errors == 0, link.decoder.errors


def test_hello_is_answered(target):
    link = target.link
    link.wait_hello(10.0)
    link.drain(0.3)  # banner and answers already on their way
    link.hello = None
    hello = link.wait_hello(5.0)  # only an answer to this request can satisfy it now
    assert hello.protocol_version == p.PROTOCOL_VERSION and link.hello is hello


def _adversarial_stream(rng: random.Random) -> tuple[bytes, dict[str, int]]:
    """Random bytes, bad CRCs, unknown types, wrong lengths and oversize runs; each ends in 0x00."""
    out = bytearray()
    n = {"crc": 0, "unknown": 0, "length": 0, "oversize": 0}
    for k in range(40):
        kind = k % 5
        if kind == 0:  # random noise (may contain 0x00: whatever it does, it must not break the link)
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) + b"\x00"
        elif kind == 1:  # a good SENSORS frame with one body byte flipped
            pkt = bytearray(p.encode_packet(_sensors(k), 1000 + k, 0))
            pkt[20] ^= 0x5A
            out += p.cobs.encode(bytes(pkt)) + b"\x00"
            n["crc"] += 1
        elif kind == 2:  # unknown message type with a correct CRC
            data = p.HEADER.pack(1, 0x7E, k, 0) + bytes(10)
            out += p.cobs.encode(data + p.CRC.pack(p.crc16(data))) + b"\x00"
            n["unknown"] += 1
        elif kind == 3:  # SENSORS with a short body, correct CRC
            data = p.HEADER.pack(1, p.MsgType.SENSORS, k, 0) + bytes(20)
            out += p.cobs.encode(data + p.CRC.pack(p.crc16(data))) + b"\x00"
            n["length"] += 1
        else:  # oversize: 600 non-zero bytes before the delimiter
            out += bytes(rng.randrange(1, 256) for _ in range(600)) + b"\x00"
            n["oversize"] += 1
    return bytes(out), n


def test_adversarial_bytes_are_counted_and_survived(target):
    link = target.link
    _configure(link)
    _, b = _cycle(link, 1)
    stream, n = _adversarial_stream(random.Random(1234))
    for i in range(0, len(stream), 97):  # odd chunking
        link.transport.write(stream[i:i + 97])
    _, a = _cycle(link, 2)  # still answered
    assert a.rx_crc_errors - b.rx_crc_errors >= n["crc"]
    assert a.rx_unknown_msgs - b.rx_unknown_msgs >= n["unknown"]
    assert a.rx_length_errors - b.rx_length_errors >= n["length"]
    assert a.rx_framing_errors - b.rx_framing_errors >= n["oversize"]
    _cycle(link, 3)
    assert target.process.poll() is None


def test_killing_the_target_surfaces_as_an_error(target):
    link = target.link
    _configure(link)
    _cycle(link, 1)
    link.send(_sensors(2), 200_000)  # mid-stream
    target.process.send_signal(signal.SIGKILL)
    with pytest.raises((TransportError, LinkError)):
        for i in range(3, 50):
            link.exchange(_sensors(i), 100_000 * i)
    target.process.wait(5)
    assert "SIGKILL" in target.transport.diagnose()  # what the runner adds to the verdict


def test_host_program_exits_cleanly_on_hangup(host_exe):
    _need("host")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    proc = T.start_host_program(path, exe=host_exe)
    os.close(slave)
    assert select.select([master], [], [], 5.0)[0] and os.read(master, 4096)  # the HELLO banner
    os.close(master)
    assert proc.wait(5) == 0
    err = T.read_stderr(proc)
    assert "hangup" in err and path in err


def test_host_program_reports_a_bad_tty(host_exe, tmp_path):
    with pytest.raises(T.TargetStartError, match="cannot open"):
        T.start_host_program(tmp_path / "no-such-tty", exe=host_exe)


def test_qemu_start_failure_includes_stderr(tmp_path):
    _need("qemu")
    bogus = tmp_path / "not-an-elf.elf"
    bogus.write_bytes(b"garbage")
    with pytest.raises(T.TargetStartError, match="QEMU stderr"):
        T.start_qemu(bogus, "socket", timeout=5)


def test_qemu_reconnect_gets_hello_on_request(fw_elf):
    with T.start_qemu(fw_elf, "socket") as q:
        assert q.hello.protocol_version == p.PROTOCOL_VERSION  # seen at start-up, then disconnected
        with SerialTransport(q.url) as transport:
            assert transport.port._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            hello = FlightLink(transport).wait_hello(5.0)  # the banner went to nobody: this is the answer
            assert hello.protocol_version == p.PROTOCOL_VERSION
        q.check_alive()
