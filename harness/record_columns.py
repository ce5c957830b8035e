"""The runner's per-cycle record (a list of tuples) as float64 columns in one C pass; and a list of
floats (the round-trip times) as a float64 array.

The record is read back once per flight, after its cycle loop, from thousands of tuples made one
a cycle: converting it in Python (``struct`` packing, numpy's float conversion) cost ~0.24 us a
row after a 6,361-cycle descent (1.5 ms, mostly waiting for memory); ``harness/record_columns.c``
does it in ~0.05 us (0.35 ms) with the same bits. The shared library is compiled on first use with the C compiler the loopback rig uses and
kept like every build (``harness.targets.build.cached_build``) under ``$FSIL_CACHE_DIR/record/``,
keyed by the C source, the compiler, the flags and the Python version; it is loaded with
``ctypes.PyDLL`` (the call holds the GIL). Without a compiler or Python's headers,
:func:`columns_of` answers None and the runner converts the record in Python.
"""
from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
import threading
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).resolve().with_name("record_columns.c")
CFLAGS = ("-std=c11", "-O2", "-fPIC", "-shared", "-Wall", "-Werror")
LIBRARY = "record_columns.so"

_lock = threading.Lock()
_function = None  # the loaded C functions (record, float list); False: they cannot be had in this process
_why_not: str | None = None


def _key() -> tuple[list[str], str]:
    from harness.targets.loopback import loopback_compiler
    from harness.targets.sources import content_key

    cc = loopback_compiler()
    include = sysconfig.get_paths()["include"]
    return cc, content_key([SOURCE], [" ".join(cc), " ".join(CFLAGS), include, sys.version])


def _load():
    """The C functions, built into the cache if they are not there yet (None, ``why_not()`` says why)."""
    global _function, _why_not
    with _lock:
        if _function is None:
            from harness.targets.build import BuildError, cache_dir, cached_build, run_compiler

            try:
                cc, key = _key()
                include = sysconfig.get_paths()["include"]
                if not os.path.isfile(os.path.join(include, "Python.h")):
                    raise BuildError(f"no Python.h in {include}")

                def build(tmp: Path) -> None:
                    run_compiler(cc + list(CFLAGS) + ["-I", include, str(SOURCE), "-o", str(tmp / LIBRARY)],
                                 f"compiling {SOURCE.name}")

                folder = cached_build(cache_dir("record"), f"record-{key}", build)
                lib = ctypes.PyDLL(str(folder / LIBRARY))
                record, floats = lib.fsil_record_columns, lib.fsil_float_list
                record.argtypes = (ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_ssize_t)
                floats.argtypes = (ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t)
                record.restype = floats.restype = ctypes.c_int
                _function = (record, floats)
            except (BuildError, OSError) as exc:
                _function, _why_not = False, str(exc)
        return _function or None


def load() -> bool:
    """Build or load the C helper now (a runner calls it before a flight's clock starts, so the
    first flight of a process does not count a compile); whether it is available."""
    return bool(_function if _function is not None else _load())


def why_not() -> str | None:
    """Why the C conversion is not available in this process (None: it is, or was not tried yet)."""
    return _why_not


def columns_of(rows: list[tuple], width: int) -> np.ndarray | None:
    """``rows`` (a list of tuples of ``width`` floats, ints and bools) as a (width, len(rows)) float64
    array, each value as ``float()`` takes it; None for a record of other types or without the C helper."""
    fns = _function if _function is not None else _load()
    if not fns:
        return None
    n = len(rows)
    out = np.empty((width, n))
    return out if fns[0](rows, out.ctypes.data, n, width) == 0 else None


def floats_of(values: list[float]) -> np.ndarray | None:
    """A list of floats as a float64 array (the same bits); None for a list of other values
    (an int, a float subclass) or without the C helper."""
    fns = _function if _function is not None else _load()
    if not fns:
        return None
    n = len(values)
    out = np.empty(n)
    return out if fns[1](values, out.ctypes.data, n) == 0 else None
