"""The two non-loopback targets of the flight code: build, size-check and start them.

* **host**: ``firmware_stub/targets/host/`` + the portable sources, built with the host
  ``gcc`` into a program that speaks link protocol v2 on a tty (pty slave or serial device).
* **qemu**: ``firmware_stub/targets/mps2_an386/`` + the portable sources, built with
  ``arm-none-eabi-gcc`` for the Cortex-M4F of QEMU's ``mps2-an386`` board.

Both builds land in a cache directory keyed by a hash of every source byte, the flags and
the compiler version (``.fsil-cache/targets/<name>-<hash>/``), written to a temporary
directory and renamed into place, so a C change is rebuilt on the next run and concurrent
runs never see half a build. The portable source list is the cffi build's
(``harness.fsw_build``), not a copy of it.

``start_host_program`` and ``start_qemu`` start a target and return once it is up; the
harness then opens its byte stream (a pty master, ``socket://...`` or a pty path) with a
transport. docs/targets.md has the command lines, memory map, budgets and timings.
"""
from __future__ import annotations

import hashlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from harness.errors import FsilError

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = ROOT / "firmware_stub"
TARGETS_DIR = FIRMWARE_DIR / "targets"
HOST_DIR = TARGETS_DIR / "host"
MPS2_DIR = TARGETS_DIR / "mps2_an386"
CACHE_DIR = Path(os.environ.get("FSIL_CACHE_DIR") or ROOT / ".fsil-cache") / "targets"

FLASH_BUDGET = 64 * 1024  # bytes: text + data (the load image)
RAM_BUDGET = 16 * 1024  # bytes: data + bss, the stack included (it is a NOLOAD section)
STACK_SIZE = 4096  # bytes reserved for the main stack (linker symbol STACK_SIZE)

HOST_CC = os.environ.get("FSIL_HOST_CC", "gcc")
ARM_CC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
ARM_NM = "arm-none-eabi-nm"
QEMU = "qemu-system-arm"
QEMU_MACHINE = "mps2-an386"

try:  # the flags every flight-code translation unit gets (cffi build): -std=c99 -Wall -Wextra -Werror ...
    from harness.fsw_build import FLIGHT_CFLAGS as _FLIGHT_CFLAGS
except ImportError:
    _FLIGHT_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-O2")
COMMON_CFLAGS = [f for f in _FLIGHT_CFLAGS if not f.startswith("-O")] + ["-g"]
HOST_CFLAGS = COMMON_CFLAGS + ["-O2"]
ARM_CFLAGS = COMMON_CFLAGS + [
    "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
    "-Os", "-ffunction-sections", "-fdata-sections",
]
ARM_LDFLAGS = [
    "-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections",
    f"-Wl,--defsym=STACK_SIZE={STACK_SIZE}", "-Wl,--no-warn-rwx-segments",
]
ARM_LIBS = ["-lm"]
# Symbols that mean the heap (or stdio, which needs it) was pulled into the firmware.
FORBIDDEN_SYMBOLS = ("malloc", "_malloc_r", "free", "_free_r", "calloc", "realloc", "_sbrk", "_sbrk_r",
                     "printf", "sprintf", "snprintf")


class TargetError(FsilError):
    """A target could not be built or started; the message names the tool and the cause."""


class BuildError(TargetError):
    """The compiler or linker failed (its output is in the message)."""


class BudgetError(TargetError):
    """The firmware does not fit its flash or RAM budget."""


class TargetStartError(TargetError):
    """The target did not come up (no HELLO); the message includes the target's stderr."""


class TargetExited(TargetError):
    """The target process has gone away; the message says how (exit status or signal)."""


# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------
def missing_tools(target: str) -> list[str]:
    """Tools absent for ``target`` ("host" or "qemu"/"mps2-an386"), e.g. ``["qemu-system-arm"]``.

    Tests skip with ``pytest.skip(f"... {tool} not found")`` when this is not empty.
    """
    if target == "host":
        needed = [HOST_CC]
    elif target in ("qemu", "mps2-an386", "mps2_an386", "arm"):
        needed = [ARM_CC, ARM_SIZE, ARM_NM]
        if target != "arm":
            needed.append(QEMU)
    else:
        raise ValueError(f"unknown target {target!r}: expected 'host' or 'qemu'")
    missing = [t for t in needed if shutil.which(t) is None]
    if ARM_CC in needed and ARM_CC not in missing and not _arm_has_newlib():
        missing.append("libnewlib-arm-none-eabi (newlib nano for arm-none-eabi-gcc)")
    return missing


