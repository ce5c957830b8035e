"""The host target: the portable flight code + ``firmware_stub/targets/host/`` built with the host
``gcc`` into a program (``fsw_host``) that speaks the link protocol on a tty (a pty it is given, a
pty it creates with ``--pty``, or a serial device)."""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from harness.targets.build import COMMON_CFLAGS, cache_dir, cached_build, run_compiler
from harness.targets.process import TargetStartError, describe_exit, read_stderr, stop_process
from harness.targets.sources import HOST_DIR, build_inputs, content_key, flight_sources, source_dir
from harness.targets.tools import HOST_CC, require, tool_version

HOST_CFLAGS = COMMON_CFLAGS + ["-O2"]


def build_host_program(src_dir: Path | str | None = None, out_dir: Path | str | None = None) -> Path:
    """Build the host flight program (``fsw_host``) and return its path (cached by content hash)."""
    require("host")
    src = source_dir(src_dir)
    sources = flight_sources(src) + sorted(HOST_DIR.glob("*.c"))
    flags = HOST_CFLAGS + [f"-I{src}", f"-I{HOST_DIR}"]
    key = content_key(sources + build_inputs(src, HOST_DIR), [*flags, "-lm", tool_version(HOST_CC)])

    def build(tmp: Path) -> None:
        run_compiler([HOST_CC, *flags, *map(str, sources), "-lm", "-o", str(tmp / "fsw_host")],
                     f"{HOST_CC} (host program)")

    base = Path(out_dir) if out_dir else cache_dir("targets")
    return cached_build(base, f"host-{key}", build) / "fsw_host"


def _stderr_file() -> str:
    fd, path = tempfile.mkstemp(prefix="fsw_host-", suffix=".stderr")
    os.close(fd)
    return path


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
    stderr_path = str(stderr_path) if stderr_path is not None else _stderr_file()
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    proc.stderr_path = stderr_path  # type: ignore[attr-defined]
    target = os.path.realpath(tty_path)
    deadline = time.monotonic() + wait_open_s
    fd_dir = Path(f"/proc/{proc.pid}/fd")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TargetStartError(f"host flight program on {tty_path}: {describe_exit(proc)}; "
                                   f"stderr:\n{read_stderr(proc)}")
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
                           f"stderr:\n{read_stderr(proc)}")


def start_host_program_pty(*, exe: Path | str | None = None, src_dir: Path | str | None = None,
                           timeout_s: float = 5.0) -> tuple[subprocess.Popen, str]:
    """Start ``fsw_host --pty``: the program creates a pseudo-terminal (as QEMU's ``-serial pty``
    does) and the harness opens its slave path with pyserial like any serial device.

    Returns ``(process, slave_path)``. When the program dies, reads on the slave report the
    hangup. Diagnostics go to ``proc.stderr_path``.
    """
    exe = Path(exe) if exe else build_host_program(src_dir)
    stderr_path = _stderr_file()
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
                                   f"stderr:\n{read_stderr(proc)}")
        time.sleep(0.005)
    stop_process(proc)
    raise TargetStartError(f"host flight program printed no pty path within {timeout_s} s; "
                           f"stderr:\n{read_stderr(proc)}")
