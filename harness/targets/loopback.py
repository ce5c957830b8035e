"""The loopback target: the flight code compiled into an in-process cffi module.

``load_flight_code()`` compiles the sources of ``firmware_stub/sources.txt`` plus the loopback HAL
``hal_loopback.c`` with :data:`FLIGHT_CFLAGS` (each object by the compiler directly, so a compile
error is a :class:`BuildError` naming the file), adds the harness end of the lockstep cycle
(``harness/targets/loopback_link.c``, with the project's own codec under ``fsil_`` names: see
its header), links them into a cffi API-mode extension and imports it. The module is cached like
every build (``harness.targets.build``) under ``$FSIL_CACHE_DIR/cffi/``, keyed by every C source,
header, ``.def`` and ``sources.txt`` of the source directory, the harness-side C files and the
project codec they include, the flags, the cdef generator's version, the compiler and the
Python/cffi versions.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness.filestamp import settled, stamp
from harness.targets.build import FLIGHT_CFLAGS, BuildError, cache_dir, cached_build, first_errors, run_compiler
from harness.targets.sources import FIRMWARE_DIR, content_key, flight_sources, source_dir

#: Target-specific source of the in-process (loopback) target.
LOOPBACK_SOURCES: tuple[str, ...] = ("hal_loopback.c",)
#: The harness end of the lockstep cycle, in C (compiled into every loopback module), and the
#: project codec it includes (the one the Python codec is checked against, not the flight code's).
LINK_C = Path(__file__).resolve().parent / "loopback_link.c"
LINK_H = LINK_C.with_suffix(".h")
LINK_CODEC = (FIRMWARE_DIR / "fsw_protocol.c", FIRMWARE_DIR / "fsw_protocol.h")


def parse_param_table(def_path: str | Path) -> list[dict[str, Any]]:
    """``fsw_params.def`` as dicts (id, name, default, min, max, unit, description), in file order.

    One parser serves every consumer: this is ``harness.params.load_param_table`` reshaped.
    """
    from harness.params import load_param_table

    table = load_param_table(Path(def_path).parent)
    return [dict(id=s.id, name=s.name, default=s.default, min=s.min, max=s.max, unit=s.unit,
                 description=s.doc) for s in table.values()]


# ---------------------------------------------------------------- the cdef
# Generated from the flight code's own headers, so they stay the single definition of every
# struct, function and constant the harness reaches through cffi: hal_loopback.h (which includes
# the rest) is run through the C preprocessor with empty stand-ins for the C library headers, the
# declarations are parsed with pycparser (cffi's own parser), the static inline functions of
# fsw_math.h are dropped, and every integer object-like ``#define`` becomes ``#define NAME ...``
# (cffi takes its value from the compiler, so ``-D`` overrides in extra_cflags hold).

CDEF_VERSION = "headers-v2"  # part of the cache key: change it when the generation below changes
_LIBC_HEADERS = ("stddef.h", "stdint.h", "stdbool.h", "math.h", "string.h")
_CFFI_TYPES = ("int8_t", "uint8_t", "int16_t", "uint16_t", "int32_t", "uint32_t", "int64_t", "uint64_t",
               "size_t", "bool")
_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)[ \t]+([^\n]*?)\s*(?:/\*.*)?$", re.M)
_INT_LITERAL = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b")


def _integer_macros(headers: Sequence[Path]) -> list[str]:
    """Names of the object-like macros of ``headers`` whose value is an integer expression."""
    values: dict[str, int] = {}
    for h in headers:
        for name, body in _DEFINE.findall(h.read_text()):
            expr = _INT_LITERAL.sub(r"\1", body.split("//", 1)[0]).strip()
            if not expr or not re.fullmatch(r"[\w\s()+\-*/%<>|&~^]+", expr):
                continue
            try:
                v = eval(expr, {"__builtins__": {}}, dict(values))  # noqa: S307 - digits, operators, macro names
            except Exception:  # noqa: BLE001 - not an integer expression (float, string, unknown name)
                continue
            if isinstance(v, int) and not isinstance(v, bool):
                values[name] = v
    return list(values)


def _declares_for_cffi(node, c_ast) -> bool:
    """Keep a top-level node of the headers in the cdef: types, prototypes, extern data; not function
    bodies, static (inline) definitions, static asserts, pragmas or the stand-in libc typedefs."""
    if isinstance(node, (c_ast.FuncDef, c_ast.StaticAssert, c_ast.Pragma)):
        return False
    if isinstance(node, c_ast.Typedef):
        return node.name not in _CFFI_TYPES
    if isinstance(node, c_ast.Decl):
        return "static" not in node.storage and node.init is None
    return True


def _declarations(header: Path) -> str:
    """The cffi declarations of ``header`` and what it includes from its own folder (see above)."""
    from pycparser import CParser, c_ast, c_generator

    with tempfile.TemporaryDirectory(prefix="fsil-cdef-") as libc:
        for h in _LIBC_HEADERS:
            (Path(libc) / h).write_text("")
        cmd = loopback_compiler() + ["-E", "-P", "-nostdinc", "-I", libc, "-I", str(header.parent), "-x", "c",
                                     str(header)]
        run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        where, quoted = first_errors(run.stdout + run.stderr)
        raise BuildError(f"preprocessing {header.name} (and what it includes) for cffi failed"
                         + (f" in {where}" if where else "") + f":\n{quoted}\ncommand: {shlex.join(cmd)}")
    stand_ins = "".join(f"typedef int {t};\n" for t in _CFFI_TYPES)
    try:
        tree = CParser().parse(stand_ins + run.stdout, str(header))
    except Exception as exc:  # pycparser.plyparser.ParseError
        raise BuildError(f"cannot read the headers {header} includes as C declarations: {exc}") from exc
    tree.ext = [e for e in tree.ext if _declares_for_cffi(e, c_ast)]
    return c_generator.CGenerator().visit(tree)


def _cdef(src: Path) -> str:
    """The cffi cdef of ``src``'s headers and the harness-side ``loopback_link.h`` (see above)."""
    defines = "".join(f"#define {name} ...\n" for name in _integer_macros(sorted(src.glob("*.h")) + [LINK_H]))
    return defines + _declarations(src / "hal_loopback.h") + _declarations(LINK_H)