def _arm_has_newlib() -> bool:
    try:
        out = subprocess.run([ARM_CC, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                              "-print-file-name=libc_nano.a"], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return os.path.isabs(out.stdout.strip())


def _require(target: str) -> None:
    missing = missing_tools(target)
    if missing:
        raise TargetError(f"cannot build/run the {target} target: {', '.join(missing)} not found")


def _tool_version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return "?"
    return out.stdout.splitlines()[0] if out.stdout else "?"


# ---------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------
def portable_sources(src_dir: Path | str | None = None) -> list[Path]:
    """The portable flight-code ``.c`` files: ``firmware_stub/sources.txt``, read by the cffi build's
    ``harness.fsw_build.flight_sources`` (the one list every target compiles)."""
    src = Path(src_dir) if src_dir else FIRMWARE_DIR
    try:
        from harness.fsw_build import flight_sources
    except ImportError:  # cffi missing: same file, same format
        return [src / line.split("#", 1)[0].strip() for line in (src / "sources.txt").read_text().splitlines()
                if line.split("#", 1)[0].strip()]
    return [Path(f) for f in flight_sources(src)]


def _hash_inputs(files: Iterable[Path], flags: Iterable[str], tool: str) -> str:
    h = hashlib.sha256()
    h.update(_tool_version(tool).encode())
    for f in flags:
        h.update(b"\0F" + f.encode())
    for path in sorted(set(files)):
        h.update(b"\0P" + str(path).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _headers(*dirs: Path) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        out += sorted(d.glob("*.h")) + sorted(d.glob("*.def")) + sorted(d.glob("sources.txt"))
    return out


def _cached_build(name: str, out_dir: Path | None, key: str, build) -> Path:
    """Run ``build(tmpdir)`` unless ``<cache>/<name>-<key>/`` exists; rename into place atomically."""
    base = Path(out_dir) if out_dir else CACHE_DIR
    final = base / f"{name}-{key}"
    if final.is_dir():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{key}-", dir=base))
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():  # not a concurrent build that won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _run_compiler(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        hint = ""
        if re.search(r"undefined reference to `_?(sbrk|_sbrk_r)'", out):
            hint = "\nthe firmware has no heap: something called malloc()/printf(), which needs _sbrk"
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n$ {' '.join(cmd)}\n{out}{hint}")


# ---------------------------------------------------------------------------------------
# Builds
# ---------------------------------------------------------------------------------------
def build_host_program(src_dir: Path | str | None = None, out_dir: Path | str | None = None) -> Path:
    """Build the host flight program (``fsw_host``) and return its path (cached by content hash)."""
    _require("host")
    src = Path(src_dir) if src_dir else FIRMWARE_DIR
    sources = portable_sources(src) + sorted(HOST_DIR.glob("*.c"))
    flags = HOST_CFLAGS + [f"-I{src}", f"-I{HOST_DIR}"]
    key = _hash_inputs(sources + _headers(src, HOST_DIR), flags + ["-lm"], HOST_CC)

    def build(tmp: Path) -> None:
        _run_compiler([HOST_CC, *flags, *map(str, sources), "-lm", "-o", str(tmp / "fsw_host")],
                      f"{HOST_CC} (host program)")

    return _cached_build("host", Path(out_dir) if out_dir else None, key, build) / "fsw_host"


def build_qemu_firmware(src_dir: Path | str | None = None, out_dir: Path | str | None = None) -> Path:
    """Build the mps2-an386 firmware (``fw.elf``, with ``fw.map``) and return the ELF path.

    Fails (BuildError) if the link pulls in the heap or stdio (see FORBIDDEN_SYMBOLS).
    """
    _require("arm")
    src = Path(src_dir) if src_dir else FIRMWARE_DIR
    sources = portable_sources(src) + sorted(MPS2_DIR.glob("*.c"))
    ld = MPS2_DIR / "mps2_an386.ld"
    flags = ARM_CFLAGS + [f"-I{src}", f"-I{MPS2_DIR}"]
    ldflags = ARM_LDFLAGS + [f"-T{ld}"]
    key = _hash_inputs(sources + _headers(src, MPS2_DIR) + [ld], flags + ldflags + ARM_LIBS, ARM_CC)

    def build(tmp: Path) -> None:
        elf = tmp / "fw.elf"
        _run_compiler([ARM_CC, *flags, *map(str, sources), *ldflags, f"-Wl,-Map={tmp / 'fw.map'}",
                       *ARM_LIBS, "-o", str(elf)], f"{ARM_CC} (mps2-an386 firmware)")
        bad = sorted(set(_defined_symbols(elf)) & set(FORBIDDEN_SYMBOLS))
        if bad:
            raise BuildError(f"{elf.name}: the firmware must not use the heap or stdio, but links "
                             f"{', '.join(bad)} (see fw.map for who pulled them in)")

    return _cached_build("mps2_an386", Path(out_dir) if out_dir else None, key, build) / "fw.elf"


def _defined_symbols(elf: Path) -> list[str]:
    out = subprocess.run([ARM_NM, "--defined-only", str(elf)], capture_output=True, text=True, check=True)
    return [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------
# Sizes and budgets
# ---------------------------------------------------------------------------------------
def firmware_size(elf: Path | str) -> dict[str, int]:
    """``arm-none-eabi-size`` (Berkeley) of ``elf``: text, data, bss, flash = text + data, ram = data + bss.

    bss includes the stack (a NOLOAD section of STACK_SIZE bytes).
    """
    tool = ARM_SIZE if shutil.which(ARM_SIZE) else "size"
    out = subprocess.run([tool, "-B", str(elf)], capture_output=True, text=True)
    if out.returncode != 0:
        raise TargetError(f"{tool} {elf} failed: {out.stderr.strip()}")
    lines = out.stdout.strip().splitlines()
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss}


def check_budgets(elf: Path | str, flash_max: int = FLASH_BUDGET, ram_max: int = RAM_BUDGET) -> dict[str, int]:
    """Raise BudgetError naming the region and the excess if ``elf`` does not fit; else return its sizes."""
    s = firmware_size(elf)
    problems = []
    if s["flash"] > flash_max:
        problems.append(f"flash (text + data) is {s['flash']} bytes, budget {flash_max}: "
                        f"{s['flash'] - flash_max} bytes over")
    if s["ram"] > ram_max:
        problems.append(f"RAM (data + bss + stack) is {s['ram']} bytes, budget {ram_max}: "
                        f"{s['ram'] - ram_max} bytes over")
    if problems:
        raise BudgetError(f"{elf}: " + "; ".join(problems) +
                          f" (text {s['text']}, data {s['data']}, bss {s['bss']})")
    return s


# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------
def describe_exit(proc: subprocess.Popen, name: str | None = None) -> str:
    """'fsw_host (pid 123) was killed by SIGKILL' / 'exited with status 1' / 'is still running'."""
    name = name or Path(str(proc.args[0] if isinstance(proc.args, (list, tuple)) else proc.args)).name
    rc = proc.poll()
    if rc is None:
        return f"{name} (pid {proc.pid}) is still running"
    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = f"signal {-rc}"
        return f"{name} (pid {proc.pid}) was killed by {sig}"
    return f"{name} (pid {proc.pid}) exited with status {rc}"


def _read_stderr(proc: subprocess.Popen, timeout: float = 0.5) -> str:
    """Whatever the process wrote on stderr (it must have exited, or stderr is a file)."""
    err = getattr(proc, "stderr_path", None)
    if err:
        try:
            return Path(err).read_text(errors="replace")
        except OSError:
            return ""
    if proc.stderr is None:
        return ""
    try:
        _, e = proc.communicate(timeout=timeout)
    except (subprocess.TimeoutExpired, ValueError):
        return ""
    return e.decode(errors="replace") if isinstance(e, bytes) else (e or "")


def start_host_program(tty_path: str | os.PathLike, *, exe: Path | str | None = None, baud: int | None = None,
                       src_dir: Path | str | None = None, wait_open_s: float = 5.0,
                       stderr_path: Path | str | None = None) -> subprocess.Popen:
    """Start the host flight program on ``tty_path`` and return once it has opened the tty.

    The caller owns the other end (for a pty: the master from ``os.openpty()``; keep the slave
    fd open until this returns, then close it so a dying program shows up as EIO/hangup on the
    master). The program sends HELLO as soon as it has opened the tty. Its diagnostics go to
    ``stderr_path`` (a temporary file by default; ``proc.stderr_path`` names it).
    """
    exe = Path(exe) if exe else build_host_program(src_dir)
    args = [str(exe), str(tty_path)]
    if baud:
        args[1:1] = ["--baud", str(int(baud))]
    if stderr_path is None:
        fd, stderr_path = tempfile.mkstemp(prefix="fsw_host-", suffix=".stderr")
        os.close(fd)
    err = open(stderr_path, "wb")
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    finally:
        err.close()
    proc.stderr_path = str(stderr_path)  # type: ignore[attr-defined]
    target = os.path.realpath(tty_path)
    deadline = time.monotonic() + wait_open_s
    fd_dir = Path(f"/proc/{proc.pid}/fd")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TargetStartError(f"host flight program on {tty_path}: {describe_exit(proc)}; "
                                   f"stderr:\n{_read_stderr(proc)}")
        if not fd_dir.is_dir():  # no /proc: trust the HELLO wait of the caller
            return proc
        try:
            if any(os.path.realpath(p) == target for p in fd_dir.iterdir()):
                return proc
        except OSError:
            pass
        time.sleep(0.005)
    stop_process(proc)
    raise TargetStartError(f"host flight program did not open {tty_path} within {wait_open_s} s; "
                           f"stderr:\n{_read_stderr(proc)}")


def start_host_program_pty(*, exe: Path | str | None = None, src_dir: Path | str | None = None,
                           timeout_s: float = 5.0) -> tuple[subprocess.Popen, str]:
    """Start ``fsw_host --pty``: the program creates a pseudo-terminal (as QEMU's ``-serial pty``
    does) and the harness opens its slave path with pyserial like any serial device.

    Returns ``(process, slave_path)``. When the program dies, reads on the slave report the
    hangup. Diagnostics go to ``proc.stderr_path``.
    """
    exe = Path(exe) if exe else build_host_program(src_dir)
    fd, stderr_path = tempfile.mkstemp(prefix="fsw_host-", suffix=".stderr")
    os.close(fd)
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen([str(exe), "--pty"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
    proc.stderr_path = stderr_path  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(r"fsw_host: pty (\S+)", Path(stderr_path).read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            raise TargetStartError(f"host flight program --pty: {describe_exit(proc)}; "
                                   f"stderr:\n{_read_stderr(proc)}")
        time.sleep(0.005)
    stop_process(proc)
    raise TargetStartError(f"host flight program printed no pty path within {timeout_s} s; "
                           f"stderr:\n{_read_stderr(proc)}")


def stop_process(proc: subprocess.Popen, timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; reaps the process. Idempotent."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------
# QEMU
# ---------------------------------------------------------------------------------------
def qemu_command(elf: Path | str, serial: str) -> list[str]:
    """The QEMU command line: UART0 on ``serial`` (a -serial spec), nothing else on any chardev."""
    return [QEMU, "-machine", QEMU_MACHINE, "-nographic", "-monitor", "none", "-serial", serial,
            "-kernel", str(elf)]


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_serial(url: str, timeout: float | None = 0.0):
    """pyserial object for a pty path or a ``socket://`` URL, with TCP_NODELAY set on sockets.

    (pyserial's ``socket://`` handler leaves Nagle on, which adds up to 40 ms per frame.)
    """
    import serial

    ser = serial.serial_for_url(url, timeout=timeout)
    sock = getattr(ser, "_socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ser


@dataclass
class QemuTarget:
    """A running QEMU mps2-an386 with the flight firmware.

    ``url`` is what the harness opens: ``socket://127.0.0.1:PORT`` or a pty path (``/dev/pts/N``).
    ``hello`` is the HELLO frame (raw bytes, with its 0x00) seen during start-up. With
    ``keep_open=True`` the connection that saw it stays open as ``serial`` (a pyserial object);
    otherwise it is closed and the next client should send a HELLO, which the flight code
    answers with its banner (bytes the firmware sends while nobody is connected are dropped
    by QEMU).
    """

    process: subprocess.Popen
    url: str
    attach: str
    elf: Path
    stderr_path: str
    hello: bytes = b""
    serial: object = None
    command: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.process.poll() is None

    def check_alive(self) -> None:
        """Raise TargetExited (with QEMU's stderr) if QEMU is gone."""
        if self.process.poll() is not None:
            raise TargetExited(f"QEMU {describe_exit(self.process, QEMU)}; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        try:
            return Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Close the start-up connection (if kept), stop QEMU, remove the stderr file. Idempotent."""
        if self.serial is not None:
            try:
                self.serial.close()
            except Exception:
                pass
            self.serial = None
        stop_process(self.process)
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


HELLO_REQUEST = None  # built lazily (needs harness.protocol)


def _hello_request() -> bytes:
    global HELLO_REQUEST
    if HELLO_REQUEST is None:
        from harness import protocol as p

        HELLO_REQUEST = b"\x00" + p.encode_frame(p.Hello(firmware_id=0, firmware_name=""), 0, 0)
    return HELLO_REQUEST


def serial_reader(ser):
    """``read(timeout_s) -> bytes`` for a pyserial object: waits for the first byte only.

    (pyserial's ``read(n)`` waits until n bytes or the time-out: never ask for more than is there.)
    """
    def read(timeout_s: float) -> bytes:
        ser.timeout = timeout_s
        first = ser.read(1)
        if not first:
            return b""
        n = ser.in_waiting
        return first + ser.read(n) if n else first
    return read


def wait_for_hello(ser, timeout: float, poke_every: float = 0.5, alive=None) -> bytes:
    """Read from a pyserial object until a HELLO frame arrives; return it (raw, with the 0x00).

    Sends a HELLO request (after a flushing 0x00) every ``poke_every`` seconds in case the boot
    banner was sent before anyone listened. ``alive()`` (optional) raises if the target died.
    Raises TimeoutError.
    """
    from harness import protocol as p

    dec = p.FrameDecoder()
    buf = b""
    deadline = time.monotonic() + timeout
    next_poke = time.monotonic() + poke_every
    read = serial_reader(ser)
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        data = read(0.05)
        if data:
            buf += data
            while b"\x00" in buf:
                frame, buf = buf.split(b"\x00", 1)
                for f in dec.feed(frame + b"\x00"):
                    if f.msg_type == p.MsgType.HELLO:
                        return frame + b"\x00"
        if poke_every and time.monotonic() >= next_poke:
            ser.write(_hello_request())
            next_poke = time.monotonic() + poke_every
    raise TimeoutError(f"no HELLO within {timeout} s")


def start_qemu(elf: Path | str | None = None, attach: str = "socket", *, timeout: float = 15.0,
               keep_open: bool = False, port: int | None = None) -> QemuTarget:
    """Start ``qemu-system-arm -machine mps2-an386`` on ``elf`` (built if None); ready when HELLO is read.

    ``attach="socket"``: UART0 on a TCP server chardev on 127.0.0.1 (url ``socket://127.0.0.1:P``;
    clients must set TCP_NODELAY, see ``open_serial``). ``attach="pty"``: UART0 on a pty (url is
    its path, which QEMU prints on stderr). On failure raises TargetStartError with QEMU's stderr.
    """
    if attach not in ("socket", "pty"):
        raise ValueError(f"attach must be 'socket' or 'pty', not {attach!r}")
    _require("qemu")
    elf = Path(elf) if elf else build_qemu_firmware()
    fd, stderr_path = tempfile.mkstemp(prefix="qemu-mps2-", suffix=".stderr")
    os.close(fd)
    for attempt in range(3):
        if attach == "socket":
            p_ = port or _free_tcp_port()
            serial_spec = "chardev:uart0"
            cmd = qemu_command(elf, serial_spec)
            cmd[1:1] = ["-chardev", f"socket,id=uart0,host=127.0.0.1,port={p_},server=on,wait=off,nodelay=on"]
            url = f"socket://127.0.0.1:{p_}"
        else:
            cmd = qemu_command(elf, "pty")
            url = ""
        with open(stderr_path, "wb") as err:
            # stdout too: QEMU prints "char device redirected to /dev/pts/N" there (qemu_printf)
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
        target = QemuTarget(proc, url, attach, elf, stderr_path, command=cmd)
        try:
            _bring_up(target, timeout, keep_open)
            return target
        except TargetStartError:
            in_use = "Address already in use" in target.stderr() and port is None
            if not in_use or attempt == 2:
                target.close()
                raise
            stop_process(proc)
    raise AssertionError("unreachable")


def _bring_up(t: QemuTarget, timeout: float, keep_open: bool) -> None:
    deadline = time.monotonic() + timeout

    def fail(why: str):
        rc = t.process.poll()
        state = describe_exit(t.process, QEMU) if rc is not None else f"QEMU (pid {t.process.pid})"
        stop_process(t.process)
        raise TargetStartError(f"{why}: {state}\n$ {' '.join(t.command)}\nQEMU stderr:\n{t.stderr()}")

    if t.attach == "pty":
        while not t.url:
            m = re.search(r"char device redirected to (\S+)", t.stderr())
            if m:
                t.url = m.group(1)
                break
            if t.process.poll() is not None:
                fail("QEMU exited before creating its pty")
            if time.monotonic() > deadline:
                fail(f"QEMU printed no pty path within {timeout} s")
            time.sleep(0.01)
    ser = None
    while ser is None:
        if t.process.poll() is not None:
            fail(f"QEMU exited before {t.url} could be opened")
        try:
            ser = open_serial(t.url, timeout=0.05)
        except Exception as exc:  # serial.SerialException: port not listening yet
            if time.monotonic() > deadline:
                fail(f"cannot open {t.url}: {exc}")
            time.sleep(0.02)

    def alive():
        if t.process.poll() is not None:
            fail(f"QEMU exited while waiting for HELLO on {t.url}")

    try:
        t.hello = wait_for_hello(ser, max(0.5, deadline - time.monotonic()), alive=alive)
    except TimeoutError:
        ser.close()
        fail(f"no HELLO frame from the firmware on {t.url} within {timeout} s")
    except Exception as exc:
        ser.close()
        if isinstance(exc, TargetStartError):
            raise
        fail(f"reading {t.url} failed: {exc}")
    if keep_open:
        t.serial = ser
    else:
        ser.close()


# ---------------------------------------------------------------------------------------
# Measurements and command line:  python -m harness.targets {build,size,measure}
# ---------------------------------------------------------------------------------------
def measure_link(write, read, cycles: int = 200, garbage: int = 2000) -> dict[str, float]:
    """Time a configured link: per-cycle round trip (SENSORS -> COMMAND + TELEMETRY) and per-byte
    costs. ``write(bytes)``; ``read(timeout_s) -> bytes``. Times in microseconds."""
    from harness import protocol as p

    dec = p.FrameDecoder()

    def until(types, timeout=10.0):
        want, stamps = list(types), []
        deadline = time.monotonic() + timeout
        first_byte = None
        while want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {want} within {timeout} s")
            data = read(0.02)
            if data:
                now = time.perf_counter()
                first_byte = first_byte or now
                for f in dec.feed(data):
                    if want and f.msg_type == want[0]:
                        want.pop(0)
                        stamps.append(now)
        return first_byte, stamps

    seq = 0
    write(b"\x00" + p.encode_frame(p.Config(11, 700.0, 0), seq, 0))
    until([p.MsgType.CONFIG_ACK])
    seq += 1
    write(p.encode_frame(p.Config(p.COMMIT_PARAM_ID, 0.0, p.CONFIG_COMMIT), seq, 0))
    until([p.MsgType.CONFIG_ACK])
    rtts, tx_rates = [], []
    sensors = p.Sensors((0.0, 0.0, 0.162), (0.0, 0.0, 0.0), 100_000, 1500.0, 0,
                        p.SENSORS_IMU_VALID | p.SENSORS_LRF_VALID | p.SENSORS_LRF_NEW)
    out_bytes = None
    for i in range(1, cycles + 1):
        seq += 1
        frame = p.encode_frame(sensors, seq, 100_000 * i)
        t0 = time.perf_counter()
        write(frame)
        first, (t_cmd, t_tlm) = until([p.MsgType.COMMAND, p.MsgType.TELEMETRY])
        rtts.append(t_tlm - t0)
        if out_bytes is None:
            cmd = p.encode_frame(p.Command(0.0, (0.0, 0.0, 0.0), 0, 0, 0), 0, 0)
            tlm = p.encode_frame(p.Telemetry((0.0,) * 3, (0.0,) * 3, (1.0, 0.0, 0.0, 0.0), 0.0, 0.0,
                                             0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0)
            out_bytes = len(cmd) + len(tlm)
        if t_tlm > first:
            tx_rates.append((t_tlm - first) / (out_bytes - 1))
    # Receive cost per byte: a run of garbage ahead of a SENSORS frame delays its answer.
    junk = bytes([0x55]) * 200 + b"\x00"
    n_junk = (garbage // len(junk)) * len(junk)
    seq += 1
    t0 = time.perf_counter()
    write(junk * (garbage // len(junk)) + p.encode_frame(sensors, seq, 100_000 * (cycles + 1)))
    until([p.MsgType.COMMAND, p.MsgType.TELEMETRY])
    t_with = time.perf_counter() - t0
    rtts_sorted = sorted(rtts)
    median = rtts_sorted[len(rtts) // 2]
    return {
        "cycles": cycles,
        "bytes_in_per_cycle": len(frame),
        "bytes_out_per_cycle": out_bytes,
        "cycle_rtt_median_us": median * 1e6,
        "cycle_rtt_p95_us": rtts_sorted[int(0.95 * (len(rtts) - 1))] * 1e6,
        "cycle_rtt_max_us": rtts_sorted[-1] * 1e6,
        "rx_per_byte_us": max(0.0, (t_with - median) / n_junk * 1e6),
        "tx_per_byte_us": (sorted(tx_rates)[len(tx_rates) // 2] * 1e6) if tx_rates else float("nan"),
    }


def _measure(kind: str, cycles: int) -> dict[str, float]:
    if kind == "host":
        master, slave = os.openpty()
        path = os.ttyname(slave)
        proc = start_host_program(path)
        os.close(slave)

        def read(timeout):
            r, _, _ = select.select([master], [], [], timeout)
            return os.read(master, 4096) if r else b""

        def write(data):
            view = memoryview(data)
            while view:
                view = view[os.write(master, view):]
        try:
            read(1.0)  # HELLO
            return measure_link(write, read, cycles)
        finally:
            stop_process(proc)
            os.close(master)
    attach = kind.split("-", 1)[1]
    with start_qemu(None, attach, keep_open=True) as q:
        ser = q.serial

        return measure_link(ser.write, serial_reader(ser), cycles)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m harness.targets", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build both targets, print their paths")
    sub.add_parser("size", help="firmware sizes against the budgets")
    m = sub.add_parser("measure", help="round-trip times on host-pty, qemu-socket, qemu-pty")
    m.add_argument("--cycles", type=int, default=200)
    m.add_argument("kinds", nargs="*", default=["host", "qemu-socket", "qemu-pty"])
    args = ap.parse_args(argv)
    if args.cmd == "build":
        print(build_host_program())
        print(build_qemu_firmware())
    elif args.cmd == "size":
        elf = build_qemu_firmware()
        s = firmware_size(elf)
        print(f"{elf}\n  flash {s['flash']} / {FLASH_BUDGET} (text {s['text']} + data {s['data']})\n"
              f"  RAM   {s['ram']} / {RAM_BUDGET} (data {s['data']} + bss {s['bss']}, stack {STACK_SIZE} incl.)")
        check_budgets(elf)
    else:
        for kind in args.kinds:
            print(kind, json.dumps({k: round(v, 1) for k, v in _measure(kind, args.cycles).items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
