"""What a worker process does with one run: build the scenario, fly it on loopback, boil it down.

Everything here is importable by a fresh interpreter (process pool workers, Dask workers); the
result is a plain dict (numbers, strings, bytes) so it pickles cheaply.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import socket
import time
import traceback
import zlib

import numpy as np

# Columns and rate of the decimated trajectory kept for every run (the report's trajectory plots).
TRAJ_COLUMNS = ("t_s", "altitude_m", "v_up_mps", "est_alt_m", "throttle_cmd")
TRAJ_HZ = 2.0

_warm: set = set()  # the rigs this worker process has warmed up


def warm_up(rig: str = "loopback") -> None:
    """Build or load the flight code of ``rig`` and the compiled plant and IMU kernels once per
    worker process (all cached on disk), before the first run's clock starts: the reference
    flight code in-process for ``loopback``; any other rig is brought up once and taken down
    (its build, its program or QEMU started and its HELLO awaited)."""
    if rig in _warm:
        return
    from harness.cycle import load_cycle_kernels

    if rig == "loopback":
        from harness.targets import load_flight_code

        load_flight_code()
    else:
        from harness.rigs import open_rig

        with open_rig(rig_spec(rig)):
            pass
    load_cycle_kernels()
    _warm.add(rig)


_RIG_SPECS: dict = {}


def fly_on_rig(sc, rig: str = "loopback", artifacts=None):
    """Fly one scenario through the rig (its timing and flight-code settings), like every path of
    fsil; the rig file is read once per worker process, the flight code boots afresh for every
    run (a new in-process instance, a new program or QEMU)."""
    from harness.rigs import open_rig

    with open_rig(rig_spec(rig)) as up:  # no exchange's wall time kept: no campaign record holds it
        return up.fly(sc, artifacts=artifacts, round_trips=False)


def rig_spec(rig: str):
    """The RigSpec of a campaign rig (name or rig-file path), read once per process."""
    spec = _RIG_SPECS.get(rig)
    if spec is None:
        from harness.rigs import load_rig

        spec = _RIG_SPECS[rig] = load_rig(rig)
    return spec


# ------------------------------------------------------------------------------------------
# compact column storage: the per-run blobs of the campaign database (docs/campaigns.md)

COLUMNS_MAGIC = b"FSC1"
COLUMNS_PRESET = 5  # lzma preset: a 50 s crash in ~12 ms (preset 3: ~7 ms, 5 % larger; 6: ~14 ms, 1 % smaller)


def _predicted(u: np.ndarray) -> tuple[int, np.ndarray]:
    """The bit patterns ``u`` (unsigned) as their differences of order 0, 1 or 2 (modulo 2**bits:
    exact), whichever deflate (level 1, a quick stand-in for the LZMA stream) packs smallest: a
    smooth signal wants 2, a noisy or stepped one 1 or 0; returns (order, them)."""
    if u.size < 3:
        return 0, u
    best = None
    for order in (2, 1, 0):
        d = np.diff(u, order, prepend=np.zeros(order, u.dtype)) if order else u
        cost = len(zlib.compress(np.ascontiguousarray(d.view(np.uint8).reshape(-1, u.itemsize).T).tobytes(), 1))
        if best is None or cost < best[0]:
            best = (cost, order, d)
    return best[1], best[2]


def pack_columns(cols: dict, float_dtype: str = "<f4") -> bytes:
    """Telemetry columns (1-D numeric arrays, equal or not in length) as one compact blob.

    Float columns are stored as ``float_dtype``: float32 for telemetry (7 significant digits:
    0.25 mm at 3 km, 30 us at 400 s), float16 for the report's 2 Hz trajectories (0.25 s at
    400 s, 2 m at 3 km). Every column is stored as the difference of order 0, 1 or 2 of its bit
    patterns, whichever gives the smallest numbers (modulo 2**bits: exact; ``_predicted``), byte
    planes split (shuffle);
    a column equal to an earlier one as a reference to it; the column list and all columns in
    one LZMA stream. Exact float64 identity of a run is kept apart, in its digest
    (:func:`telemetry_digest`). ``unpack_columns`` inverts it."""
    import lzma

    head, parts, seen = [], [], {}
    for name, a in cols.items():
        a = np.asarray(a)
        if a.ndim != 1:
            raise ValueError(f"pack_columns: column {name} is not 1-D (shape {a.shape})")
        if a.dtype.kind == "f":
            with np.errstate(over="ignore"):  # beyond float16's 65504: inf, as the cast defines
                a = a.astype(float_dtype)
        elif a.dtype.kind in "iub":
            a = a.astype("<i8") if a.dtype.kind != "u" else a.astype("<u8")
        else:
            raise ValueError(f"pack_columns: column {name} has dtype {a.dtype}, not numeric")
        key = (a.dtype.str, a.tobytes())
        if key in seen:
            head.append({"name": name, "same_as": seen[key]})
            continue
        seen[key] = name
        ut = np.dtype(f"<u{a.itemsize}")
        u = a.view(ut)
        order, d = _predicted(u)
        head.append({"name": name, "dtype": a.dtype.str, "n": int(a.size), "order": order})
        parts.append(np.ascontiguousarray(d.view(np.uint8).reshape(-1, a.itemsize).T).tobytes())
    header = json.dumps(head, separators=(",", ":")).encode()
    body = lzma.compress(len(header).to_bytes(4, "little") + header + b"".join(parts), format=lzma.FORMAT_XZ,
                         check=lzma.CHECK_CRC32, preset=COLUMNS_PRESET)
    return COLUMNS_MAGIC + body


#: the most a stored blob may unpack to (bytes): a 400 s timeout's telemetry is ~600 kB; a blob
#: that claims more is damaged or hostile, not a run (an LZMA stream can expand ~1000-fold)
UNPACKED_MAX_BYTES = 256 * 1024 * 1024


def unpack_columns(blob: bytes) -> dict:
    """The columns of a blob from :func:`pack_columns` (or, from databases written before it, an
    ``.npz`` file), as numpy arrays."""
    import lzma

    if not blob.startswith(COLUMNS_MAGIC):
        with np.load(io.BytesIO(blob)) as z:  # older databases: numpy .npz
            return {k: z[k] for k in z.files}
    unpacker = lzma.LZMADecompressor()
    raw = unpacker.decompress(blob[len(COLUMNS_MAGIC):], max_length=UNPACKED_MAX_BYTES)
    if not unpacker.eof:
        raise ValueError(f"the blob unpacks to more than {UNPACKED_MAX_BYTES:,} bytes (or is cut short): "
                         f"no run's telemetry is that large")
    hl = int.from_bytes(raw[:4], "little")
    head = json.loads(raw[4:4 + hl])
    out, pos = {}, 4 + hl
    for h in head:
        if "same_as" in h:
            out[h["name"]] = out[h["same_as"]].copy()
            continue
        dt = np.dtype(h["dtype"])
        order = h.get("order", 2)  # blobs before the order was chosen: second differences
        if dt.kind not in "fiub" or dt.itemsize not in (1, 2, 4, 8) or order not in (0, 1, 2):
            raise ValueError(f"column {h.get('name')!r}: dtype {h['dtype']!r}, difference order {order!r}; "
                             f"allowed: a numeric dtype of 1-8 bytes and an order of 0, 1 or 2")
        n, size = h["n"], dt.itemsize
        planes = np.frombuffer(raw, np.uint8, n * size, pos).reshape(size, n)
        pos += n * size
        d = np.ascontiguousarray(planes.T).view(f"<u{size}").ravel()
        for _ in range(order):
            d = np.cumsum(d, dtype=d.dtype)
        out[h["name"]] = d.view(dt)
    return out


npz_load = unpack_columns  # the name older callers use


def npz_bytes(arrays: dict) -> bytes:
    """A numpy ``.npz`` (compressed) of ``arrays``: the exact columns, for artefact files."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def telemetry_digest(tm: dict) -> str:
    """SHA-256 (hex) of a run's telemetry exactly as flown: every column's name, dtype, shape and
    bytes in order. Equal digests: bit-identical telemetry (the proof of ``rerun``)."""
    import hashlib

    h = hashlib.sha256()
    for name, a in tm.items():
        a = np.ascontiguousarray(a)
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.reshape(-1).view(np.uint8))  # its bytes, as tobytes() gives them, without the copy
    return h.hexdigest()


