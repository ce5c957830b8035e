"""Stat stamps: whether a file read before is still the same, for per-process caches of what was
parsed or hashed from it (a campaign worker flies thousands of runs from the same files).

A stamp is ``(mode, device, inode, size, mtime_ns, ctime_ns)``: a write changes mtime and ctime,
a rename over the file its inode, a chmod its ctime. A file changed within its file system's
time-stamp resolution of the moment it was stamped could change again unseen ("racily clean", as
git calls it), so a cache keeps only stamps that are :func:`settled`.
"""
from __future__ import annotations

import os
import stat
import time

#: a file that changed less than this long ago (ns) is read again next time rather than cached
SETTLE_NS = 2_000_000_000


def stamp(path) -> tuple | None:
    """The stamp of ``path`` (symbolic links followed), None when it cannot be stat-ed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    return (st.st_mode, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_regular(s: tuple | None) -> bool:
    """Whether a stamp is that of a regular file."""
    return s is not None and stat.S_ISREG(s[0])


def settled(*stamps: tuple | None) -> bool:
    """Whether every stamp is of an existing file that last changed more than SETTLE_NS ago."""
    recent = time.time_ns() - SETTLE_NS
    return all(s is not None and max(s[4], s[5]) < recent for s in stamps)
