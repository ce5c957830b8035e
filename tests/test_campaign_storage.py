"""What a campaign database keeps per run (issue 15): compact blobs, the telemetry digest of every
run, telemetry of failed runs only, exact reruns from it, and databases of older schema versions.
Real campaigns on a real process pool, real SQLite files, the real ``fsil`` CLI."""
from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.campaign import rerun, results, run_campaign
from harness.campaign.store import SCHEMA_VERSION, Store
from harness.campaign.worker import TRAJ_COLUMNS, pack_columns, telemetry_digest, unpack_columns

from campaign_helpers import m2_fix_spec  # tests/ is on sys.path (a helper module, not a test)

REPO = Path(__file__).resolve().parent.parent

SPEC = m2_fix_spec("storage", 11, 1, 60, dispersions='"v_up_mps" = { dist = "uniform", low = -61.0, high = -59.0 }')


def test_packed_columns_round_trip_every_float32_bit_and_every_integer():
    rng = np.random.default_rng(3)
    t = np.arange(5000) * 0.02
    cols = {"t_s": t, "altitude_m": 3000.0 - 55.0 * t + rng.normal(0, 0.3, t.size), "copy": None,
            "flag": (t > 40).astype(np.float64), "count": np.arange(5000, dtype=np.int32) * 7,
            "odd": np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4e38, -1.0]), "empty": np.zeros(0)}
    cols["copy"] = cols["altitude_m"].copy()
    back = unpack_columns(pack_columns(cols))
    assert list(back) == list(cols)
    for name, a in cols.items():
        b = back[name]
        if a.dtype.kind == "f":
            assert b.dtype == np.float32 and b.tobytes() == a.astype(np.float32).tobytes(), name  # every bit, -0, nan
        else:
            assert b.dtype == np.int64 and np.array_equal(b, a), name
    # smooth signals pack far below their raw size (second differences of the bit patterns)
    assert len(pack_columns({"t_s": t})) < t.size // 10
    half = unpack_columns(pack_columns(cols, float_dtype="<f2"))  # the report's trajectories
    assert half["altitude_m"].dtype == np.float16
    assert half["altitude_m"].tobytes() == cols["altitude_m"].astype(np.float16).tobytes()
    assert half["odd"][5] == np.inf  # 3.4e38 is beyond float16: inf, no warning
    with pytest.raises(ValueError, match="column s .*not numeric"):
        pack_columns({"s": np.array(["a"])})


def test_blobs_of_older_databases_npz_still_unpack():
    buf = io.BytesIO()
    np.savez_compressed(buf, t_s=np.arange(3.0), altitude_m=np.array([3.0, 2.0, 1.0]))
    old = unpack_columns(buf.getvalue())
    assert old["altitude_m"].dtype == np.float64 and old["altitude_m"].tolist() == [3.0, 2.0, 1.0]


def test_digest_changes_with_one_bit_of_one_sample():
    tm = {"t_s": np.arange(100) * 0.02, "altitude_m": np.linspace(3000.0, 0.0, 100)}
    d = telemetry_digest(tm)
    tm2 = {k: v.copy() for k, v in tm.items()}
    tm2["altitude_m"][57] = np.nextafter(tm2["altitude_m"][57], np.inf)
    assert telemetry_digest(tm2) != d and telemetry_digest(dict(tm)) == d
    assert telemetry_digest({"altitude_m": tm["altitude_m"], "t_s": tm["t_s"]}) != d  # column order counts


def _copy(src: Path, dst: Path) -> None:
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()


