"""The compiled plant cycle (``harness.cycle``) called from Python in one cheap C call.

``Cycle.advance`` runs the numba-compiled cycle once per flight-code cycle. Through numba's
dispatcher a call costs ~0.8 us (in a tight loop; ~2.5 us in a flight's loop) of typing its ten
arguments, about as much as the cycle itself; ``harness/cycle_call.c``, a small CPython extension
module, calls the same compiled function as a C function (the numba ``cfunc`` that the loopback
rig's C link calls, ``load_c_entry``) with the arrays bound once, for ~0.04 us. It is harness
code (it never touches the flight code's module, so every rig has it) compiled on first use
with the C compiler the loopback rig uses, kept like every build
(``harness.targets.build.cached_build``) under ``$FSIL_CACHE_DIR/cycle/``, keyed by its C
sources, the compiler, the flags and the Python version and ABI. Without a compiler or Python's
headers :func:`bind` answers None (``why_not`` says why) and the cycle is called through the
dispatcher, with the same bits.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import threading
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("cycle_call.c")
#: fsil_then_t and fsil_cycle_fn, the cycle's C signature (harness C only: no flight code in it)
HEADER = SOURCE.parent / "targets" / "loopback_link.h"
CFLAGS = ("-std=c11", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror")
MODULE = "_fsil_cycle_call"

_lock = threading.Lock()
_module = None  # the extension module; False: it cannot be had in this process
_why_not: str | None = None


def _build_into(folder: Path, cc: list[str], include: str) -> None:
    from harness.targets.build import run_compiler

    out = folder / (MODULE + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    run_compiler(cc + list(CFLAGS) + ["-I", include, "-I", str(HEADER.parent), str(SOURCE), "-o", str(out)],
                 f"compiling {SOURCE.name}")


def _load():
    """The extension module, built into the cache if it is not there yet (None: ``why_not()`` says why)."""
    global _module, _why_not
    with _lock:
        if _module is None:
            from harness.targets.build import BuildError, cache_dir, cached_build
            from harness.targets.loopback import loopback_compiler
            from harness.targets.sources import content_key

            try:
                cc = loopback_compiler()
                include = sysconfig.get_paths()["include"]
                if not os.path.isfile(os.path.join(include, "Python.h")):
                    raise BuildError(f"no Python.h in {include}")
                key = content_key([SOURCE, HEADER], [" ".join(cc), " ".join(CFLAGS), include, sys.version,
                                                     sysconfig.get_config_var("EXT_SUFFIX") or ""])
                folder = cached_build(cache_dir("cycle"), f"cycle-{key}", lambda tmp: _build_into(tmp, cc, include))
                path = folder / (MODULE + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
                spec = importlib.util.spec_from_file_location(MODULE, path)
                if spec is None or spec.loader is None:
                    raise BuildError(f"cannot import {path}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                _module = module
            except (BuildError, OSError, ImportError) as exc:
                _module, _why_not = False, str(exc)
        return _module or None


def load() -> bool:
    """Build or load the extension now (before a flight's clock starts, so the first flight of a
    process does not count a compile); whether it is available."""
    return bool(_module if _module is not None else _load())


def why_not() -> str | None:
    """Why the cheap call is not available in this process (None: it is, or was not tried yet)."""
    return _why_not


def bind(address: int, block, history):
    """``call(row, act, dt_s, n)``: the compiled cycle at ``address`` (``fsil_cycle_fn``) on these
    arrays (a 1-d and a 2-d C-contiguous float64 array, kept alive by the call) for the
    ActuatorCommand ``act``; it returns the substeps taken, or -2 without running the cycle when
    an argument is not of the plain type (floats, a bool, tuples, ints >= 0: cycle_call.c), which
    the caller then hands to numba's dispatcher. None when the extension cannot be built."""
    module = _module if _module is not None else _load()
    return module.bind(address, block, history) if module else None


__all__ = ["bind", "load", "why_not"]
