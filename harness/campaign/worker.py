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

COLUMNS_MAGIC = b"FSC2"  # the blobs written now: a CRC-32, a column list and pcodec streams (pack_columns)
COLUMNS_MAGIC_LZMA = b"FSC1"  # written until 2026-12-01 (one LZMA stream): still read
PCO_LEVEL = 9  # a 50 s crash in ~2.7 ms; pcodec's default 8: 1 % larger, as fast; 10: as small, 400 s timeouts 30 % slower
HOLD_MAX_RUNS = 0.25  # a column of at most this many runs of equal values per sample is stored as its runs
ORDER_MAX, ORDER_BLOCK, ORDER_BLOCKS = 5, 128, 4  # difference orders tried, on 4 blocks of 128 samples
#: zlib's preset dictionary for the column list (part of the format: never change it, make a new
#: magic): the JSON of a typical list, so a blob's list packs to ~1/3 of its size with zlib alone
_HEAD_ZDICT = (b'[{"name":"gravity_mps2","dtype":"<f4","n":,"code":"pco","bytes":[]},'
               b'{"name":"lrf_innovation_m","dtype":"<f4","n":,"code":"hold","runs":,"bytes":[,]},'
               b'{"name":"lrf_status","same_as":"lrf_valid"},'
               b'{"name":"truth_alt_site_m","same_as":"altitude_m"},{"name":"est_alt_m",'
               b'{"name":"lrf_new",{"name":"lrf_range_m","code":"hold","runs":{"name":"mode",'
               b'{"name":"engine_on",{"name":"throttle_cmd","dtype":"<f2",{"name":"thrust_n",'
               b'{"name":"mass_kg",{"name":"tilt_deg","dtype":"<f4","n":,"code":"pco","bytes":[]},'
               b'{"name":"v_horizontal_mps",'
               b'{"name":"v_up_mps","dtype":"<f4","n":,"code":"pco","bytes":[]},{"name":"altitude_m",'
               b'{"name":"t_s","dtype":"<f4","n":,"code":"ramp","start":0.0,"step":0.02},')

#: the most a stored blob may unpack to (bytes): a 400 s timeout's telemetry is ~1.4 MB (float32); a blob
#: that claims more is damaged or hostile, not a run (an LZMA stream can expand ~1000-fold)
UNPACKED_MAX_BYTES = 256 * 1024 * 1024
_HEAD_MAX_BYTES = 1024 * 1024  # the column list of a blob, unpacked


PAGE_MAX = 2 ** 18  # numbers per pcodec chunk (one page: pcodec's default page); a longer column: equal chunks
_PCO_CONFIGS: dict = {}
_PCO_DTYPES = {"f2": "f16", "f4": "f32", "f8": "f64", "i2": "i16", "i4": "i32", "i8": "i64", "u2": "u16", "u4": "u32",
               "u8": "u64"}