@pytest.fixture(scope="module")
def flown(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("storage")
    spec = tmp / "spec.toml"
    spec.write_text(SPEC)
    db = tmp / "c.sqlite"
    out = run_campaign(spec, db, workers=2, progress=False)
    assert out.flown == 2
    return tmp, db, results(db)


def test_failed_runs_keep_telemetry_landed_runs_a_trajectory_every_run_a_digest(flown):
    _tmp, db, tab = flown
    assert sorted(tab["outcome"][tab["code"] == "fixed"]) == ["landed"]
    assert (tab["outcome"][tab["code"] == "as-flown"] != "landed").all()  # a late LRF fix crashes the as-flown code
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT r.run_id, r.outcome, r.telemetry_sha256, r.scenario_json, b.traj, b.telemetry FROM runs r "
            "JOIN blobs b USING (run_id)")}
    assert len(rows) == 2
    for rid, (outcome, digest, sc_json, traj, telemetry) in rows.items():
        assert len(digest) == 64 and sc_json is None  # the scenario is rebuilt from params + seed
        if outcome == "landed":
            assert telemetry is None and set(unpack_columns(traj)) == set(TRAJ_COLUMNS)
            assert len(traj) < 6_000  # ~150 s at 2 Hz: 5 columns x 300 samples, 6 kB raw in float32
        else:
            assert traj is None
            tm = unpack_columns(telemetry)
            assert {"t_s", "altitude_m", "est_alt_m", "lrf_valid"} <= set(tm) and tm["t_s"].size > 1000
            assert len(telemetry) < 40_000  # a ~60 s descent at 50 Hz: 18 columns x 3,000 samples
            with Store(db, create=False) as st:  # the report's trajectory comes from the telemetry
                tr = st.trajectory(rid)
            assert set(tr) == set(TRAJ_COLUMNS) and 1 < tr["t_s"].size < tm["t_s"].size / 10


def test_rerun_reproduces_failed_run_telemetry_and_landed_run_touchdown_bit_for_bit(flown):
    tmp, db, tab = flown
    bad = int(tab["run_id"][tab["outcome"] != "landed"][0])
    ok = int(tab["run_id"][tab["outcome"] == "landed"][0])
    r = rerun(db, bad, tmp / "bad")
    assert r.reproduced and r.telemetry_compared, r.differences
    with Store(db, create=False) as st:
        kept = unpack_columns(st.blob(bad, "telemetry"))
        digest = st.run(bad)["telemetry_sha256"]
    assert telemetry_digest(r.result.telemetry) == digest
    for c, a in kept.items():
        assert r.result.telemetry[c].astype(np.float32).tobytes() == a.tobytes(), c
    r = rerun(db, ok, tmp / "ok")
    assert r.reproduced and r.telemetry_compared, r.differences
    row = tab[tab["run_id"] == ok][0]
    td = r.result.touchdown
    assert (td.v_vertical, td.v_horizontal, td.tilt_deg, td.propellant_kg) == (
        row["v_vertical"], row["v_horizontal"], row["tilt_deg"], row["propellant_kg"])


def test_rerun_detects_a_stored_digest_or_column_that_does_not_match(flown, tmp_path):
    _tmp, db0, tab = flown
    db = tmp_path / "edited.sqlite"
    _copy(db0, db)
    bad = int(tab["run_id"][tab["outcome"] != "landed"][0])
    ok = int(tab["run_id"][tab["outcome"] == "landed"][0])
    with sqlite3.connect(db) as con:
        con.execute("UPDATE runs SET telemetry_sha256=? WHERE run_id=?", ("0" * 64, ok))
        blob = con.execute("SELECT telemetry FROM blobs WHERE run_id=?", (bad,)).fetchone()[0]
        tm = unpack_columns(blob)
        tm["altitude_m"] = tm["altitude_m"].copy()
        tm["altitude_m"][100] += 0.5
        con.execute("UPDATE blobs SET telemetry=? WHERE run_id=?", (pack_columns(tm), bad))
    r = rerun(db, ok, tmp_path / "ok")
    assert not r.reproduced and any("SHA-256" in d for d in r.differences), r.differences
    r = rerun(db, bad, tmp_path / "bad")
    assert r.differences == ["telemetry column altitude_m differs"]


