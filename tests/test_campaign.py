"""Campaigns: spec validation, seeded plans, a real process pool, a real SQLite file, a real Dask
scheduler on loopback, a real SIGKILL of a real ``fsil campaign`` process, exact reruns, the CI gate.

The 1,000-run M2 acquisition-altitude campaign is in tests/test_campaign_m2.py.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from campaign_helpers import misbehaving_spec
from harness.campaign import load_spec, plan, rerun, results, run_campaign
from harness.campaign.spec import apply_overrides, spec_from_dict
from harness.errors import ConfigError
from harness.scenario import FIXED
from harness.scenario_files import load_scenario

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # worker processes import campaign_helpers
    sys.path.insert(0, str(TESTS))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    return env


SMALL = """
[campaign]
name = "small"
scenario = "ispace-m2"
seed = 11
sampling = "lhs"
runs_per_point = 2
run_timeout_s = 60

[dispersions]
"nav_error.altitude_m" = { dist = "normal", mean = 1100.0, sigma = 80.0 }
"v_up_mps" = { dist = "uniform", low = -61.0, high = -59.0 }

[[sweep]]
name = "acq"
path = "faults.0.acquire_altitude_m"
values = [1500.0, 400.0]

[[sweep]]
name = "code"
path = "flight_params"
values = ["AS_FLOWN", "FIXED"]
labels = ["as-flown", "fixed"]

