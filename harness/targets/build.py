"""Running the compiler and keeping its output: one error type, one cache, for every target.

Builds land in ``$FSIL_CACHE_DIR/<kind>/<name>-<key>/`` (``<repo>/.fsil-cache`` by default),
written to a temporary directory beside it and renamed into place with ``os.replace``, so
concurrent builders (pytest-xdist workers, campaign workers, several processes) never see half a
build and a finished one is never rebuilt. A compile error raises :class:`BuildError` (an
``FsilError``: the CLI prints ``fsil: error: ...`` and exits 2) naming the source file and the
compiler's first error lines.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from harness.errors import FsilError
from harness.targets.sources import ROOT

#: Flags every flight-code translation unit is compiled with (all targets).
FLIGHT_CFLAGS: tuple[str, ...] = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-O2")

ERROR_LINES = 12  # compiler output lines quoted in a BuildError


class TargetError(FsilError):
    """A target could not be built or started; the message names the tool and the cause."""


class BuildError(TargetError):
    """The compiler or linker failed; the message names the file and quotes the first error lines."""


def cache_root() -> Path:
    """``$FSIL_CACHE_DIR`` or ``<repo>/.fsil-cache`` (read at each call, so tests can redirect it)."""
    env = os.environ.get("FSIL_CACHE_DIR")
    return Path(env) if env else ROOT / ".fsil-cache"


def cache_dir(kind: str = "cffi") -> Path:
    """Where builds of one kind (``cffi``, ``targets``) are cached."""
    return cache_root() / kind


_DIAG = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+)(?::\d+)?: (?:fatal )?error: ", re.M)


def first_errors(output: str, limit: int = ERROR_LINES) -> tuple[str | None, str]:
    """The file named by the compiler's first ``error:`` line (None if none) and up to ``limit``
    lines of output from there on (or from the top)."""
    m = _DIAG.search(output)
    lines = output[m.start():].splitlines() if m else output.strip().splitlines()
    quoted = "\n".join(lines[:limit]) + (f"\n... ({len(lines) - limit} more lines)" if len(lines) > limit else "")
    return (m.group("file") if m else None), quoted


def run_compiler(cmd: list[str], what: str) -> None:
    """Run one compiler or linker command; raise BuildError naming the file and the first errors."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise BuildError(f"{what}: cannot run {cmd[0]!r}: {exc.strerror or exc}") from exc
    if proc.returncode == 0:
        return
    out = (proc.stdout + proc.stderr).strip()
    where, quoted = first_errors(out)
    hint = ""
    if re.search(r"undefined reference to `_?(sbrk|_sbrk_r)'", out):
        hint = "\nthe firmware has no heap: something called malloc()/printf(), which needs _sbrk"
    raise BuildError(f"{what} failed (exit {proc.returncode})" + (f" in {where}" if where else "") +
                     f":\n{quoted}{hint}\ncommand: {shlex.join(cmd)}")


def cached_build(base: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``base/name``, running ``build(tmpdir)`` into a temporary directory first unless it exists."""
    final = base / name
    if final.is_dir():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
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

#: The program targets (host, firmware) add their own optimisation level to these.
COMMON_CFLAGS = [f for f in FLIGHT_CFLAGS if not f.startswith("-O")] + ["-g"]