def scenario_json(sc) -> str:
    def plain(o):
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            d = {"__type__": type(o).__name__}
            d.update({f.name: plain(getattr(o, f.name)) for f in dataclasses.fields(o)})
            return d
        if isinstance(o, dict):
            return {str(k): plain(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [plain(v) for v in o]
        if isinstance(o, float) and not math.isfinite(o):
            return str(o)
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        return repr(o)

    return json.dumps(plain(sc), sort_keys=True)


def failure_mode(res, findings: dict | None = None) -> str:
    """A short name for why a run did not land (empty when it landed); ``findings``: the
    result's ``findings()`` when the caller has them already."""
    if res.outcome == "landed":
        return ""
    if res.outcome in ("link-failure", "timeout"):
        return res.outcome
    env = res.scenario.envelope
    found = findings if findings is not None else res.findings()
    fv = found["first_valid_lrf"]
    pnr = found["point_of_no_return"]
    if found["lrf_ignored"]:
        return "LRF rejected by flight code"
    if fv is None:
        return "no valid LRF sample"
    if pnr is not None and pnr["t_s"] < fv["t_s"]:
        return "point of no return before first LRF fix"
    td = res.touchdown
    if pnr is not None:
        return "point of no return after LRF fix"
    if td is not None:
        over = [n for n, v, lim in (("vertical", td.v_vertical, env.v_vertical_max),
                                    ("horizontal", td.v_horizontal, env.v_horizontal_max),
                                    ("tilt", td.tilt_deg, env.tilt_max_deg)) if v > lim]
        return "touchdown " + "+".join(over) + " over limit" if over else "touchdown out of envelope"
    return res.outcome


def metrics(res) -> dict:
    td = res.touchdown
    found = res.findings()  # once, for the numbers below, the failure mode and the verdict
    fv, pnr = found["first_valid_lrf"], found["point_of_no_return"]
    ee, ig = found["max_estimate_error"], found["lrf_ignored"]
    nan = math.nan
    return {
        "outcome": res.outcome,
        "v_vertical": td.v_vertical if td else nan,
        "v_horizontal": td.v_horizontal if td else nan,
        "tilt_deg": td.tilt_deg if td else nan,
        "propellant_kg": td.propellant_kg if td else nan,
        "position_error_m": td.position_error_m if td else nan,
        "touchdown_t_s": td.t_s if td else nan,
        "first_lrf_alt_m": fv["altitude_m"] if fv else nan,
        "first_lrf_t_s": fv["t_s"] if fv else nan,
        "pnr_t_s": pnr["t_s"] if pnr else nan,
        "pnr_alt_m": pnr["altitude_m"] if pnr else nan,
        "max_est_error_m": ee["error_m"] if ee else nan,
        "lrf_rejected": ig["samples"] if ig else 0,
        "sim_time_s": res.sim_time_s,
        "failure_mode": failure_mode(res, found),
        "verdict": res.verdict(found),
        "error": res.error or "",
    }


def decimate(tm: dict) -> dict:
    t = tm["t_s"]
    if not t.size:
        return {c: tm[c] for c in TRAJ_COLUMNS}
    step = max(1, int(round(1.0 / (TRAJ_HZ * max(np.median(np.diff(t)) if t.size > 1 else 1.0, 1e-9)))))
    idx = np.unique(np.r_[np.arange(0, t.size, step), t.size - 1])
    return {c: tm[c][idx].astype(np.float32) for c in TRAJ_COLUMNS}


def run_robustness(res, requirements) -> list[tuple[str, float, float | None]]:
    """``(requirement, robustness, t_worst_s)`` of each requirement on one run (harness.requirements;
    robustness in the requirement's unit, t_worst_s in s). A requirement that cannot be evaluated on
    this run (e.g. its time window holds no sample) gets NaN, never an error for the whole run."""
    from harness.errors import ConfigError
    from harness.requirements import resolve, robustness_of, signals

    t, sig = signals(res)
    out = []
    for req in requirements:
        name, formula, unit = resolve(req, res.scenario)
        try:
            r = robustness_of(t, sig, formula, name, unit)
            out.append((req, r.value, r.t_worst_s))
        except ConfigError:
            out.append((req, math.nan, None))
    return out


_BASE: dict = {}  # {(campaign invocation, scenario reference): resolved scenario}, the latest campaign only


def _base_scenario(task: dict):
    """The campaign's base scenario, resolved (file read and validated) once per worker process
    and campaign invocation (``task["campaign_key"]``: a scenario file edited between two
    campaigns is read again). None: resolve it for this run alone."""
    from harness.campaign.spec import code_reference

    key = task.get("campaign_key")
    if key is None or code_reference(task["scenario"]) is not None:  # code is called for every run, as before
        return None
    k = (key, task["scenario"], tuple(task.get("allow_import", ())))
    if k not in _BASE:
        from harness.campaign.spec import resolve_scenario

        _BASE.clear()
        try:
            _BASE[k] = resolve_scenario(task["scenario"], task.get("allow_import", ()))
        except Exception:  # noqa: BLE001 - build_scenario resolves it again and names the error
            return None
    return _BASE[k]


def fly_one(task: dict) -> dict:
    """Fly one planned run. Exceptions come back as an error record, never raised."""
    from harness.campaign.spec import build_scenario

    wall0 = time.perf_counter()
    out = {"run_id": task["run_id"], "worker": f"{socket.gethostname()}:{os.getpid()}", "status": "error"}
    try:
        warm_up(task.get("rig", "loopback"))
        sc = build_scenario(task["scenario"], task["overrides"], task["seed"], task.get("origin", "<campaign>"),
                            allow_import=task.get("allow_import", ()), base=_base_scenario(task))
        res = fly_on_rig(sc, task.get("rig", "loopback"))
        out.update(metrics(res))
        if task.get("requirements"):
            out["robustness"] = run_robustness(res, task["requirements"])
        out["status"] = "done"
        out["telemetry_sha256"] = telemetry_digest(res.telemetry)
        keep = task.get("keep_telemetry", "failed")
        if keep == "all" or (keep == "failed" and not res.landed):
            out["telemetry"] = pack_columns(res.telemetry)  # the report's trajectory comes from it
        else:
            out["traj"] = pack_columns(decimate(res.telemetry), float_dtype="<f2")
    except Exception as exc:  # noqa: BLE001 - a bad run is data, the campaign goes on
        tb = traceback.format_exc(limit=6)
        out.update(outcome="error", failure_mode=f"error: {type(exc).__name__}",
                   error=f"{type(exc).__name__}: {exc}\n{tb}")
    out["wall_s"] = time.perf_counter() - wall0
    return out


def error_record(run_id: int, mode: str, text: str, wall_s: float = math.nan, worker: str = "") -> dict:
    """The record of a run that never returned (worker died, wall timeout, cluster trouble)."""
    return {"run_id": run_id, "status": "error", "outcome": "error", "failure_mode": f"error: {mode}",
            "error": text, "wall_s": wall_s, "worker": worker}