[[criteria]]
metric = "success_rate"
op = ">="
value = 0.99
where = { code = "fixed" }
"""


def write(tmp_path, text, name="spec.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------------------------------------
# spec and plan (no flying)


@pytest.mark.parametrize("bad, words", [
    ("[campaign]\nscenario='ispace-m2'\nseed=1\nsamplin='lhs'\n", ["samplin", "allowed keys", "sampling"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\nsampling='halton'\n", ["[campaign] sampling", "'halton'", "lhs", "sobol"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\n[scenario]\n'lrf.latency' = 0.1\n",
     ["lrf.latency", "LrfConfig has no field", "latency_s"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\n[scenario]\n'lrf.latency_s' = -1.0\n",
     ["lrf.latency_s", "allowed"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\n[dispersions]\n'altitude_m' = {dist='gauss', mean=1}\n",
     ["[dispersions.altitude_m] dist", "uniform", "truncnormal"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\n[dispersions]\n'altitude_m' = {dist='normal', mean=1}\n",
     ["[dispersions.altitude_m] sigma is missing"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\n[[sweep]]\npath='flight_params'\nvalues=['FIXD']\n",
     ["FIXD", "AS_FLOWN", "FIXED"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\n[[sweep]]\npath='flight_params.NOPE'\nvalues=[1.0]\n", []),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\n[[criteria]]\nmetric='succes_rate'\nop='>='\nvalue=1\n",
     ["succes_rate", "success_rate", "p99"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\n[[criteria]]\nmetric='success_rate'\nop='>='\nvalue=1\n"
     "where={code='x'}\n", ["unknown axis 'code'"]),
    ("[campaign]\nscenario='no-such-scenario'\nseed=1\n", ["no-such-scenario"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\nrig='no-such-rig'\n", ["[campaign] rig", "unknown rig", "loopback"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=1\nrig='missing.toml'\n", ["[campaign] rig", "missing.toml"]),
    ("[campaign]\nscenario='ispace-m2'\nseed=-3\n", ["[campaign] seed", "integer"]),
])
def test_spec_errors_name_file_key_and_allowed_values(tmp_path, bad, words):
    p = write(tmp_path, bad, "bad_spec.toml")
    with pytest.raises(ConfigError) as ei:
        load_spec(p)
    msg = str(ei.value)
    assert "bad_spec.toml" in msg
    for w in words:
        assert w in msg, msg
    if "NOPE" in bad:
        assert "NOPE" in msg and "CONTINGENCY_ENABLE" in msg, msg  # the flight-code parameter table


def test_overrides_reach_nested_frozen_dataclasses_and_merge_flight_params():
    base = load_scenario("ispace-m2")
    sc = apply_overrides(base, {"faults.0.acquire_altitude_m": 700.0, "lrf.latency_s": 0.2, "nav_error.altitude_m": 50.0,
                                "altitude_m": 2500.0, "flight_params": "FIXED",
                                "flight_params.CONTINGENCY_ALT": 1800.0, "imu.rate_hz": 200.0})
    assert sc.faults[0].acquire_altitude_m == 700.0 and sc.lrf.latency_s == 0.2
    assert sc.nav_error.altitude_m == 50.0 and sc.nav_error.v_up_mps == base.nav_error.v_up_mps
    assert sc.altitude_m == 2500.0 and sc.imu.rate_hz == 200.0
    assert sc.flight_params == {**FIXED, "CONTINGENCY_ALT": 1800.0}
    assert base.faults[0].acquire_altitude_m == 900.0  # the original is untouched


def test_plan_is_deterministic_seeded_and_stratified(tmp_path):
    spec = load_spec(write(tmp_path, SMALL.replace("runs_per_point = 2", "runs_per_point = 40")))
    a, b = plan(spec), plan(spec)
    assert a == b and len(a) == spec.n_runs == 4 * 40
    assert len({r.seed for r in a}) == len(a)
    assert [r.point for r in a[:2]] == [{"acq": "1500", "code": "as-flown"}] * 2
    # Latin hypercube: each of the 40 strata of v_up_mps holds exactly one run per grid point
    v = np.array([r.sampled["v_up_mps"] for r in a[:40]])
    strata = np.floor((v + 61.0) / 2.0 * 40).astype(int)
    assert sorted(strata) == list(range(40))
    for sampling in ("random", "sobol"):
        s2 = load_spec(write(tmp_path, SMALL.replace('"lhs"', f'"{sampling}"')))
        p2 = plan(s2)
        assert p2 == plan(s2) and p2[0].sampled != a[0].sampled
    other = spec_from_dict({**__import__("tomllib").loads(SMALL), "campaign": {
        **__import__("tomllib").loads(SMALL)["campaign"], "seed": 12}})
    assert plan(other)[0].seed != plan(load_spec(write(tmp_path, SMALL)))[0].seed


# ---------------------------------------------------------------------------------------------
# local pool + SQLite + report + rerun + gate


def test_local_campaign_store_report_rerun_and_gate(tmp_path):
    spec_p = write(tmp_path, SMALL.replace("value = 0.99", "value = 1.01"))  # impossible: gate must fail
    db = tmp_path / "small.sqlite"
    cp = subprocess.run([sys.executable, "-m", "harness.cli", "campaign", str(spec_p), "--db", str(db),
                         "--workers", "2", "--report", str(tmp_path / "r.html")],
                        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "pass criterion not met: success_rate >= 1.01 where code = fixed" in cp.stderr
    assert "run/s" in cp.stderr or "s/run" in cp.stderr          # the tqdm bar
    assert "success [95% CI]" in cp.stdout and "FAIL" in cp.stdout

    tab = results(db)
    assert tab.dtype.names[:4] == ("run_id", "point_index", "acq", "code")
    assert len(tab) == 8 and set(tab["status"]) == {"done"}
    assert set(tab["code"]) == {"as-flown", "fixed"} and set(tab["acq"]) == {1500.0, 400.0}
    assert (tab["outcome"][tab["code"] == "fixed"] == "landed").all()
    assert (tab["outcome"][(tab["code"] == "as-flown") & (tab["acq"] == 400.0)] != "landed").all()
    failed = tab[tab["outcome"] != "landed"]
    assert all(failed["failure_mode"])
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        kept = {r for (r,) in con.execute("SELECT run_id FROM blobs WHERE telemetry IS NOT NULL")}
        verdict = con.execute("SELECT verdict FROM runs WHERE run_id=?", (int(failed["run_id"][0]),)).fetchone()[0]
    assert kept == set(failed["run_id"].tolist())                  # telemetry kept for failed runs only
    assert "point of no return" in verdict or "LRF" in verdict

    html = (tmp_path / "r.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "Wilson" in html and "FAIL" in html
    for section in ("Pass criteria", "Where the flight code stops landing", "Success probability against the swept",
                    "dispersed parameters", "Touchdown speeds", "Failure modes", "Worst runs",
                    "fsil campaign rerun"):
        assert section in html, section

    # a failed run flies again alone and reproduces exactly: outcome, touchdown numbers, telemetry
    rid = int(failed["run_id"][0])
    cp = subprocess.run([sys.executable, "-m", "harness.cli", "campaign", "rerun", str(db), str(rid), "--out",
                         str(tmp_path / "again")], capture_output=True, text=True, env=_env(), timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "reproduced exactly" in cp.stdout and "full telemetry" in cp.stdout
    assert (tmp_path / "again" / "descent.png").stat().st_size > 10_000
    # and a landed run, in-process through the API
    ok = int(tab[tab["outcome"] == "landed"]["run_id"][0])
    r = rerun(db, ok, tmp_path / "ok")
    assert r.reproduced, r.differences
    assert r.result.touchdown.v_vertical == tab[tab["run_id"] == ok]["v_vertical"][0]

    # same command again: nothing to fly; criteria re-evaluated from the stored results
    out = run_campaign(spec_p, db, workers=1, progress=False)
    assert out.flown == 0 and out.resumed and not out.passed


def test_crashing_worker_hanging_run_and_exception_are_recorded_and_campaign_goes_on(tmp_path):
    spec = write(tmp_path, misbehaving_spec(["none", "exit", "hang", "raise"], runs_per_point=2))
    db = tmp_path / "bad.sqlite"
    t0 = time.perf_counter()
    out = run_campaign(spec, db, workers=2, progress=False, allow_import=["campaign_helpers"])
    assert time.perf_counter() - t0 < 120
    tab = out.table
    by = {m: tab[tab["mode"] == m] for m in ("none", "exit", "hang", "raise")}
    assert (by["none"]["status"] == "done").all() and (by["none"]["outcome"] == "timeout").all()
    assert (by["exit"]["failure_mode"] == "error: worker crashed").all()
    assert all("exit code 13" in e for e in by["exit"]["error"])
    assert (by["hang"]["failure_mode"] == "error: wall timeout").all()
    assert all("wall timeout of 8 s" in e for e in by["hang"]["error"])
    assert (by["raise"]["failure_mode"] == "error: RuntimeError").all()
    assert all("sabotage" in e for e in by["raise"]["error"])
    # errors are finished runs: not flown again unless asked
    assert run_campaign(spec, db, workers=1, progress=False, allow_import=["campaign_helpers"]).flown == 0


def _done_rows(db):
    with sqlite3.connect(db) as con:
        return {r[0]: r for r in con.execute(
            "SELECT run_id, status, outcome, v_vertical, finished, verdict FROM runs WHERE status != 'pending'")}


def test_sigkill_mid_campaign_then_resume_loses_nothing_and_reflies_nothing(tmp_path):
    spec = write(tmp_path, """
