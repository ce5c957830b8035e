"""Hostile command lines, output paths and data files (issue 13's rule: a bad argument, path or
file gets exit 2 / a ConfigError naming it, no traceback, and nothing already written is lost or
changed): unwritable output folders, databases that are another application's file or hold values
of the wrong type, negative seeds and budgets, golden references and height fields whose arrays
are of the wrong kind. Each case here gave a Python traceback, loaded garbage, or wrote into a
file that was not fsil's before the fix it names."""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
M2_SPEC = REPO / "harness" / "data" / "falsify" / "m2_gate_fix_late_lrf.toml"


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _fsil(argv, capsys) -> tuple[int, str]:
    """``fsil ARGV`` in-process: (exit code, stderr); a traceback fails the test by propagating."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _foreign_sqlite(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    con.execute("INSERT INTO contacts VALUES ('a', '1')")
    con.commit()
    con.close()
    return path


# ---------------------------------------------------------------------------------------------
# out-of-range numbers on the command line (numpy raised a bare ValueError on a negative seed;
# falsify took --workers 0 as "all cores" and --budget -1 as "search nothing, report not falsified")


@pytest.mark.parametrize("argv, must", [
    (["run", "nominal-terminal-descent", "--seed", "-1"], "--seed -1: allowed: an integer from 0 to 9223372036854775807"),
    (["run", "nominal-terminal-descent", "--seed", str(2 ** 64)], "--seed 18446744073709551616: allowed"),
    (["falsify", M2_SPEC, "--seed", "-5"], "--seed -5: allowed: an integer from 0"),
    (["falsify", M2_SPEC, "--budget", "-1"], "--budget -1: allowed: an integer >= 1"),
    (["falsify", M2_SPEC, "--budget", "0"], "--budget 0: allowed: an integer >= 1"),
    (["falsify", M2_SPEC, "--workers", "0"], "--workers 0: allowed: an integer >= 1"),
    (["replay", "x.log", "--head", "-3"], "--head -3: allowed: an integer >= 0"),
    (["campaign", "report", "x.sqlite", "--worst", "-1"], "--worst -1: allowed: an integer >= 0"),
], ids=["run_seed_negative", "run_seed_65_bits", "falsify_seed", "falsify_budget_negative", "falsify_budget_zero",
        "falsify_workers_zero", "replay_head", "report_worst"])
def test_out_of_range_option_exits_2_naming_it_and_writes_nothing(argv, must, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _fsil([*argv, *(["--db", tmp_path / "f.sqlite"] if argv[0] == "falsify" else [])], capsys)
    assert code == 2 and must in err, err
    assert list(tmp_path.iterdir()) == []  # no database, no run folder


# ---------------------------------------------------------------------------------------------
# output paths that cannot be written (each was a NotADirectoryError / sqlite3.OperationalError
# traceback)


def test_run_into_an_output_folder_that_is_a_file_exits_2_naming_the_path(tmp_path, capsys):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the output folder should go\n")
    code, err = _fsil(["run", "nominal-terminal-descent", "--out", blocker], capsys)
    assert code == 2 and f"fsil: error: {blocker}/nominal-terminal-descent: Not a directory" in err, err
    assert blocker.read_text() == "a file where the output folder should go\n"


def test_campaign_database_that_cannot_be_created_exits_2_naming_it(tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("x")
    spec = tmp_path / "spec.toml"
    spec.write_text('[campaign]\nname = "c"\nscenario = "nominal-terminal-descent"\nseed = 1\nruns_per_point = 1\n')
    db = blocker / "c.sqlite"
    code, err = _fsil(["campaign", spec, "--db", db, "--no-progress", "--workers", "1"], capsys)
    assert code == 2 and f"{db}: cannot create the campaign database" in err, err
    assert blocker.read_text() == "x"


def test_campaign_report_that_cannot_be_written_keeps_the_results_and_says_where(tmp_path):
    """A --report into a folder is refused before anything flies. One that fails only when it is
    written (here: /proc refuses new files) comes after the campaign flew: exit 2 naming the
    report path and the database that holds the results; the runs are in it (a real process, a
    real database)."""
    spec = tmp_path / "spec.toml"
    spec.write_text('[campaign]\nname = "c"\nscenario = "campaign_helpers:short"\nseed = 1\nruns_per_point = 1\n'
                    'run_timeout_s = 60\n')
    db, folder = tmp_path / "c.sqlite", tmp_path / "report.html"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]))

    def campaign(report):
        return subprocess.run([sys.executable, "-m", "harness.cli", "campaign", str(spec), "--db", str(db),
                               "--workers", "1", "--no-progress", "--report", str(report), "--allow-import",
                               "campaign_helpers"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)

    cp = campaign(folder)
    assert cp.returncode == 2 and f"--report {folder}: is a folder" in cp.stderr, cp.stderr
    assert not db.exists()  # nothing planned or flown
    unwritable = Path("/proc/fsil-report.html")
    cp = campaign(unwritable)
    assert cp.returncode == 2 and "Traceback" not in cp.stderr, cp.stderr
    assert f"--report {unwritable}: cannot write the report" in cp.stderr and f"kept in {db}" in cp.stderr, cp.stderr
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("done",)]
    con.close()


# ---------------------------------------------------------------------------------------------
# fsil falsify --db: the old store ran CREATE TABLE and journal_mode=WAL on whatever SQLite file
# it was given (another application's database gained two tables and changed its header)


@pytest.mark.parametrize("kind, words", [
    ("foreign", "is another application's SQLite database (tables contacts)"),
    ("empty", "is empty (0 bytes)"),
    ("folder", "is a folder, not a falsification database"),
    ("garbage", "is not an SQLite database"),
])
def test_falsify_refuses_a_database_that_is_not_fsil_s_and_leaves_it_byte_identical(kind, words, tmp_path, capsys):
    path = tmp_path / "target.sqlite"
    if kind == "foreign":
        _foreign_sqlite(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"\x01" * 5000)
    before = None if kind == "folder" else _digest(path)
    code, err = _fsil(["falsify", M2_SPEC, "--db", path, "--no-progress", "--budget", "1"], capsys)
    assert code == 2 and f"{path}: {words}" in err, err
    if before is not None:
        assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.sqlite"]  # no -wal/-shm, no scenario file


def test_falsify_store_still_shares_a_campaign_database_and_reopens_its_own(tmp_path):
    from harness.campaign.store import Store
    from harness.falsify.store import FalsifyStore

    campaign_db = tmp_path / "c.sqlite"
    spec = tmp_path / "spec.toml"
    spec.write_text('[campaign]\nname = "c"\nscenario = "nominal-terminal-descent"\nseed = 1\nruns_per_point = 1\n')
    from harness.campaign import load_spec, plan

    cs = load_spec(spec)
    with Store(campaign_db) as st:
        st.init_campaign(cs, plan(cs))
    for db in (campaign_db, tmp_path / "f.sqlite"):
        with FalsifyStore(db):
            pass
        with FalsifyStore(db) as fs:  # and again, now that it holds the falsify tables
            tables = {r[0] for r in fs.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"falsify_searches", "falsify_evals"} <= tables
    with Store(campaign_db, create=False) as st:  # the campaign still opens its database
        assert st.campaign()["name"] == "c"
    with pytest.raises(ConfigError, match="another application's"):
        FalsifyStore(_foreign_sqlite(tmp_path / "foreign.sqlite"))


@pytest.mark.parametrize("edit, words", [
    ("u_json = '{bad'", "column u_json = '{bad'; allowed: a JSON array of numbers"),
    ("params_json = '[1]'", "column params_json = '[1]'; allowed: a JSON object"),
    ("robustness_json = '{x'", "column robustness_json = '{x'; allowed: a JSON array of arrays or NULL"),
    ("objective = 'abc'", "column objective = 'abc'; allowed: a number, 'inf', '-inf' or NULL"),
    ("seed = 'x'", "column seed = 'x'; allowed: an integer >= 0"),
])
def test_falsify_database_with_an_edited_value_is_refused_naming_the_column(tmp_path, capsys, edit, words):
    """Each was a traceback (JSONDecodeError, TypeError) when the search resumed."""
    from harness.falsify import load_falsify_spec
    from harness.falsify.store import FalsifyStore

    spec = load_falsify_spec(M2_SPEC)
    db = tmp_path / "f.sqlite"
    with FalsifyStore(db) as st:
        st.open_search("falsify:cma:1", spec, "falsify")
        st.record("falsify:cma:1", 0, [0.5, 0.5], {"a": 1.0}, 1,
                  {"status": "done", "outcome": "landed", "objective": float("inf"), "robustness": [["r", 1.0]]})
    with FalsifyStore(db) as st:  # sound (an infinite objective is stored as 'inf')
        assert st.stored("falsify:cma:1", 0)["objective"] == float("inf")
    con = sqlite3.connect(db)
    con.execute(f"UPDATE falsify_evals SET {edit}")
    con.commit()
    con.close()
    before = _digest(db)
    with pytest.raises(ConfigError) as ei:
        FalsifyStore(db)
    assert str(ei.value).startswith(f"{db}: the falsification database holds a bad value: table falsify_evals")
    assert words in str(ei.value), str(ei.value)
    code, err = _fsil(["falsify", M2_SPEC, "--db", db, "--no-progress", "--budget", "1"], capsys)
    assert code == 2 and words in err
    assert _digest(db) == before


# ---------------------------------------------------------------------------------------------
# golden reference files with arrays of the wrong kind (were TypeError / IndexError tracebacks from
# fsil golden check, or loaded silently: a float index cast to garbage, change lists of two lengths)


def _golden_cases():
    import json

    import numpy as np

    def header(h):
        return np.frombuffer(json.dumps(h).encode(), np.uint8)

    return {
        "header_a_list": ({"header": header([1, 2])}, "the header is not a JSON object"),
        "dt_text": ({"header": "dt"}, "the header is not a JSON object with a number cycle_dt_s"),
        "nan_index_out_of_range": ({"nan_altitude_m": np.array([10 ** 9])}, "index 1000000000 is out of bounds"),
        "float_sample_index": ({"sample_index": np.array([0.5, np.nan])}, "sample_index holds float64 values"),
        "change_lists_differ": ({"at_mode": np.arange(50)}, "at_mode and val_mode differ in length"),
    }


@pytest.mark.parametrize("case", sorted(_golden_cases()))
def test_golden_reference_with_arrays_of_the_wrong_kind_is_a_golden_error_naming_the_file(case, tmp_path):
    import json

    import numpy as np

    from harness.golden import GoldenError, load_reference, reference_path

    edit, words = _golden_cases()[case]
    z = dict(np.load(reference_path("slim")))
    if isinstance(edit.get("header"), str):  # a header whose cycle_dt_s is text
        h = json.loads(bytes(z["header"]).decode())
        edit = {"header": np.frombuffer(json.dumps({**h, "cycle_dt_s": "0.02"}).encode(), np.uint8)}
    np.savez(tmp_path / "slim.npz", **{**z, **edit})
    with pytest.raises(GoldenError) as ei:
        load_reference("slim", folder=tmp_path)
    assert str(ei.value).startswith(f"{tmp_path / 'slim.npz'}: unreadable golden reference") and words in str(ei.value)


# ---------------------------------------------------------------------------------------------
# height-field files (HeightField.load: .npz with metadata, from a DEM tool): arrays of the wrong
# kind or size were ValueError / TypeError / IndexError tracebacks, or loaded (booleans, complex
# numbers, a NaN origin, a negative Moon radius)


@pytest.mark.parametrize("arrays, words", [
    ({"heights": [["a", "b"], ["c", "d"]]}, "heights holds <U1 values; allowed: real numbers"),
    ({"heights": "bool"}, "heights holds bool values"),
    ({"heights": "complex"}, "heights holds complex128 values"),
    ({"spacing_m": [1.0, 2.0, 3.0]}, "spacing_m = [1.0, 2.0, 3.0]; allowed: 1 or 2 finite number(s)"),
    ({"spacing_m": ["a"]}, "spacing_m holds <U1 values"),
    ({"origin_en_m": [1.0]}, "origin_en_m = [1.0]; allowed: 2 finite number(s)"),
    ({"origin_en_m": [float("nan"), 1.0]}, "origin_en_m = [nan, 1.0]"),
    ({"base_height_m": [1.0, 2.0]}, "base_height_m = [1.0, 2.0]; allowed: 1 finite number(s)"),
    ({"site_lat_rad": "x"}, "site_lat_rad holds <U1 values"),
    ({"site_radius_m": -5.0}, "site_radius_m = -5.0; allowed: > 0 (m)"),
], ids=["heights_text", "heights_bool", "heights_complex", "spacing_3", "spacing_text", "origin_1", "origin_nan",
        "base_2", "site_text", "radius_negative"])
def test_height_field_file_with_arrays_of_the_wrong_kind_is_a_config_error(tmp_path, arrays, words):
    import numpy as np

    from harness.terrain import HeightField

    good = {"heights": np.arange(25.0).reshape(5, 5), "spacing_m": np.array(10.0)}
    special = {"bool": np.ones((5, 5), bool), "complex": np.ones((5, 5), complex)}
    path = tmp_path / "dem.npz"
    np.savez(path, **{**good, **{k: special.get(v, v) if isinstance(v, str) else np.asarray(v)
                                 for k, v in arrays.items()}})
    with pytest.raises(ConfigError) as ei:
        HeightField.load(path)
    assert str(ei.value).startswith(f"{path}: ") and words in str(ei.value), str(ei.value)
    np.savez(path, **good)  # and the sound file loads
    assert HeightField.load(path).heights.shape == (5, 5)


def test_conform_junit_xml_into_a_folder_is_refused_before_the_checklist_runs(tmp_path, capsys, monkeypatch):
    """The checklist ran, then writing its XML into a folder raised IsADirectoryError: the
    results (the table) were lost with a traceback. Now refused first, the rig never opened."""
    import harness.conform

    ran = []
    monkeypatch.setattr(harness.conform, "conform", lambda *a, **k: ran.append(1))
    folder = tmp_path / "conform.xml"
    folder.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for path, words in ((folder, "is a folder"), (blocker / "c.xml", f"{blocker} is a file, not a folder")):
        code, err = _fsil(["conform", "--rig", "loopback", "--junit-xml", path], capsys)
        assert code == 2 and f"--junit-xml {path}: {words}" in err, err
    assert not ran


def test_falsify_out_into_a_folder_is_refused_before_the_search(tmp_path, capsys):
    """The search flew, then writing the falsifying scenario into a folder raised IsADirectoryError."""
    folder = tmp_path / "case.toml"
    folder.mkdir()
    code, err = _fsil(["falsify", M2_SPEC, "--db", tmp_path / "f.sqlite", "--out", folder, "--budget", "1"], capsys)
    assert code == 2 and f"--out {folder}: is a folder" in err, err
    assert not (tmp_path / "f.sqlite").exists()


@pytest.mark.parametrize("argv", [["campaign", "report", "{db}"],
                                  ["falsify", str(M2_SPEC), "--db", "{db}", "--budget", "1", "--no-progress"]],
                         ids=["campaign", "falsify"])
def test_a_named_pipe_as_the_database_is_refused_instead_of_blocking(tmp_path, argv):
    """Opening a FIFO to read its first 100 bytes blocked fsil for ever."""
    fifo = tmp_path / "results.sqlite"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    try:
        cp = subprocess.run([sys.executable, "-m", "harness.cli", *[a.format(db=fifo) for a in argv]],
                            capture_output=True, text=True, env=env, timeout=30, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fsil {argv[0]} blocked on a named pipe given as its database")
    assert cp.returncode == 2 and f"{fifo}: is not a regular file (a pipe, socket or device)" in cp.stderr, cp.stderr


def test_a_falsify_spec_name_cannot_put_its_database_or_case_outside_fsil_falsify(tmp_path, monkeypatch):
    """name = "../../x" in a spec: the default database and the falsifying scenario file were
    written outside fsil-falsify/ (wherever the name pointed). Now the name is made a safe file name."""
    from harness.falsify import InProcessExecutor, falsify, load_falsify_spec

    text = M2_SPEC.read_text()
    evil = tmp_path / "spec" / "evil.toml"
    evil.parent.mkdir()
    evil.write_text(text.replace('name = "m2-gate-fix-late-lrf"', 'name = "../../../escaped"', 1))
    spec = load_falsify_spec(evil)
    assert spec.name == "../../../escaped"
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    out = falsify(spec, None, executor=InProcessExecutor(), budget=1, progress=False)
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and p != evil)
    assert made and all(m.startswith("a/b/c/fsil-falsify/") for m in made), made
    assert out.db == Path("fsil-falsify/_.._.._escaped.sqlite")


@pytest.mark.parametrize("command", ["campaign", "falsify"])
def test_a_scheduler_address_that_is_not_one_exits_2_naming_it(tmp_path, capsys, command):
    """A ValueError traceback from distributed's address parser."""
    spec = tmp_path / "spec.toml"
    spec.write_text('[campaign]\nname = "c"\nscenario = "nominal-terminal-descent"\nseed = 1\nruns_per_point = 1\n')
    target = spec if command == "campaign" else M2_SPEC
    code, err = _fsil([command, target, "--db", tmp_path / "x.sqlite", "--scheduler", "not a url", "--no-progress"],
                      capsys)
    assert code == 2 and "--scheduler not a url: cannot connect to a Dask scheduler (missing port number" in err, err


