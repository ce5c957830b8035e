"""Campaign databases that are not what they should be, campaigns sharing one database, code and
paths named in data (issue 13): real SQLite files, real processes, the real ``fsil`` CLI."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.campaign import load_spec, plan
from harness.campaign.core import default_db
from harness.campaign.store import Store, check_database_file
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

SPEC = """
[campaign]
name = "shared"
scenario = "campaign_helpers:short"
seed = 3
sampling = "random"
runs_per_point = {n}
run_timeout_s = 60
[dispersions]
"nav_error.altitude_m" = {{ dist = "uniform", low = 0.0, high = 100.0 }}
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    return env


def _cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=timeout)


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _planned_db(tmp_path, n=4) -> tuple[Path, Path]:
    spec_p = tmp_path / "spec.toml"
    spec_p.write_text(SPEC.format(n=n))
    spec = load_spec(spec_p, allow_import=["campaign_helpers"])
    db = tmp_path / "c.sqlite"
    with Store(db) as st:
        st.init_campaign(spec, plan(spec))
    return spec_p, db


# ---------------------------------------------------------------------------------------------
# files that are not a sound fsil campaign database: refused by name, never written


def _bad_files(tmp_path) -> dict[str, tuple[Path, str]]:
    out = {}
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    out["empty"] = (empty, "empty (0 bytes)")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(os.urandom(3000))
    out["garbage"] = (garbage, "not an SQLite database")
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
        con.execute("INSERT INTO contacts VALUES ('a', '1')")
    con.close()
    out["foreign"] = (foreign, "another application's SQLite database")
    _spec, real = _planned_db(tmp_path, n=400)
    data = real.read_bytes()
    assert len(data) > 8192
    trunc = tmp_path / "truncated.sqlite"
    trunc.write_bytes(data[: len(data) // 2])
    out["truncated"] = (trunc, "damaged")
    return out


@pytest.mark.parametrize("kind", ["empty", "garbage", "foreign", "truncated"])
def test_bad_database_is_refused_by_name_and_left_untouched(tmp_path, kind):
    path, words = _bad_files(tmp_path)[kind]
    before = _digest(path)
    with pytest.raises(ConfigError) as ei:
        Store(path)
    assert str(path) in str(ei.value) and words in str(ei.value), str(ei.value)
    assert _digest(path) == before
    spec_p = tmp_path / "run.toml"
    spec_p.write_text(SPEC.format(n=2))
    # the CLI: exit 2, the file named, no traceback, nothing planned or flown into it
    for args in (("campaign", spec_p, "--db", path, "--workers", "1", "--allow-import", "campaign_helpers"),
                 ("campaign", "report", path), ("campaign", "rerun", path, "0")):
        cp = _cli(*args, cwd=tmp_path)
        assert cp.returncode == 2, (args, cp.stdout, cp.stderr)
        assert str(path) in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
        assert _digest(path) == before
    assert not list(tmp_path.glob(f"{path.name}-*"))  # no -wal/-shm left beside it


def test_sound_database_passes_the_check(tmp_path):
    _spec, db = _planned_db(tmp_path)
    check_database_file(db)
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x6673696C


# ---------------------------------------------------------------------------------------------
# claims: one run, one claimer


def test_claim_takes_each_run_once_and_takes_over_from_dead_or_silent_holders(tmp_path):
    _spec, db = _planned_db(tmp_path, n=6)
    a, b = Store(db), Store(db)
    b.owner = "otherhost:12345:1"  # a campaign on another machine (only the timeout can tell it is gone)
    got_a = a.claim(4)
    got_b = b.claim(4)
    assert [r["run_id"] for r in got_a] == [0, 1, 2, 3] and [r["run_id"] for r in got_b] == [4, 5]
    assert a.claim(1) == [] and a.held_by_others() == {"otherhost:12345:1": 2}
    # a result for a run someone else holds is not stored
    assert not a.record({"run_id": 4, "status": "done", "outcome": "landed"})
    # b falls silent: after stale_s its runs are taken over
    a.stale_s = 0.0
    time.sleep(0.01)
    assert [r["run_id"] for r in a.claim(4)] == [4, 5]
    # a dead process on this host: taken over at once, whatever the timeout
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    c = Store(db)
    c.owner = f"{os.uname().nodename}:{dead.pid}:1"
    with sqlite3.connect(db) as con:
        con.execute("UPDATE runs SET claimed_by=?, claimed_at=? WHERE run_id=0", (c.owner, time.time()))
    a.stale_s = 1e9
    assert [r["run_id"] for r in a.claim(4)] == [0]
    with sqlite3.connect(db) as con:
        claims = dict(con.execute("SELECT run_id, claims FROM runs"))
    assert claims == {0: 2, 1: 1, 2: 1, 3: 1, 4: 2, 5: 2}
    for s in (a, b, c):
        s.close()


def _claimer(db, barrier, out):
    st = Store(db)
    barrier.wait()
    mine = []
    while True:
        got = st.claim(1)
        if not got:
            break
        rid = got[0]["run_id"]
        time.sleep(0.002)  # "flying"
        assert st.record({"run_id": rid, "status": "done", "outcome": "landed", "worker": st.owner})
        mine.append(rid)
    st.close()
    out.put(mine)


def test_two_processes_claiming_from_one_file_share_the_runs_exactly_once(tmp_path):
    _spec, db = _planned_db(tmp_path, n=200)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(str(db), barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(got[0] + got[1]) == list(range(200))        # every run flown, none twice
    assert got[0] and got[1]                                   # both did some of the work
    with sqlite3.connect(db) as con:
        assert set(r for (r,) in con.execute("SELECT claims FROM runs")) == {1}
        assert con.execute("SELECT COUNT(DISTINCT worker) FROM runs").fetchone()[0] == 2


def test_two_campaign_processes_on_one_database_fly_each_run_once(tmp_path):
    spec_p = tmp_path / "spec.toml"
    spec_p.write_text(SPEC.format(n=24))
    db = tmp_path / "shared.sqlite"
    cmd = [sys.executable, "-m", "harness.cli", "campaign", str(spec_p), "--db", str(db), "--workers", "1",
           "--no-progress", "--allow-import", "campaign_helpers"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                              cwd=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0, so + se
        assert "Traceback" not in se
        assert "total: 24/24 runs finished" in so          # each ends with the whole table
    flown = [int(so.split("results: ")[1].split("(")[1].split(" runs flown")[0]) for so, _ in outs]
    assert sum(flown) == 24, flown                          # shared, not both flying everything
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT status, claims FROM runs").fetchall()
    assert len(rows) == 24 and {r[0] for r in rows} == {"done"} and {r[1] for r in rows} == {1}


# ---------------------------------------------------------------------------------------------
# code named in data is not imported unless the user says so; names from data stay in their folder

EVIL = '''
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("code from a data file ran")
def boom():
    raise SystemExit("should never be called")
'''


def test_module_function_scenario_needs_allow_import(tmp_path):
    spec_p = tmp_path / "spec.toml"
    spec_p.write_text(SPEC.format(n=1).replace("campaign_helpers:short", "evil_mod:boom"))
    (tmp_path / "evil_mod.py").write_text(EVIL)
    cp = _cli("campaign", spec_p, "--db", tmp_path / "x.sqlite", cwd=tmp_path)
    assert cp.returncode == 2 and "Traceback" not in cp.stderr, cp.stderr
    assert str(spec_p) in cp.stderr and "[campaign] scenario" in cp.stderr and "--allow-import evil_mod" in cp.stderr
    assert not (tmp_path / "IMPORTED").exists()
    with pytest.raises(ConfigError, match="--allow-import campaign_helpers"):
        load_spec(tmp_path / "s2.toml", text=SPEC.format(n=1))
    assert load_spec(tmp_path / "s2.toml", text=SPEC.format(n=1), allow_import=["campaign_helpers"]).n_runs == 1


def test_edited_database_does_not_run_code_on_report_or_rerun(tmp_path):
    _spec, db = _planned_db(tmp_path, n=2)
    (tmp_path / "evil_mod.py").write_text(EVIL)
    with sqlite3.connect(db) as con:
        text = con.execute("SELECT spec_text FROM campaign").fetchone()[0]
        con.execute("UPDATE campaign SET scenario=?, spec_text=?", ("evil_mod:boom",
                    text.replace("campaign_helpers:short", "evil_mod:boom")))
    con.close()
    for args in (("campaign", "report", db), ("campaign", "rerun", db, "0")):
        cp = _cli(*args, cwd=tmp_path)
        assert cp.returncode == 2, (args, cp.stdout, cp.stderr)
        assert str(db) in cp.stderr and "--allow-import evil_mod" in cp.stderr and "Traceback" not in cp.stderr
        assert not (tmp_path / "IMPORTED").exists()


def test_campaign_name_from_a_spec_cannot_leave_the_output_folder(tmp_path):
    spec = load_spec(tmp_path / "s.toml", text=SPEC.format(n=1).replace('name = "shared"', 'name = "../../x"'),
                     allow_import=["campaign_helpers"])
    db = default_db(spec)
    assert db.parent == Path("fsil-campaigns") and ".." not in db.parts, db
    assert (Path.cwd() / db).resolve().is_relative_to((Path.cwd() / "fsil-campaigns").resolve())


def test_database_written_before_claims_existed_is_upgraded_and_resumes(tmp_path):
    _spec, db = _planned_db(tmp_path, n=3)
    with sqlite3.connect(db) as con:  # as the previous version wrote it: no claim columns, no fsil mark
        con.execute("DROP INDEX runs_claim")
        for c in ("claimed_by", "claimed_at", "claims"):
            con.execute(f"ALTER TABLE runs DROP COLUMN {c}")
        con.execute("PRAGMA application_id=0")
        con.execute("UPDATE runs SET status='done', outcome='landed' WHERE run_id=0")
    con.close()
    with Store(db) as st:
        assert [r["run_id"] for r in st.claim(5)] == [1, 2]      # the finished run stays finished
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x6673696C


# ---------------------------------------------------------------------------------------------
# a database whose values are of the wrong type or form (SQLite keeps any value in any column):
# each was a traceback (ValueError, TypeError, JSONDecodeError, UnicodeDecodeError, OverflowError,
# IntegrityError) from report, rerun or resume; now refused by name on open, the file untouched

EDITS = {
    "metric_text": ("UPDATE runs SET v_vertical = 'abc' WHERE run_id = 1", "runs, run_id 1, column v_vertical = 'abc'"),
    "metric_blob": ("UPDATE runs SET first_lrf_alt_m = x'00ff' WHERE run_id = 2", "column first_lrf_alt_m = X'00FF'"),
    "text_blob": ("UPDATE runs SET failure_mode = x'ff00' WHERE run_id = 0", "column failure_mode = X'FF00'; allowed: text"),
    "seed_text": ("UPDATE runs SET seed = 'x' WHERE run_id = 3", "column seed = 'x'; allowed: an integer >= 0"),
    "seed_negative": ("UPDATE runs SET seed = -5 WHERE run_id = 0", "column seed = -5; allowed: an integer >= 0"),
    "params_not_json": ("UPDATE runs SET params_json = '{not json' WHERE run_id = 0", "column params_json = '{not json'"),
    "params_a_list": ("UPDATE runs SET params_json = '[1, 2]' WHERE run_id = 0", "allowed: a JSON object"),
    "status_unknown": ("UPDATE runs SET status = 'weird' WHERE run_id = 0", "allowed: pending, done or error"),
    "axes_not_json": ("UPDATE campaign SET axes_json = '{bad'", "table campaign, id 1, column axes_json = '{bad'"),
    "axes_an_object": ("UPDATE campaign SET axes_json = '{\"a\": 1}'", "allowed: a JSON array of objects"),
    "blob_text": ("INSERT INTO blobs VALUES (0, 'hello', NULL)", "table blobs, run_id 0, column traj = 'hello'"),
    "robustness_blob": ("INSERT INTO robustness VALUES (0, x'ff', 1.0, 2.0)", "table robustness, run_id 0, column "
                                                                                "requirement = X'FF'"),
    "no_campaign_row": ("DELETE FROM campaign", "holds planned runs but no campaign row"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_value_of_the_wrong_type_is_refused_naming_table_row_and_column(tmp_path, edit):
    sql, words = EDITS[edit]
    spec_p, db = _planned_db(tmp_path)
    con = sqlite3.connect(db)
    con.execute(sql)
    con.commit()
    con.close()
    before = _digest(db)
    with pytest.raises(ConfigError) as ei:
        Store(db, create=False)
    msg = str(ei.value)
    assert msg.startswith(f"{db}: ") and words in msg, msg
    assert _digest(db) == before


def test_cli_on_a_database_with_a_wrong_value_exits_2_for_report_rerun_and_resume(tmp_path):
    spec_p, db = _planned_db(tmp_path)
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET seed = 'x' WHERE run_id = 0")
    con.commit()
    con.close()
    before = _digest(db)
    for args in (("campaign", "report", db), ("campaign", "rerun", db, "0"),
                 ("campaign", spec_p, "--db", db, "--workers", "1", "--no-progress")):
        cp = _cli(*args, "--allow-import", "campaign_helpers", cwd=tmp_path)
        assert cp.returncode == 2 and "Traceback" not in cp.stderr, (args, cp.stderr)
        assert "column seed = 'x'" in cp.stderr
    assert _digest(db) == before


def test_terminal_escapes_stored_in_a_database_are_shown_escaped_in_the_summary(tmp_path):
    """The outcome and failure mode of a run are text from the database: an edited one holding a
    terminal escape went raw to the terminal in the summary of fsil campaign."""
    from harness.campaign.core import load_db, summary_text

    _spec, db = _planned_db(tmp_path)
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET status = 'done', outcome = 'boom\x1b[2J', failure_mode = 'mode\x1b]0;pwn\x07'")
    con.commit()
    con.close()
    _s, table, axes = load_db(db, allow_import=["campaign_helpers"])
    text = summary_text(table, axes)
    assert "\x1b" not in text and "\x07" not in text
    assert "boom\\x1b[2J" in text and "mode\\x1b]0;pwn\\x07" in text