[campaign]
name = "killme"
scenario = "campaign_helpers:short"
seed = 9
sampling = "sobol"
runs_per_point = 64
run_timeout_s = 60
[dispersions]
"nav_error.altitude_m" = { dist = "uniform", low = 0.0, high = 300.0 }
[[sweep]]
path = "lrf.latency_s"
values = [0.0, 0.2]
""")
    db = tmp_path / "k.sqlite"
    cmd = [sys.executable, "-m", "harness.cli", "campaign", str(spec), "--db", str(db), "--workers", "2",
           "--allow-import", "campaign_helpers"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=tmp_path)
    deadline = time.time() + 180
    while time.time() < deadline:
        if db.exists():
            try:
                if len(_done_rows(db)) >= 6:
                    break
            except sqlite3.Error:
                pass
        time.sleep(0.02)  # runs take ~20 ms: results land in batches every 0.25 s
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = _done_rows(db)
    assert 6 <= len(before) < 128, len(before)
    time.sleep(1.0)  # orphaned workers (if any) find their parent gone; they never write the database
    assert _done_rows(db) == before

    cp = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert f"{len(before)} already in" in cp.stderr
    after = _done_rows(db)
    assert len(after) == 128
    for rid, row in before.items():
        assert after[rid] == row  # untouched: same result, same finish time (not flown again)
    assert f"({128 - len(before)} runs flown now" in cp.stdout


# ---------------------------------------------------------------------------------------------
# Dask: a real scheduler and workers on loopback


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
        try:
            yield cluster
        finally:
            cluster.close()


def test_dask_results_identical_to_local_and_errors_recorded(tmp_path, dask_cluster):
    spec_p = write(tmp_path, SMALL)
    local = run_campaign(spec_p, tmp_path / "local.sqlite", workers=2, progress=False).table
    cp = subprocess.run([sys.executable, "-m", "harness.cli", "campaign", str(spec_p), "--db",
                         str(tmp_path / "dask.sqlite"), "--scheduler", dask_cluster.scheduler_address],
                        capture_output=True, text=True, env=_env(), timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "dask cluster tcp://127.0.0.1" in cp.stderr
    remote = results(tmp_path / "dask.sqlite")
    assert len({w.rsplit(":", 1)[-1] for w in remote["worker"]}) >= 1
    for col in ("outcome", "failure_mode", "v_vertical", "v_horizontal", "propellant_kg", "first_lrf_alt_m"):
        assert np.array_equal(local[col], remote[col], equal_nan=True) if local[col].dtype.kind == "f" \
            else (local[col] == remote[col]).all(), col

    bad = write(tmp_path, misbehaving_spec(["none", "exit", "hang", "none"], runs_per_point=1,
                                           labels=["ok1", "exit", "hang", "ok2"]), "bad.toml")
    out = run_campaign(bad, tmp_path / "dbad.sqlite", scheduler=dask_cluster.scheduler_address, progress=False,
                       allow_import=["campaign_helpers"])
    tab = out.table
    assert list(tab["status"]) == ["done", "error", "error", "done"], list(zip(tab["status"], tab["error"]))
    assert tab["failure_mode"][1] == "error: worker crashed" and "KilledWorker" in tab["error"][1]
    assert tab["failure_mode"][2] == "error: wall timeout" and "restarted" in tab["error"][2], list(tab["error"])



def test_results_table_before_flying_and_shadowed_names(tmp_path):
    from harness.campaign.store import Store

    spec = load_spec(write(tmp_path, SMALL.replace('"v_up_mps" =', '"propellant_kg" = { dist = "uniform", '
                                                   'low = 480.0, high = 520.0 }\n"v_up_mps" =')))
    with Store(tmp_path / "p.sqlite") as st:
        assert st.init_campaign(spec, plan(spec)) is False
        assert st.init_campaign(spec, plan(spec)) is True          # same spec: resume
        tab = st.table()
    assert "in.propellant_kg" in tab.dtype.names and "propellant_kg" in tab.dtype.names
    assert (tab["status"] == "pending").all() and np.isnan(tab["propellant_kg"]).all()
    assert ((tab["in.propellant_kg"] >= 480) & (tab["in.propellant_kg"] <= 520)).all()
    other = load_spec(write(tmp_path, SMALL.replace("seed = 11", "seed = 12"), "other.toml"))
    with Store(tmp_path / "p.sqlite") as st, pytest.raises(ConfigError, match="different spec"):
        st.init_campaign(other, plan(other))