def test_a_scenario_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, capsys):
    """A 3 MB TOML file (a hostile or wrong file: the largest shipped one is 4 kB) is refused by
    its size, naming the file and the limit; at 16 MB, a 10 MB file went to the TOML parser first
    (about 25 s to an error)."""
    from harness.validation import MAX_FILE_BYTES

    big = tmp_path / "big.toml"
    big.write_text("[scenario]\n" + "".join(f"k{i} = {i}\n" for i in range(300_000)))
    assert big.stat().st_size > 3_000_000 > MAX_FILE_BYTES
    assert main(["run", str(big), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(big) in err and f"at most {MAX_FILE_BYTES} bytes" in err and "Traceback" not in err


def test_a_compressed_height_field_that_unpacks_past_the_limit_is_refused_unread(tmp_path, monkeypatch):
    """A .npz is a zip: a few kB can unpack to gigabytes. Its arrays' unpacked sizes are checked
    before any is read (the limit lowered here so the file stays small)."""
    import numpy as np

    from harness import terrain

    p = tmp_path / "bomb.npz"
    np.savez_compressed(p, heights=np.zeros((1000, 1000)), spacing_m=np.array(10.0))
    assert p.stat().st_size < 50_000
    monkeypatch.setattr(terrain, "HEIGHT_FIELD_MAX_BYTES", 4_000_000)
    with pytest.raises(ConfigError) as err:
        terrain.HeightField.load(p)
    assert str(p) in str(err.value) and "unpacks to 8,000," in str(err.value)
    monkeypatch.setattr(terrain, "HEIGHT_FIELD_MAX_BYTES", 2 * 1024 ** 3)
    assert terrain.HeightField.load(p).heights.shape == (1000, 1000)  # within the limit: loads
