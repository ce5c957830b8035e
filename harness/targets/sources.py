"""Where the flight code is and what identifies a build of it.

``firmware_stub/sources.txt`` lists the portable flight-code sources once; every target (the
in-process cffi module, the host program, the Cortex-M4F firmware) compiles that list plus its
own HAL. A build is identified by :func:`content_key`: a hash of every input byte, the flags and
the tool versions, so editing any C file, header or ``.def`` rebuilds on the next call.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent
FIRMWARE_DIR = ROOT / "firmware_stub"
TARGETS_DIR = FIRMWARE_DIR / "targets"
HOST_DIR = TARGETS_DIR / "host"
MPS2_DIR = TARGETS_DIR / "mps2_an386"


def default_src_dir() -> Path:
    """``firmware_stub/`` of this repository."""
    return FIRMWARE_DIR


def source_dir(src_dir: str | Path | None) -> Path:
    """``src_dir`` as an absolute path (the repository's firmware_stub/ when None)."""
    return Path(src_dir).resolve() if src_dir else FIRMWARE_DIR


def flight_sources(src_dir: str | Path | None = None) -> list[Path]:
    """The portable flight-code ``.c`` files: ``<src_dir>/sources.txt``, one path a line, ``#`` comments."""
    src = source_dir(src_dir)
    listing = src / "sources.txt"
    try:
        text = listing.read_text()
    except OSError as exc:
        raise ConfigError(f"{listing}: cannot read the flight-code source list ({exc.strerror}); "
                          f"every flight-code directory has a sources.txt naming its portable .c files") from exc
    return [src / line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


portable_sources = flight_sources  # the name docs/targets.md uses


def build_inputs(*dirs: Path) -> list[Path]:
    """The files of ``dirs`` a build depends on besides its ``.c`` list: headers, ``.def``, sources.txt."""
    out: list[Path] = []
    for d in dirs:
        out += sorted(d.glob("*.h")) + sorted(d.glob("*.def")) + sorted(d.glob("sources.txt"))
    return out


def content_key(files: Iterable[Path], parts: Iterable[str] = ()) -> str:
    """A short hash of the files' paths and bytes and of ``parts`` (flags, tool versions, cdef)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(b"\0F" + part.encode())
    for path in sorted(set(Path(f) for f in files)):
        h.update(b"\0P" + str(path).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:20]
