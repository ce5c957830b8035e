"""Names and strings that come from files, databases or devices, made safe to use.

Two rules hold everywhere in fsil: a name read from data never leaves the output folder it is
joined to (``safe_component``, ``inside``), and text read from a device or a file never reaches a
terminal with its control bytes intact (``printable``).
"""
from __future__ import annotations

import re
from pathlib import Path

from harness.errors import ConfigError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=@-]+")


def safe_component(name: str, *, what: str = "name") -> str:
    """One path component made from ``name``: unsafe characters become ``_``, no leading dots,
    never empty, at most 120 characters. ``../../x`` becomes ``_.._x``, which stays in its folder."""
    if not isinstance(name, str):
        raise ConfigError(f"{what} {name!r} must be a string")
    s = _UNSAFE.sub("_", name).lstrip(".") or "_"
    return s[:120]


def inside(base: Path | str, *parts: str) -> Path:
    """``base / part / ...`` with each part passed through ``safe_component``; raises ConfigError
    if the result would still resolve outside ``base`` (it cannot, but the check is the contract)."""
    base = Path(base)
    out = base.joinpath(*(safe_component(p) for p in parts))
    try:
        out.resolve().relative_to(base.resolve())
    except ValueError as exc:
        raise ConfigError(f"path {out} would leave the output folder {base}") from exc
    return out


def printable(text: str | bytes, limit: int = 200) -> str:
    """``text`` with control characters (terminal escapes among them) shown as ``\\xNN`` escapes,
    cut to ``limit`` characters. Use for anything a device or a file supplied."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    out = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o < 0xA0 or o in (0x2028, 0x2029, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C,
                                                 0x202D, 0x202E):
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(ch)
    s = "".join(out)
    return s if len(s) <= limit else s[:limit] + "..."