def test_database_of_schema_version_0_opens_upgrades_and_reruns(flown, tmp_path):
    """A database written before versions and digests existed (npz telemetry, no digest column)."""
    _tmp, db0, tab = flown
    db = tmp_path / "old.sqlite"
    _copy(db0, db)
    bad = int(tab["run_id"][tab["outcome"] != "landed"][0])
    r0 = rerun(db0, bad, tmp_path / "first")
    buf = io.BytesIO()
    np.savez_compressed(buf, **r0.result.telemetry)
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE runs DROP COLUMN telemetry_sha256")
    con.execute("UPDATE blobs SET telemetry=? WHERE run_id=?", (buf.getvalue(), bad))
    con.execute("PRAGMA user_version=0")
    con.commit()
    con.close()
    r = rerun(db, bad, tmp_path / "again")  # opens, upgrades, compares the float64 npz columns exactly
    assert r.reproduced and r.telemetry_compared, r.differences
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert "telemetry_sha256" in {c[1] for c in con.execute("PRAGMA table_info(runs)")}
    assert len(results(db)) == 2


def test_database_of_a_newer_schema_version_is_refused_naming_the_version(flown, tmp_path):
    _tmp, db0, _tab = flown
    db = tmp_path / "future.sqlite"
    _copy(db0, db)
    dst = sqlite3.connect(db)
    dst.execute(f"PRAGMA user_version={SCHEMA_VERSION + 7}")
    dst.close()
    before = db.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (("report", str(db)), ("rerun", str(db), "0")):
        cp = subprocess.run([sys.executable, "-m", "harness.cli", "campaign", *args], capture_output=True, text=True,
                            env=env, timeout=120)
        assert cp.returncode == 2, cp.stdout + cp.stderr
        assert f"schema version {SCHEMA_VERSION + 7}" in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
    assert db.read_bytes() == before


