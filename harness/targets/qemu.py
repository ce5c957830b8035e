"""The Cortex-M4F target: the portable flight code + ``firmware_stub/targets/mps2_an386/`` built
with ``arm-none-eabi-gcc`` for QEMU's ``mps2-an386`` board, its flash/RAM budgets, and QEMU
started with UART0 on a TCP socket or a pty. docs/targets.md has the memory map and timings."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.targets.build import COMMON_CFLAGS, BuildError, TargetError, cache_dir, cached_build, run_compiler
from harness.targets.process import TargetExited, TargetStartError, describe_exit, stop_process
from harness.targets.sources import MPS2_DIR, build_inputs, content_key, flight_sources, source_dir
from harness.targets.tools import ARM_CC, ARM_NM, ARM_SIZE, QEMU, QEMU_MACHINE, require, tool_version

FLASH_BUDGET = 64 * 1024  # bytes: text + data (the load image)
RAM_BUDGET = 16 * 1024  # bytes: data + bss, the stack included (it is a NOLOAD section)
STACK_SIZE = 4096  # bytes reserved for the main stack (linker symbol STACK_SIZE)

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


class BudgetError(TargetError):
    """The firmware does not fit its flash or RAM budget."""


# Build, size, budgets ---------------------------------------------------------------------
def build_qemu_firmware(src_dir: Path | str | None = None, out_dir: Path | str | None = None) -> Path:
    """Build the mps2-an386 firmware (``fw.elf``, with ``fw.map``) and return the ELF path.

    Fails (BuildError) if the link pulls in the heap or stdio (see FORBIDDEN_SYMBOLS).
    """
    require("arm")
    src = source_dir(src_dir)
    sources = flight_sources(src) + sorted(MPS2_DIR.glob("*.c"))
    ld = MPS2_DIR / "mps2_an386.ld"
    flags = ARM_CFLAGS + [f"-I{src}", f"-I{MPS2_DIR}"]
    ldflags = ARM_LDFLAGS + [f"-T{ld}"]
    key = content_key(sources + build_inputs(src, MPS2_DIR) + [ld],
                      [*flags, *ldflags, *ARM_LIBS, tool_version(ARM_CC)])

    def build(tmp: Path) -> None:
        elf = tmp / "fw.elf"
        run_compiler([ARM_CC, *flags, *map(str, sources), *ldflags, f"-Wl,-Map={tmp / 'fw.map'}",
                      *ARM_LIBS, "-o", str(elf)], f"{ARM_CC} (mps2-an386 firmware)")
        bad = sorted(set(defined_symbols(elf)) & set(FORBIDDEN_SYMBOLS))
        if bad:
            raise BuildError(f"{elf.name}: the firmware must not use the heap or stdio, but links "
                             f"{', '.join(bad)} (see fw.map for who pulled them in)")

    base = Path(out_dir) if out_dir else cache_dir("targets")
    return cached_build(base, f"mps2_an386-{key}", build) / "fw.elf"


def defined_symbols(elf: Path) -> list[str]:
    """Names of the symbols ``elf`` defines (``arm-none-eabi-nm --defined-only``)."""
    out = subprocess.run([ARM_NM, "--defined-only", str(elf)], capture_output=True, text=True, check=True)
    return [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]


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


# Running QEMU -----------------------------------------------------------------------------
def qemu_command(elf: Path | str, serial: str) -> list[str]:
    """The QEMU command line: UART0 on ``serial`` (a -serial spec), nothing else on any chardev."""
    return [QEMU, "-machine", QEMU_MACHINE, "-nographic", "-monitor", "none", "-serial", serial,
            "-kernel", str(elf)]


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class QemuTarget:
    """A running QEMU mps2-an386 with the flight firmware.

    ``url`` is what the harness opens: ``socket://127.0.0.1:PORT`` or a pty path (``/dev/pts/N``).
    ``hello`` is the firmware's HELLO (a ``protocol.Hello``) read during start-up through
    ``FlightLink.wait_hello``. With ``keep_open=True`` the connection that saw it stays open as
    ``serial`` (a pyserial object); otherwise it is closed and the next client should send a HELLO,
    which the flight code answers (bytes the firmware sends while nobody is connected are dropped
    by QEMU).
    """

    process: subprocess.Popen
    url: str
    attach: str
    elf: Path
    stderr_path: str
    hello: object = None
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


def start_qemu(elf: Path | str | None = None, attach: str = "socket", *, timeout: float = 15.0,
               keep_open: bool = False, port: int | None = None) -> QemuTarget:
    """Start ``qemu-system-arm -machine mps2-an386`` on ``elf`` (built if None); ready when HELLO is read.

    ``attach="socket"``: UART0 on a TCP server chardev on 127.0.0.1 (url ``socket://127.0.0.1:P``,
    opened with TCP_NODELAY by ``SerialTransport``). ``attach="pty"``: UART0 on a pty (url is its
    path, which QEMU prints). On failure raises TargetStartError with QEMU's stderr.
    """
    if attach not in ("socket", "pty"):
        raise ValueError(f"attach must be 'socket' or 'pty', not {attach!r}")
    require("qemu")
    elf = Path(elf) if elf else build_qemu_firmware()
    fd, stderr_path = tempfile.mkstemp(prefix="qemu-mps2-", suffix=".stderr")
    os.close(fd)
    for attempt in range(3):
        if attach == "socket":
            p_ = port or _free_tcp_port()
            cmd = qemu_command(elf, "chardev:uart0")
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
    from harness.link import FlightLink, LinkError
    from harness.transports.base import TransportError
    from harness.transports.serial_port import SerialTransport

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
    transport = None
    while transport is None:
        if t.process.poll() is not None:
            fail(f"QEMU exited before {t.url} could be opened")
        try:
            transport = SerialTransport(t.url)
        except TransportError as exc:  # the port is not listening yet
            if time.monotonic() > deadline:
                fail(str(exc))
            time.sleep(0.02)
    try:
        t.hello = FlightLink(transport).wait_hello(max(0.5, deadline - time.monotonic()))
    except (LinkError, TransportError) as exc:
        transport.close()
        fail(f"no HELLO from the firmware on {t.url} ({exc})")
    if keep_open:
        t.serial = transport.port
    else:
        transport.close()
