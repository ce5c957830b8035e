"""The processes a target runs as (host program, QEMU): how they ended, what they said, stopping them."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from harness.targets.build import TargetError


class TargetStartError(TargetError):
    """The target did not come up (no HELLO); the message includes the target's stderr."""


class TargetExited(TargetError):
    """The target process has gone away; the message says how (exit status or signal)."""


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


def read_stderr(proc: subprocess.Popen, timeout: float = 0.5) -> str:
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


def stop_process(proc: subprocess.Popen, timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; reaps the process. Idempotent."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
