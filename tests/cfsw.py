"""Shared helpers of the C-level flight-code tests (test_c_*.py): constants, the parameter
table and quaternion algebra for their small test plants."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.frames import G0, MOON_GM as GM, MOON_RADIUS as R_MOON  # noqa: F401  (re-exported)
from harness.fsw_build import parse_param_table

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {r["name"]: r for r in parse_param_table(ROOT / "firmware_stub" / "fsw_params.def")}
# upright at the site: body +z along MCI +x (rotation of +90 deg about y)
Q_UP = (math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0)


def qmul(a, b):
    """Quaternion product (scalar first)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def qrot(q, v):
    """Rotate vector v by quaternion q (scalar first)."""
    w, x, y, z = q
    qv = np.array([x, y, z])
    t = 2.0 * np.cross(qv, v)
    return v + w * t + np.cross(qv, t)