def loopback_compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


#: {(source dir, key parts): (stamps of the folder and sources.txt, files, their stamps, key)}: the
#: build key of a source tree whose files are unchanged since it was hashed (a campaign boots the
#: flight code for every run; hashing every source again cost ~2.5 ms a run)
_KEYS: dict[tuple, tuple] = {}


def _build_key(src: Path, cflags: Sequence[str]) -> str:
    import cffi

    import pycparser

    parts = (" ".join(cflags), " ".join(loopback_compiler()), CDEF_VERSION, sys.version,
             sysconfig.get_config_var("EXT_SUFFIX") or "", cffi.__version__, pycparser.__version__)
    # the folder's own mtime moves when a file is added, removed or renamed in it; sources.txt
    # decides which files outside it count
    tree = (stamp(src), stamp(src / "sources.txt"))
    memo = _KEYS.get((src, parts))
    if memo is not None and memo[0] == tree and tuple(map(stamp, memo[1])) == memo[2]:
        return memo[3]
    files = {p for p in src.iterdir() if p.is_file() and p.suffix in (".c", ".h", ".def")}
    files.add(src / "sources.txt")
    files.update(flight_sources(src))
    files.update((LINK_C, LINK_H, *LINK_CODEC))
    names = sorted(str(f) for f in files)
    stamps = tuple(map(stamp, names))  # before the bytes are read: a file changed meanwhile is hashed again
    key = content_key(files, parts)
    if settled(*tree, *stamps):
        if len(_KEYS) > 16:
            _KEYS.clear()
        _KEYS[(src, parts)] = (tree, names, stamps, key)
    return key


