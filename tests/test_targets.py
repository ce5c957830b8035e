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
    syms = set(T._defined_symbols(fw_elf))
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
        T._run_compiler(cmd, "heap test link")


# ---------------------------------------------------------------------------------------
# Running targets
# ---------------------------------------------------------------------------------------
class Link:
    """Frames to and from a running target; any I/O failure is re-raised naming the cause."""

    def __init__(self, name, write, read, proc_check, close):
        self.name, self._write, self._read, self._check, self._close = name, write, read, proc_check, close
        self.dec = p.FrameDecoder()
        self.seq = 0
        self.frames: list[p.Frame] = []

    def _io(self, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:
            time.sleep(0.2)  # let the process be reaped so the cause is known
            self._check()
            raise T.TargetExited(f"{self.name}: link failed ({exc}); the target is still running") from exc

    def send(self, msg, t_us: int = 0) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        self.send_raw(p.encode_frame(msg, seq, t_us))
        return seq

    def send_raw(self, data: bytes) -> None:
        self._io(self._write, data)

    def expect(self, *types: int, timeout: float = 10.0) -> list[p.Frame]:
        """Read until frames of ``types`` arrived in that order (others are kept in self.frames)."""
        want = list(types)
        got: list[p.Frame] = []
        deadline = time.monotonic() + timeout
        while want:
            for f in self.frames:
                if want and f.msg_type == want[0]:
                    got.append(f)
                    want.pop(0)
            self.frames = []
            if not want:
                break
            if time.monotonic() > deadline:
                self._check()
                raise TimeoutError(f"{self.name}: no {[p.MsgType(t).name for t in want]} within {timeout} s")
            data = self._io(self._read, 0.05)
            if data:
                self.frames += self.dec.feed(data)
        return got

    def close(self):
        self._close()


def _fd_read(fd):
    def read(timeout):
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return b""
        data = os.read(fd, 4096)  # EIO once the program on the slave side is gone
        if not data:
            raise EOFError("end of file")
        return data
    return read


def _fd_write(fd):
    def write(data):
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    return write


def _proc_check(proc, name):
    def check():
        if proc.poll() is not None:
            raise T.TargetExited(f"{name} {T.describe_exit(proc)}; stderr:\n{T._read_stderr(proc)}")
    return check


def _open_host(exe) -> tuple[Link, object]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    proc = T.start_host_program(path, exe=exe)
    os.close(slave)  # from now on only the program holds the slave: its death is EIO here

    def close():
        T.stop_process(proc)
        os.close(master)
    return Link(f"host program on {path}", _fd_write(master), _fd_read(master),
                _proc_check(proc, "host program"), close), proc


def _open_qemu(elf, attach) -> tuple[Link, object]:
    q = T.start_qemu(elf, attach, keep_open=True)
    ser = q.serial

    def close():
        q.close()
    link = Link(f"QEMU ({attach}) on {q.url}", ser.write, T.serial_reader(ser), q.check_alive, close)
    link.frames += link.dec.feed(q.hello)
    return link, q.process


TARGETS = ["host", "qemu-socket", "qemu-pty"]


@pytest.fixture(params=TARGETS)
def target(request):
    kind = request.param
    if kind == "host":
        link, proc = _open_host(request.getfixturevalue("host_exe"))
    else:
        link, proc = _open_qemu(request.getfixturevalue("fw_elf"), kind.split("-")[1])
    link.kind = kind
    link.proc = proc
    yield link
    link.close()


def _sensors(i: int) -> p.Sensors:
    return p.Sensors(imu_dv_body=(0.0, 0.0, 0.162), imu_dtheta_body=(0.0, 0.0, 0.0), imu_dt_us=100_000,
                     lrf_range=1500.0 - i, lrf_sample_t_us=100_000 * i,
                     flags=p.SENSORS_IMU_VALID | p.SENSORS_LRF_VALID | p.SENSORS_LRF_NEW)


def _configure(link: Link) -> None:
    link.send(p.Config(11, 700.0, 0))  # MASS0
    (ack,) = link.expect(p.MsgType.CONFIG_ACK)
    assert ack.msg.param_id == 11
    link.send(p.Config(p.COMMIT_PARAM_ID, 0.0, p.CONFIG_COMMIT))  # commit the initial state
    (ack,) = link.expect(p.MsgType.CONFIG_ACK)
    assert (ack.msg.param_id, ack.msg.status) == (0, p.ConfigStatus.COMMITTED)


def _cycle(link: Link, i: int) -> tuple[p.Frame, p.Frame]:
    t = 100_000 * i
    seq = link.send(_sensors(i), t_us=t)
    cmd, tlm = link.expect(p.MsgType.COMMAND, p.MsgType.TELEMETRY)
    assert cmd.msg.sensors_seq == seq and cmd.t_us == t and tlm.t_us == t
    return cmd, tlm


def test_hello_config_and_cycles(target):
    (hello,) = target.expect(p.MsgType.HELLO)
    assert hello.msg.protocol_version == p.PROTOCOL_VERSION
    _configure(target)
    for i in range(1, 6):
        cmd, tlm = _cycle(target, i)
        assert 0.0 <= cmd.msg.throttle <= 1.0
    assert target.dec.counters.errors == 0, target.dec.errors


def test_hello_is_answered(target):
    target.expect(p.MsgType.HELLO)
    target.send_raw(b"\x00" + p.encode_frame(p.Hello(), 0, 0))
    (hello,) = target.expect(p.MsgType.HELLO)
    assert hello.msg.protocol_version == p.PROTOCOL_VERSION


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
            data = p.HEADER.pack(p.PROTOCOL_VERSION, 0x7E, k, 0) + bytes(10)
            out += p.cobs.encode(data + p.CRC.pack(p.crc16(data))) + b"\x00"
            n["unknown"] += 1
        elif kind == 3:  # SENSORS with a short body, correct CRC
            data = p.HEADER.pack(p.PROTOCOL_VERSION, p.MsgType.SENSORS, k, 0) + bytes(20)
            out += p.cobs.encode(data + p.CRC.pack(p.crc16(data))) + b"\x00"
            n["length"] += 1
        else:  # oversize: 600 non-zero bytes before the delimiter
            out += bytes(rng.randrange(1, 256) for _ in range(600)) + b"\x00"
            n["oversize"] += 1
    return bytes(out), n


def test_adversarial_bytes_are_counted_and_survived(target):
    target.expect(p.MsgType.HELLO)
    _configure(target)
    _, before = _cycle(target, 1)
    stream, n = _adversarial_stream(random.Random(1234))
    for i in range(0, len(stream), 97):  # odd chunking
        target.send_raw(stream[i:i + 97])
    _, after = _cycle(target, 2)  # still answered
    b, a = before.msg, after.msg
    assert a.rx_crc_errors - b.rx_crc_errors >= n["crc"]
    assert a.rx_unknown_msgs - b.rx_unknown_msgs >= n["unknown"]
    assert a.rx_length_errors - b.rx_length_errors >= n["length"]
    assert a.rx_framing_errors - b.rx_framing_errors >= n["oversize"]
    _cycle(target, 3)
    assert target.proc.poll() is None


def test_killing_the_target_surfaces_as_an_error(target):
    target.expect(p.MsgType.HELLO)
    _configure(target)
    _cycle(target, 1)
    target.send(_sensors(2), t_us=200_000)  # mid-stream
    target.proc.send_signal(signal.SIGKILL)
    with pytest.raises(T.TargetExited, match="SIGKILL"):
        for i in range(3, 50):
            target.send(_sensors(i), t_us=100_000 * i)
            target.expect(p.MsgType.COMMAND, timeout=2.0)


def test_host_program_exits_cleanly_on_hangup(host_exe):
    _need("host")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    proc = T.start_host_program(path, exe=host_exe)
    os.close(slave)
    _fd_read(master)(2.0)  # HELLO
    os.close(master)
    assert proc.wait(5) == 0
    err = T._read_stderr(proc)
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
        ser = T.open_serial(q.url)
        try:
            assert ser._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            hello = T.wait_for_hello(ser, 5.0, poke_every=0.05, alive=q.check_alive)
            assert p.decode_frame(hello).msg_type == p.MsgType.HELLO
        finally:
            ser.close()
