"""Shared helpers of the C-level flight-code tests (test_c_*.py): constants, the parameter
table and quaternion algebra for their small test plants."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.frames import G0, MOON_GM as GM, MOON_RADIUS as R_MOON  # noqa: F401  (re-exported)
from harness.targets import parse_param_table

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


def params(ffi, lib, **over):
    """A ``fsw_params_t`` with the flight code's defaults and ``over`` (NAME=value) set through
    ``fsw_param_set``, each checked as accepted."""
    p = ffi.new("fsw_params_t *")
    lib.fsw_params_defaults(p)
    for k, v in over.items():
        assert lib.fsw_param_set(p, PARAMS[k]["id"], float(v), ffi.NULL) == 0, k
    return p


def guid(ffi, lib, **over):
    """A guidance state reset from the default parameters with ``over`` applied."""
    g = ffi.new("fsw_guid_t *")
    lib.fsw_guid_reset(g, params(ffi, lib, **over))
    return g


def loopback(ffi, lib):
    """Boot the in-process flight code (its HELLO is drained). Returns ``(lb, exchange)``:
    ``exchange(frame)`` feeds the bytes of one frame and returns the decoded frames
    (``protocol.Frame``) of the answer."""
    from harness.protocol import decode_frame

    lb = ffi.new("fsw_loopback_t *")
    lib.fsw_loopback_init(lb)
    out = ffi.new("uint8_t[]", 8192)

    def exchange(frame):
        lib.fsw_loopback_feed(lb, frame, len(frame))
        n = lib.fsw_loopback_drain(lb, out, 8192)
        return [decode_frame(f + b"\0") for f in bytes(ffi.buffer(out, n)).split(b"\0")[:-1]]

    exchange(b"")
    return lb, exchange


def boot_configured(ffi, lib, plant, config=None, nav_r0_x_offset_m: float = 0.0):
    """Boot the in-process flight code and configure it with the test plant's initial state
    (position, velocity, attitude, mass; ``nav_r0_x_offset_m`` added to the position estimate's
    x) plus ``config``, checking every CONFIG_ACK. Returns ``(lb, exchange, seq)``:
    ``exchange(frame)`` feeds one frame and returns the decoded frames of the answer; ``seq`` is
    the next sequence number."""
    from harness.protocol import Config, encode_frame

    lb, exchange = loopback(ffi, lib)
    cfg = dict(NAV_R0_X=plant.r[0] + nav_r0_x_offset_m, NAV_R0_Y=plant.r[1], NAV_R0_Z=plant.r[2],
               NAV_V0_X=plant.v[0], NAV_V0_Y=plant.v[1], NAV_V0_Z=plant.v[2],
               NAV_Q0_W=plant.q[0], NAV_Q0_X=plant.q[1], NAV_Q0_Y=plant.q[2], NAV_Q0_Z=plant.q[3],
               MASS0=plant.m)
    cfg.update(config or {})
    items = list(cfg.items())
    seq = 0
    for k, v in items:
        acks = exchange(encode_frame(Config(PARAMS[k]["id"], float(v), 0), seq, 0))
        seq += 1
        assert acks[0].msg.status == 0, (k, v, acks[0].msg)
    acks = exchange(encode_frame(Config(0, 0.0, 1), seq, 0))  # COMMIT (protocol v2: its own frame)
    seq += 1
    assert (acks[0].msg.param_id, acks[0].msg.status) == (0, 3)
    return lb, exchange, seq