def _build(src: Path, modname: str, cflags: Sequence[str], out: Path) -> None:
    """Compile the objects and the cffi module ``modname`` into ``out`` (a fresh directory)."""
    import cffi

    cdef = _cdef(src)

    work = out / "build"
    work.mkdir()
    objs: list[str] = []
    for i, c_file in enumerate(flight_sources(src) + [src / s for s in LOOPBACK_SOURCES]):
        obj = work / f"{i:02d}_{c_file.stem}.o"
        run_compiler(loopback_compiler() + list(cflags) + ["-fPIC", "-I", str(src), "-c", str(c_file), "-o", str(obj)],
                     f"compiling {c_file.name} for the loopback target")
        objs.append(str(obj))
    obj = work / "harness_loopback_link.o"  # with the project's codec, never the flight code's: no -I src
    run_compiler(loopback_compiler() + list(cflags) + ["-fPIC", "-I", str(FIRMWARE_DIR), "-c", str(LINK_C),
                                                        "-o", str(obj)],
                 f"compiling the harness's {LINK_C.name} for the loopback target")
    objs.append(str(obj))
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source(modname, '#include "hal_loopback.h"\n#include "loopback_link.h"\n',
                   include_dirs=[str(src), str(LINK_C.parent)], extra_objects=objs,
                   extra_compile_args=["-ffp-contract=off"])
    try:
        built = Path(ffi.compile(tmpdir=str(work), verbose=False))
    except Exception as exc:  # cffi.VerificationError, distutils errors
        raise BuildError(f"building the cffi module {modname} failed: {exc}") from exc
    os.replace(built, out / built.name)
    shutil.rmtree(work, ignore_errors=True)


_loaded: dict[str, tuple[Any, Any]] = {}
_lock = threading.Lock()


def load_flight_code(src_dir: str | Path | None = None, *, extra_cflags: Iterable[str] = ()) -> tuple[Any, Any]:
    """Compile (if needed) and import the flight code; return ``(ffi, lib)``.

    ``src_dir`` defaults to the repository's ``firmware_stub``. ``extra_cflags``
    (e.g. ``["-DFSW_FIRMWARE_ID=0x1234"]``) are appended to :data:`FLIGHT_CFLAGS`
    and are part of the cache key.
    """
    src = source_dir(src_dir)
    cflags = list(FLIGHT_CFLAGS) + list(extra_cflags)
    modname = f"_fsil_fsw_{_build_key(src, cflags)}"
    with _lock:
        if modname in _loaded:
            return _loaded[modname]
        built = cached_build(cache_dir("cffi"), modname, lambda out: _build(src, modname, cflags, out))
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        path = built / f"{modname}{suffix}"
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:
            raise BuildError(f"cannot import {path}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[modname] = mod
        _loaded[modname] = (mod.ffi, mod.lib)
        return _loaded[modname]


class LoopbackFlightCode:
    """One flight-code instance in this process: bytes in as from a UART, bytes out.

    >>> fc = LoopbackFlightCode()
    >>> hello = fc.drain()          # the HELLO frame sent at boot
    >>> fc.feed(frame_bytes); out = fc.drain()
    """

    def __init__(self, src_dir: str | Path | None = None, *, extra_cflags: Iterable[str] = ()):
        self.ffi, self.lib = load_flight_code(src_dir, extra_cflags=extra_cflags)
        self.lb = self.ffi.new("fsw_loopback_t *")
        self.lib.fsw_loopback_init(self.lb)
        self._out = self.ffi.new("uint8_t[]", int(self.lib.FSW_LOOPBACK_TX_CAP))

    def feed(self, data: bytes) -> None:
        """Deliver bytes to the flight code (it may answer into its TX buffer)."""
        self.lib.fsw_loopback_feed(self.lb, data, len(data))

    def drain(self) -> bytes:
        """Bytes the flight code transmitted since the last drain."""
        n = self.lib.fsw_loopback_drain(self.lb, self._out, len(self._out))
        return bytes(self.ffi.buffer(self._out, n))

    @property
    def ctx(self) -> Any:
        """The flight code's context struct (``fsw_ctx_t``), for white-box inspection."""
        return self.lb.fsw

    @property
    def tx_overflow(self) -> int:
        return int(self.lb.tx_overflow)