def _pages(n: int) -> list[int]:
    """The numbers in each pcodec chunk of a column of ``n`` (n >= 1): at most PAGE_MAX, equal."""
    count = -(-n // PAGE_MAX)
    return [n // count + (i < n % count) for i in range(count)]


def _pco(a: np.ndarray, order: int | None = None) -> list[bytes]:
    """``a`` (1-D numbers, at least one) as pcodec chunks of ``_pages(a.size)`` numbers, each its
    metadata and one page (lossless, every bit), without pcodec's own framing: the blob's column
    list gives their count, dtype and sizes. The numbers are taken as their differences of
    ``order`` (0: as they are; None: the order pcodec picks)."""
    from pcodec import ChunkConfig, DeltaSpec, wrapped

    config = _PCO_CONFIGS.get((PCO_LEVEL, order))
    if config is None:
        delta = DeltaSpec.auto() if order is None else DeltaSpec.try_consecutive(order) if order else DeltaSpec.no_op()
        config = _PCO_CONFIGS[PCO_LEVEL, order] = ChunkConfig(compression_level=PCO_LEVEL, delta_spec=delta)
    chunks, first, file = [], 0, wrapped.FileCompressor()
    for n in _pages(a.size):
        chunk = file.chunk_compressor(np.ascontiguousarray(a[first:first + n]), config)
        if chunk.n_per_page() != [n]:
            raise RuntimeError(f"pcodec pages {chunk.n_per_page()[:4]}, not [{n}]: PAGE_MAX is not pcodec's")
        chunks.append(chunk.write_meta() + chunk.write_page(0))
        first += n
    return chunks


def _sizes(stream: list[bytes]) -> int | list[int]:
    """A stream's entry in the column list: its size in bytes, or its chunks' sizes if several."""
    return len(stream[0]) if len(stream) == 1 else [len(c) for c in stream]


def _difference_orders(columns: np.ndarray) -> np.ndarray:
    """For each row of ``columns`` (equal-length columns of one dtype), the difference order
    0..``ORDER_MAX`` whose differences are smallest, as pcodec sees them (numbers mapped to
    order-preserving unsigned integers; cost: the sum of log2 of each difference's distance from
    its block's median, over ``ORDER_BLOCKS`` blocks of ``ORDER_BLOCK`` samples spread over the
    run). Smooth physics wants 2-4, sample-and-hold 1, flags and noise 0. Picking it here takes
    ~1 ms for 18 columns where pcodec's own search takes ~2 ms and misses (a column up to 20 % larger)."""
    rows, n = columns.shape
    u = columns.view(f"<u{columns.itemsize}")
    if n > ORDER_BLOCK * ORDER_BLOCKS:
        first = np.linspace(0, n - ORDER_BLOCK, ORDER_BLOCKS).astype(np.int64)
        u = u[:, (first[:, None] + np.arange(ORDER_BLOCK)).ravel()].reshape(rows, ORDER_BLOCKS, ORDER_BLOCK)
    else:
        u = u.reshape(rows, 1, n)
    top = u.dtype.type(1 << (8 * u.itemsize - 1))
    if columns.dtype.kind == "f":
        u = np.where(u & top, ~u, u | top)
    elif columns.dtype.kind == "i":
        u = u ^ top
    d = u.astype(np.int64)  # uint64 beyond 2**63 wraps: a cost estimate only
    top_order = min(ORDER_MAX, u.shape[-1] - 1)
    cost = np.full((ORDER_MAX + 1, rows), np.inf)
    for order in range(top_order + 1):
        if order:
            d = d[..., 1:] - d[..., :-1]
        r = d[..., top_order - order:]  # the same samples for every order
        mid = r.shape[-1] // 2
        r = r - np.partition(r, mid, axis=-1)[..., mid:mid + 1]  # the distance from the (upper) median
        cost[order] = np.log2(np.abs(r.astype(np.float32)) + 1).sum(axis=(1, 2))
    return np.argmin(cost, axis=0)


def _ramp_or_hold(raw: np.ndarray, a: np.ndarray) -> tuple[dict, list[list[bytes]]] | None:
    """A column ``a`` (its stored dtype; ``raw``: as given) that is exactly ``start + k * step``
    (k = 0, 1, ...; float64, then cast: the time column) as those two numbers ("ramp"); one of
    few runs of equal values (sample-and-hold, flags, modes) as the runs' lengths and values
    ("hold"); None for any other."""
    n = int(a.size)
    if n < 2:
        return None
    start, step = (float(raw[0]), float(raw[1]) - float(raw[0])) if a.dtype.kind == "f" else (math.nan, math.nan)
    if math.isfinite(start) and math.isfinite(step):  # (JSON keeps a finite float exactly, not a NaN's payload)
        with np.errstate(all="ignore"):  # the last sample first: most columns are no ramp
            ramp = np.array([start + (n - 1) * step]).astype(a.dtype)
            if ramp.tobytes() == a[-1:].tobytes():
                ramp = (start + np.arange(n) * step).astype(a.dtype)
        if ramp.tobytes() == a.tobytes():
            return {"code": "ramp", "start": start, "step": step}, []
    u = a.view(f"<u{a.itemsize}")
    starts = np.flatnonzero(u[1:] != u[:-1]) + 1  # bit patterns: NaN runs and -0 count like any value
    if starts.size + 1 > HOLD_MAX_RUNS * n:
        return None
    bounds = np.r_[0, starts, n]
    lengths, values = np.diff(bounds).astype("<u8"), a[bounds[:-1]]
    streams = [_pco(lengths), _pco(values)]  # short: pcodec's own search of the order is cheap here
    return {"code": "hold", "runs": int(lengths.size), "bytes": [_sizes(s) for s in streams]}, streams


def pack_columns(cols: dict, float_dtype: str = "<f4") -> bytes:
    """Telemetry columns (1-D numeric arrays, equal or not in length) as one compact blob.

    Float columns are stored as ``float_dtype``: float32 for telemetry (7 significant digits:
    0.25 mm at 3 km, 30 us at 400 s), float16 for the report's 2 Hz trajectories (0.25 s at
    400 s, 2 m at 3 km); integers as int64 (uint64 if unsigned). Each column is stored exactly,
    every bit: the time column as its start and step, a sample-and-hold or flag column as its
    runs (``_ramp_or_hold``), any other as a pcodec stream (https://github.com/pcodec/pcodec) of
    its differences of the order that suits it (``_difference_orders``), entropy-coded in bins;
    a column equal to an earlier one as a reference to it. Layout: ``COLUMNS_MAGIC``, the
    CRC-32 of the rest, the column list's length (4 bytes each, little-endian), the column list
    (JSON, zlib with ``_HEAD_ZDICT``), pcodec's file header (behind its length, 1 byte), then
    the columns' streams in order (docs/campaigns.md, "blobs"). Exact float64 identity of a run
    is kept apart, in its digest (:func:`telemetry_digest`). ``unpack_columns`` inverts it."""
    head, streams, seen, plain = [], {}, {}, {}
    for name, raw in cols.items():
        raw = np.asarray(raw)
        if raw.ndim != 1:
            raise ValueError(f"pack_columns: column {name} is not 1-D (shape {raw.shape})")
        if raw.dtype.kind == "f":
            with np.errstate(over="ignore"):  # beyond float16's 65504: inf, as the cast defines
                a = raw.astype(float_dtype)
        elif raw.dtype.kind in "iub":
            a = raw.astype("<i8") if raw.dtype.kind != "u" else raw.astype("<u8")
        else:
            raise ValueError(f"pack_columns: column {name} has dtype {raw.dtype}, not numeric")
        key = (a.dtype.str, a.tobytes())
        if key in seen:
            head.append({"name": name, "same_as": seen[key]})
            continue
        seen[key] = name
        head.append({"name": name, "dtype": a.dtype.str, "n": int(a.size)})
        coded = _ramp_or_hold(raw, a)
        if coded is None:
            plain.setdefault((a.dtype.str, a.size), []).append((len(head) - 1, a))
        else:
            head[-1].update(coded[0])
            streams[len(head) - 1] = coded[1]
    for (_dtype, n), group in plain.items():  # columns of one dtype and length: orders picked together
        orders = _difference_orders(np.stack([a for _i, a in group])) if n else [0] * len(group)
        for (i, a), order in zip(group, orders):
            streams[i] = [_pco(a, int(order))] if n else []
            head[i].update(code="pco", bytes=[_sizes(s) for s in streams[i]])
    from pcodec import wrapped

    packer = zlib.compressobj(9, zdict=_HEAD_ZDICT)
    header = packer.compress(json.dumps(head, separators=(",", ":")).encode()) + packer.flush()
    pco_header = wrapped.FileCompressor().write_header()
    body = b"".join([len(header).to_bytes(4, "little"), header, len(pco_header).to_bytes(1, "little"), pco_header,
                     *(c for i in range(len(head)) for stream in streams.get(i, ()) for c in stream)])
    return COLUMNS_MAGIC + zlib.crc32(body).to_bytes(4, "little") + body


def unpack_columns(blob: bytes) -> dict:
    """The columns of a blob from :func:`pack_columns` (or, from databases written before it, of
    the LZMA layout before it or an ``.npz`` file), as numpy arrays. A blob that is damaged or
    would unpack to more than ``UNPACKED_MAX_BYTES`` is refused (ValueError) before it is."""
    if blob.startswith(COLUMNS_MAGIC):
        return _unpack_pco(blob)
    if blob.startswith(COLUMNS_MAGIC_LZMA):
        return _unpack_lzma(blob)
    with np.load(io.BytesIO(blob)) as z:  # older databases: numpy .npz
        return {k: z[k] for k in z.files}


def _count(v) -> bool:
    return type(v) is int and v >= 0


def _column_dtype(h: dict) -> np.dtype:
    try:
        dt = np.dtype(h.get("dtype"))
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "fiu" or dt.itemsize not in (2, 4, 8) or dt.byteorder == ">":
        raise ValueError(f"column {h.get('name')!r}: dtype {h.get('dtype')!r}; allowed: float16/32/64, "
                         f"(u)int16/32/64, little-endian")
    return dt


def _unpco(pco_file, chunks: list[bytes], dst: np.ndarray, name) -> np.ndarray:
    """Fill ``dst`` from the pcodec ``chunks`` of one stream (``_pco``; ``pco_file``: the blob's
    pcodec header), which must hold exactly ``_pages(dst.size)`` numbers each and nothing after
    them; pcodec writes into ``dst`` only, the count we give for each page."""
    def damaged(why):
        return ValueError(f"column {name!r}: its pcodec stream is damaged ({why})")

    pages = _pages(dst.size)
    if len(chunks) != len(pages):
        raise damaged(f"{len(chunks)} chunks for {dst.size} numbers; {len(pages)} wanted")
    first = 0
    for chunk, n in zip(chunks, pages):
        try:
            reader, pos = pco_file.chunk_decompressor(chunk, _PCO_DTYPES[dst.dtype.str[1:]])
            progress, used = reader.read_page_into(chunk[pos:], n, dst[first:first + n])
        except Exception as exc:  # noqa: BLE001 - pcodec's errors of a damaged stream
            raise damaged(exc) from None
        except BaseException as exc:  # a panic of pcodec's Rust code (pyo3 raises it as a BaseException)
            if type(exc).__name__ != "PanicException":
                raise
            raise damaged(exc) from None
        if progress.n_processed != n or not progress.finished or pos + used != len(chunk):
            raise damaged(f"a chunk of {len(chunk)} bytes read as {pos + used} bytes, {progress.n_processed} of "
                          f"{n} numbers")
        first += n
    return dst


def _column_list(blob: bytes) -> tuple[list, int]:
    """The column list of a ``COLUMNS_MAGIC`` blob, checked, and where its streams begin. Every
    column's size is known from it, so a blob that would unpack past ``UNPACKED_MAX_BYTES``
    (copies of a column included) is refused before anything is unpacked."""
    pos = len(COLUMNS_MAGIC) + 8
    if len(blob) < pos or zlib.crc32(blob[pos - 4:]) != int.from_bytes(blob[pos - 8:pos - 4], "little"):
        raise ValueError(f"the blob is damaged or cut short ({len(blob)} bytes; their CRC-32 does not match)")
    hl = int.from_bytes(blob[pos - 4:pos], "little")
    if pos + hl > len(blob):
        raise ValueError(f"the blob is cut short ({len(blob)} bytes; its column list alone takes {hl})")
    try:
        unz = zlib.decompressobj(zdict=_HEAD_ZDICT)
        text = unz.decompress(blob[pos:pos + hl], _HEAD_MAX_BYTES)
        if not unz.eof:
            raise ValueError(f"the column list is cut short or longer than {_HEAD_MAX_BYTES:,} bytes")
        head = json.loads(text)
    except (zlib.error, RecursionError) as exc:
        raise ValueError(f"the column list is damaged ({exc})") from None
    if not isinstance(head, list) or not all(isinstance(h, dict) and isinstance(h.get("name"), str) for h in head):
        raise ValueError("the column list is not a list of named columns")
    nbytes = {}
    for h in head:
        if "same_as" in h:
            if h["same_as"] not in nbytes:
                raise ValueError(f"column {h['name']!r}: a copy of {h['same_as']!r}, which comes nowhere before it")
            nbytes[h["name"]] = nbytes[h["same_as"]]
        elif not _count(h.get("n")):
            raise ValueError(f"column {h['name']!r}: length {h.get('n')!r} is not a count")
        else:
            nbytes[h["name"]] = h["n"] * _column_dtype(h).itemsize
        if sum(nbytes.values()) > UNPACKED_MAX_BYTES:
            raise ValueError(f"the blob unpacks to more than {UNPACKED_MAX_BYTES:,} bytes: no run's telemetry is "
                             f"that large")
    return head, pos + hl


def _unpack_pco(blob: bytes) -> dict:
    from pcodec import wrapped

    head, pos = _column_list(blob)
    size = blob[pos] if pos < len(blob) else 0
    try:
        pco_file, used = wrapped.FileDecompressor.new(blob[pos + 1:pos + 1 + size])
    except Exception as exc:  # noqa: BLE001 - pcodec's error of a damaged header
        raise ValueError(f"the blob's pcodec header is damaged ({exc})") from None
    if used != size:
        raise ValueError(f"the blob's pcodec header is damaged ({size} bytes, {used} read)")
    pos += 1 + size
    out = {}
    for h in head:
        name = h["name"]
        if "same_as" in h:
            out[name] = out[h["same_as"]].copy()
            continue
        dt, n, code = _column_dtype(h), h["n"], h.get("code")
        if code == "ramp":
            start, step = h.get("start"), h.get("step")
            if not all(type(v) in (int, float) for v in (start, step)):
                raise ValueError(f"column {name!r}: a ramp from {start!r} by {step!r}, not numbers")
            with np.errstate(all="ignore"):
                out[name] = (float(start) + np.arange(n) * float(step)).astype(dt)
            continue
        sizes = h.get("bytes")
        want = {"pco": 1 if n else 0, "hold": 2}.get(code)
        if want is None or not isinstance(sizes, list) or len(sizes) != want:
            raise ValueError(f"column {name!r}: coding {code!r}, streams {sizes!r}; allowed: ramp, hold (2 streams), "
                             f"pco (1)")
        streams = []
        for size in sizes:  # a stream: its size, or its chunks' sizes
            chunks = size if isinstance(size, list) else [size]
            if not chunks or not all(map(_count, chunks)) or pos + sum(chunks) > len(blob):
                raise ValueError(f"column {name!r}: a stream of {size!r} bytes; within the blob of {len(blob)}")
            streams.append([])
            for c in chunks:
                streams[-1].append(blob[pos:pos + c])
                pos += c
        if code == "pco":
            out[name] = _unpco(pco_file, streams[0], np.empty(n, dt), name) if n else np.empty(0, dt)
            continue
        runs = h.get("runs")
        if not _count(runs) or not 1 <= runs <= n:
            raise ValueError(f"column {name!r}: {runs!r} runs of equal values in {n} samples")
        lengths = _unpco(pco_file, streams[0], np.empty(runs, "<u8"), name)
        if not lengths.all() or lengths.max() > n or int(lengths.sum()) != n:
            raise ValueError(f"column {name!r}: its runs' lengths do not add up to its {n} samples")
        out[name] = np.repeat(_unpco(pco_file, streams[1], np.empty(runs, dt), name), lengths.astype(np.intp))
    if pos != len(blob):
        raise ValueError(f"{len(blob) - pos} bytes after the last column")
    return out


def _unpack_lzma(blob: bytes) -> dict:
    """A blob of the layout written until 2026-12-01 (``COLUMNS_MAGIC_LZMA``): the column list
    (its length in 4 bytes, JSON) and every column as the difference of order 0, 1 or 2 of its
    bit patterns (``order``; blobs before it was recorded: 2), byte planes split, in one LZMA
    (xz) stream."""
    import lzma

    unpacker = lzma.LZMADecompressor()
    raw = unpacker.decompress(blob[len(COLUMNS_MAGIC_LZMA):], max_length=UNPACKED_MAX_BYTES)
    if not unpacker.eof:
        raise ValueError(f"the blob unpacks to more than {UNPACKED_MAX_BYTES:,} bytes (or is cut short): "
                         f"no run's telemetry is that large")
    hl = int.from_bytes(raw[:4], "little")
    head = json.loads(raw[4:4 + hl])
    out, pos, copied = {}, 4 + hl, 0
    for h in head:
        if "same_as" in h:
            copied += out[h["same_as"]].nbytes  # a list of many copies of one column: bounded too
            if copied > UNPACKED_MAX_BYTES:
                raise ValueError(f"the blob unpacks to more than {UNPACKED_MAX_BYTES:,} bytes (copies of columns): "
                                 f"no run's telemetry is that large")
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
