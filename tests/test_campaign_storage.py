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


def test_each_column_takes_the_difference_order_that_packs_it_smallest_and_older_blobs_read_as_second():
    """A smooth signal is stored as second differences, a stepped one as first, noise as it is;
    blobs written before the order was recorded (second differences throughout) still unpack."""
    import json
    import lzma

    from harness.campaign.worker import COLUMNS_MAGIC

    rng = np.random.default_rng(3)
    t = np.arange(3000) * 0.02
    cols = {"smooth": 3000.0 - 60.0 * t + 0.8 * t * t, "steps": np.floor(t / 1.3) * 7.0,
            "noise": rng.normal(size=t.size)}
    blob = pack_columns(cols)
    head_len = int.from_bytes(lzma.decompress(blob[len(COLUMNS_MAGIC):])[:4], "little")
    head = json.loads(lzma.decompress(blob[len(COLUMNS_MAGIC):])[4:4 + head_len])
    assert {h["name"]: h["order"] for h in head} == {"smooth": 2, "steps": 1, "noise": 0}
    back = unpack_columns(blob)
    for k, v in cols.items():
        assert back[k].tobytes() == v.astype("<f4").tobytes(), k
    # the layout before: no "order" in the column list, every column as second differences
    u = cols["smooth"].astype("<f4").view("<u4")
    d = np.diff(u, 2, prepend=np.zeros(2, "<u4"))
    old_head = json.dumps([{"name": "smooth", "dtype": "<f4", "n": int(u.size)}]).encode()
    old = COLUMNS_MAGIC + lzma.compress(len(old_head).to_bytes(4, "little") + old_head
                                        + np.ascontiguousarray(d.view(np.uint8).reshape(-1, 4).T).tobytes())
    assert unpack_columns(old)["smooth"].tobytes() == cols["smooth"].astype("<f4").tobytes()


@pytest.mark.parametrize("column, why", [
    ({"name": "t", "dtype": "<f4", "n": 4, "order": 10 ** 9}, "difference order"),
    ({"name": "t", "dtype": "|O", "n": 4, "order": 0}, "dtype"),
    ({"name": "t", "dtype": "<f4", "n": 10 ** 12, "order": 0}, "buffer"),
])
def test_a_hostile_blob_is_refused_quickly_naming_what_is_wrong(column, why):
    """A blob whose column list asks for an absurd difference order (a loop of 10^9 passes), an
    object dtype, or more data than it holds is refused with an error, not obeyed."""
    import json
    import lzma

    from harness.campaign.worker import COLUMNS_MAGIC

    head = json.dumps([column]).encode()
    blob = COLUMNS_MAGIC + lzma.compress(len(head).to_bytes(4, "little") + head + bytes(16))
    with pytest.raises(ValueError, match=why):
        unpack_columns(blob)


def test_a_blob_that_unpacks_beyond_any_run_is_refused(monkeypatch):
    """A few kB of LZMA that would expand past the limit (256 MB; 2 MB here) is refused after
    the limit, not unpacked into memory."""
    import lzma

    from harness.campaign import worker

    monkeypatch.setattr(worker, "UNPACKED_MAX_BYTES", 2 * 1024 * 1024)
    bomb = worker.COLUMNS_MAGIC + lzma.compress(bytes(8 * 1024 * 1024))
    assert len(bomb) < 4_000
    with pytest.raises(ValueError, match="unpacks to more than"):
        unpack_columns(bomb)