def test_a_damaged_blob_is_refused_naming_the_file_and_the_run(flown, tmp_path):
    _tmp, db0, tab = flown
    db = tmp_path / "damaged.sqlite"
    _copy(db0, db)
    bad = int(tab["run_id"][tab["outcome"] != "landed"][0])
    con = sqlite3.connect(db)
    blob = con.execute("SELECT telemetry FROM blobs WHERE run_id=?", (bad,)).fetchone()[0]
    con.execute("UPDATE blobs SET telemetry=? WHERE run_id=?", (blob[:len(blob) // 2], bad))
    con.commit()
    con.close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (("report", str(db), "--out", str(tmp_path / "r.html")), ("rerun", str(db), str(bad))):
        cp = subprocess.run([sys.executable, "-m", "harness.cli", "campaign", *args], capture_output=True, text=True,
                            env=env, timeout=300, cwd=tmp_path)
        assert cp.returncode == 2, cp.stdout + cp.stderr
        assert f"the telemetry of run {bad} is damaged" in cp.stderr and "Traceback" not in cp.stderr, cp.stderr


def _head(blob: bytes) -> list:
    from harness.campaign.worker import _column_list

    return _column_list(blob)[0]


def test_each_column_is_stored_the_way_that_suits_it():
    """The time column as start and step, a sample-and-hold or stepped column as its runs, a
    smooth one as high differences, noise about a level as it is; each exactly, and the smooth ones small."""
    from harness.campaign.worker import _difference_orders

    rng = np.random.default_rng(3)
    t = np.arange(3000) * 0.02
    cols = {"t_s": t, "smooth": 3000.0 - 60.0 * t + 0.8 * t * t, "steps": np.floor(t / 1.3) * 7.0,
            "noise": rng.normal(80.0, 1.0, t.size), "held": np.repeat(rng.normal(500.0, 2.0, 600), 5)}
    blob = pack_columns(cols)
    assert {h["name"]: h["code"] for h in _head(blob)} == {"t_s": "ramp", "smooth": "pco", "steps": "hold",
                                                           "noise": "pco", "held": "hold"}
    back = unpack_columns(blob)
    for k, v in cols.items():
        assert back[k].tobytes() == v.astype("<f4").tobytes(), k
    orders = _difference_orders(np.stack([cols["smooth"], cols["noise"], cols["held"]]).astype("<f4"))
    assert orders[0] >= 2 and orders[1] == 0 and orders[2] == 1, orders
    assert len(pack_columns({"smooth": cols["smooth"]})) < 3000 * 4 // 4  # < 1 byte a sample
    # a time column that is not exactly start + k * step (one sample late) is stored as it is
    late = t.copy()
    late[1700] += 1e-3
    assert _head(pack_columns({"t_s": late}))[0]["code"] == "pco"
    assert unpack_columns(pack_columns({"t_s": late}))["t_s"].tobytes() == late.astype("<f4").tobytes()


@pytest.mark.parametrize("page_max, cases", [(2 ** 18, 300), (16, 60)])
def test_random_columns_of_every_kind_and_length_round_trip_every_bit(monkeypatch, page_max, cases):
    """Lengths 0-40 and 2,000 (the order search on the whole column and on blocks), every dtype
    written, NaN payloads, infinities, -0, runs, ramps, copies: unpacked bit for bit; again with
    pcodec chunks of 16 numbers (columns longer than a chunk, which telemetry reaches at 87 min)."""
    from harness.campaign import worker

    monkeypatch.setattr(worker, "PAGE_MAX", page_max)
    rng = np.random.default_rng(11)
    specials = np.frombuffer(np.array([0x7FC00001, 0xFFC12345, 0x7F800000, 0xFF800000, 0x80000000, 1],
                                      "<u4").tobytes(), "<f4").astype(np.float64)
    for case in range(cases):
        n = int(rng.choice([0, 1, 2, 3, 5, 6, 7, 40, 2000]))
        cols = {"ramp": 5.0 + np.arange(n) * 0.25, "noise": rng.normal(0, 10.0 ** rng.integers(-40, 30), n),
                "held": np.repeat(rng.choice(specials, max(1, n // 7 + 1)), 7)[:n],
                "ints": rng.integers(-2 ** 62, 2 ** 62, n), "uints": rng.integers(0, 2 ** 63, n, dtype=np.uint64),
                "flags": (rng.random(n) < 0.05).astype(np.float64), "smooth": np.cumsum(np.cumsum(rng.normal(size=n)))}
        cols["copy"] = cols["smooth"].copy()
        cols["mixed"] = np.where(rng.random(n) < 0.3, rng.choice(specials, n), cols["smooth"])
        for float_dtype in ("<f4", "<f2"):
            with np.errstate(over="ignore"):
                back = unpack_columns(pack_columns(cols, float_dtype=float_dtype))
            assert list(back) == list(cols)
            for k, v in cols.items():
                with np.errstate(over="ignore"):
                    want = v.astype(float_dtype if v.dtype.kind == "f" else "<u8" if v.dtype.kind == "u" else "<i8")
                assert back[k].dtype == want.dtype and back[k].tobytes() == want.tobytes(), (case, n, float_dtype, k)


def test_blobs_of_the_lzma_layout_before_still_unpack_to_the_same_bits():
    """Blobs written until 2026-12-01 (FSC1: one LZMA stream) by that code, from a real M2 crash:
    unpacked to the very columns that code read back (their SHA-256, taken with it), and packed
    again in the new layout they come back the same; blobs from before the difference order was
    recorded (second differences throughout) too."""
    import hashlib
    import json
    import lzma

    from harness.campaign.worker import COLUMNS_MAGIC, COLUMNS_MAGIC_LZMA

    here = Path(__file__).parent / "blobs"
    for fname, dtype, digest in (
            ("fsc1_m2_crash_first_12s.bin", "<f4", "65cb18053f79c974a2271661d1e8f7cf9f7954f54a812d007ccc04c60101cef0"),
            ("fsc1_m2_crash_traj.bin", "<f2", "69c917ec446695601157b50afcf771fc608d5a38b75985ce462c1c7d384a81db")):
        old = (here / fname).read_bytes()
        assert old.startswith(COLUMNS_MAGIC_LZMA)
        cols = unpack_columns(old)
        h = hashlib.sha256()
        for k, v in cols.items():
            h.update(k.encode() + v.dtype.str.encode() + v.tobytes())
        assert h.hexdigest() == digest, fname
        assert {v.dtype.str for v in cols.values()} == {dtype} and cols["t_s"][0] == 0.0
        again = pack_columns(cols, float_dtype=dtype)
        assert again.startswith(COLUMNS_MAGIC) and len(again) < len(old) + 100  # smaller for 12 s of 50 Hz
        assert all(unpack_columns(again)[k].tobytes() == v.tobytes() for k, v in cols.items())
    # the layout before the order was recorded: no "order" in the column list, second differences
    smooth = (3000.0 - 60.0 * np.arange(3000) * 0.02).astype("<f4")
    d = np.diff(smooth.view("<u4"), 2, prepend=np.zeros(2, "<u4"))
    old_head = json.dumps([{"name": "smooth", "dtype": "<f4", "n": smooth.size}]).encode()
    old = COLUMNS_MAGIC_LZMA + lzma.compress(len(old_head).to_bytes(4, "little") + old_head
                                             + np.ascontiguousarray(d.view(np.uint8).reshape(-1, 4).T).tobytes())
    assert unpack_columns(old)["smooth"].tobytes() == smooth.tobytes()


def _fsc2(head: list, *streams: bytes) -> bytes:
    """A blob of the current layout with the column list ``head`` (as a hostile writer may)."""
    import json
    import zlib

    from harness.campaign.worker import _HEAD_ZDICT, COLUMNS_MAGIC

    z = zlib.compressobj(9, zdict=_HEAD_ZDICT)
    packed = z.compress(json.dumps(head).encode()) + z.flush()
    body = len(packed).to_bytes(4, "little") + packed + b"\x02\x04\x01" + b"".join(streams)  # pcodec's header
    return COLUMNS_MAGIC + zlib.crc32(body).to_bytes(4, "little") + body  # a valid CRC: hostile, not damaged


def _pco(a) -> bytes:
    from harness.campaign.worker import _pco

    return b"".join(_pco(np.asarray(a)))


_FOUR = _pco(np.arange(4, dtype="<f4"))
_WRAPS, _TWO = _pco(np.array([2 ** 64 - 3, 11], "<u8")), _pco(np.zeros(2, "<f4"))  # run lengths adding to 8 mod 2**64


@pytest.mark.parametrize("head, streams, why", [
    ([{"name": "t", "dtype": "|O", "n": 4, "code": "pco", "bytes": [len(_FOUR)]}], [_FOUR], "dtype"),
    ([{"name": "t", "dtype": ">f4", "n": 4, "code": "pco", "bytes": [len(_FOUR)]}], [_FOUR], "dtype"),
    ([{"name": "t", "dtype": "<f4", "n": -4, "code": "pco", "bytes": [len(_FOUR)]}], [_FOUR], "not a count"),
    ([{"name": "t", "dtype": "<f4", "n": True, "code": "pco", "bytes": [len(_FOUR)]}], [_FOUR], "not a count"),
    ([{"name": "t", "dtype": "<f4", "n": 10 ** 12, "code": "pco", "bytes": [len(_FOUR)]}], [_FOUR], "more than"),
    ([{"name": "t", "dtype": "<f4", "n": 4, "code": "zip", "bytes": [len(_FOUR)]}], [_FOUR], "coding"),
    ([{"name": "t", "dtype": "<f4", "n": 4, "code": "pco", "bytes": [10 ** 9]}], [_FOUR], "within the blob"),
    ([{"name": "t", "dtype": "<f4", "n": 4, "code": "pco", "bytes": [len(_FOUR)]}], [_FOUR, b"x"], "after the last"),
    ([{"name": "t", "dtype": "<f4", "n": 3, "code": "pco", "bytes": [len(_FOUR)]}], [_FOUR], "3 of 3 numbers"),
    ([{"name": "t", "dtype": "<f4", "n": 4, "code": "pco", "bytes": [[2, len(_FOUR) - 2]]}], [_FOUR], "2 chunks"),
    ([{"name": "t", "dtype": "<f4", "n": 4, "code": "pco", "bytes": [[]]}], [_FOUR], "a stream of"),
    ([{"name": "t", "dtype": "<f4", "n": 4, "code": "pco", "bytes": [len(_FOUR)]}], [_FOUR[:-3] + b"\xff" * 3],
     "stream"),
    ([{"name": "t", "dtype": "<f4", "n": 4, "code": "ramp", "start": "0", "step": [1]}], [], "not numbers"),
    ([{"name": "c", "same_as": "t"}, {"name": "t", "dtype": "<f4", "n": 4, "code": "ramp", "start": 0, "step": 1}],
     [], "comes nowhere before"),
    ([{"name": "t", "dtype": "<f4", "n": 4, "code": "hold", "runs": 9, "bytes": [len(_FOUR), len(_FOUR)]}],
     [_FOUR, _FOUR], "9 runs"),
    ([{"name": "t", "dtype": "<f4", "n": 8, "code": "hold", "runs": 2, "bytes": [len(_WRAPS), len(_TWO)]}],
     [_WRAPS, _TWO], "do not add up"),
    ("not a list", [], "not a list of named columns"),
])
def test_a_hostile_blob_of_the_current_layout_is_refused_naming_what_is_wrong(head, streams, why):
    """A column list (its CRC-32 right: written so, not damaged) asking for an object or
    big-endian dtype, a negative or absurd length, an unknown coding, streams beyond or short of
    the blob, a stream holding more numbers than listed or cut in more chunks, a damaged stream
    (pcodec's own errors and panics become ValueError), run lengths that wrap around 2**64 to
    the right sum: refused with an error, not obeyed."""
    with pytest.raises(ValueError, match=why):
        unpack_columns(_fsc2(head, *streams))


def test_hostile_blobs_of_both_layouts_that_unpack_beyond_any_run_are_refused(monkeypatch):
    """The limit (256 MB; 2 MB here) holds for every way to expand: a few kB of LZMA (the layout
    before); a column list claiming more; a 5 kB pcodec stream of 10**8 numbers listed as 1,000
    (pcodec writes the 1,000 we ask for and stops); many copies of one column (both layouts)."""
    import json
    import lzma

    from harness.campaign import worker

    monkeypatch.setattr(worker, "UNPACKED_MAX_BYTES", 2 * 1024 * 1024)
    bomb = worker.COLUMNS_MAGIC_LZMA + lzma.compress(bytes(8 * 1024 * 1024))
    assert len(bomb) < 4_000
    with pytest.raises(ValueError, match="unpacks to more than"):
        unpack_columns(bomb)
    with pytest.raises(ValueError, match="unpacks to more than"):
        unpack_columns(_fsc2([{"name": "t", "dtype": "<f8", "n": 300_000, "code": "pco", "bytes": [len(_FOUR)]}],
                             _FOUR))
    zeros = _pco(np.zeros(100_000_000, "<f4"))
    assert len(zeros) < 10_000
    with pytest.raises(ValueError, match="1000 of 1000 numbers"):
        unpack_columns(_fsc2([{"name": "t", "dtype": "<f4", "n": 1000, "code": "pco", "bytes": [len(zeros)]}], zeros))
    col = _pco(np.zeros(100_000, "<f4"))  # 400 kB, copied 100 times: 40 MB
    copies = [{"name": f"c{i}", "same_as": "t"} for i in range(100)]
    with pytest.raises(ValueError, match="unpacks to more than"):
        unpack_columns(_fsc2([{"name": "t", "dtype": "<f4", "n": 100_000, "code": "pco", "bytes": [len(col)]}, *copies],
                             col))
    head = json.dumps([{"name": "t", "dtype": "<f4", "n": 100_000}, *copies]).encode()
    old = worker.COLUMNS_MAGIC_LZMA + lzma.compress(len(head).to_bytes(4, "little") + head + bytes(400_000))
    with pytest.raises(ValueError, match="unpacks to more than"):
        unpack_columns(old)


def test_every_cut_and_every_flipped_byte_of_a_real_blob_is_refused_as_damaged():
    """A real M2 crash blob cut at every length and with any one byte changed: refused as
    damaged (its CRC-32), a ValueError the store reports naming the file and the run."""
    old = (Path(__file__).parent / "blobs" / "fsc1_m2_crash_first_12s.bin").read_bytes()
    blob = pack_columns(unpack_columns(old))
    for cut in range(4, len(blob)):
        with pytest.raises(ValueError, match="damaged or cut short|cut short"):
            unpack_columns(blob[:cut])
    for i in range(4, len(blob)):
        hurt = bytearray(blob)
        hurt[i] ^= 1 << (i % 8)
        with pytest.raises(ValueError, match="CRC-32"):
            unpack_columns(bytes(hurt))
