"""A campaign on a Dask cluster started the way a cluster user starts one: ``dask scheduler`` and
``dask worker`` as separate processes on loopback TCP (issue 15). Its database holds the same
results, bit for bit, as a run of the same spec on the local process pool."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from campaign_helpers import m2_fix_spec  # tests/ is on sys.path (a helper module, not a test)

REPO = Path(__file__).resolve().parent.parent

SPEC = m2_fix_spec("dask-cli", 21, 3, 120, campaign_extra='requirements = ["touchdown_envelope"]',
                   dispersions='"nav_error.altitude_m" = { dist = "normal", mean = 1100.0, sigma = 80.0 }\n'
                               '"v_up_mps" = { dist = "uniform", low = -61.0, high = -59.0 }')

# what may differ between two databases of one campaign: who flew a run, when, how long it took
_RUN_COLUMNS = "run_id, point_json, params_json, sampled_json, seed, status, v_vertical, v_horizontal, tilt_deg, " \
               "propellant_kg, position_error_m, touchdown_t_s, first_lrf_alt_m, first_lrf_t_s, pnr_t_s, pnr_alt_m, " \
               "max_est_error_m, sim_time_s, lrf_rejected, outcome, failure_mode, verdict, error, telemetry_sha256"


def _content(db: Path):
    con = sqlite3.connect(db)
    try:
        return (con.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY run_id").fetchall(),
                con.execute("SELECT run_id, traj, telemetry FROM blobs ORDER BY run_id").fetchall(),
                con.execute("SELECT * FROM robustness ORDER BY run_id, requirement").fetchall())
    finally:
        con.close()


def test_campaign_on_dask_scheduler_and_worker_processes_equals_local_bit_for_bit(tmp_path):
    try:
        import distributed  # noqa: F401
    except ImportError:
        pytest.skip("dask.distributed is not installed: pip install 'dask[distributed]' to run this test")
    from harness.campaign import run_campaign
    from harness.campaign.executors import dask_cli_cluster

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    from harness.campaign.executors import DaskExecutor

    local = run_campaign(spec, tmp_path / "local.sqlite", workers=2, progress=False)
    assert local.flown == 6
    with dask_cli_cluster(2, env=env, folder=tmp_path / "cluster") as address:
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        assert "dask scheduler --host 127.0.0.1" in ps and f"dask worker {address}" in ps
        _assert_campaign_settings(address)
        cp = subprocess.run([sys.executable, "-m", "harness.cli", "campaign", str(spec), "--db",
                             str(tmp_path / "dask.sqlite"), "--scheduler", address, "--no-progress"],
                            capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
        # and with several runs per Dask task (what short runs get): a chunk of up to 16 runs
        chunked = DaskExecutor(address, chunk_s=1e6)
        try:
            run_campaign(spec, tmp_path / "chunked.sqlite", executor=chunked, progress=False)
        finally:
            chunked.close()
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert f"dask cluster {address}, 2 workers" in cp.stderr
    runs_l, blobs_l, rob_l = _content(tmp_path / "local.sqlite")
    assert [r[-5] for r in runs_l].count("landed") == 3 and len(runs_l) == 6  # landed and failed runs both
    for db in ("dask.sqlite", "chunked.sqlite"):
        runs_d, blobs_d, rob_d = _content(tmp_path / db)
        assert runs_d == runs_l, db          # every number, text and telemetry digest
        assert blobs_d == blobs_l, db        # the kept telemetry and trajectories, byte for byte
        assert rob_d == rob_l and len(rob_l) == 6, db
    with sqlite3.connect(tmp_path / "dask.sqlite") as con:
        workers = {w for (w,) in con.execute("SELECT worker FROM runs")}
    local_workers = {w for w in local.table["worker"]}
    assert workers.isdisjoint(local_workers)  # flown by other processes than the local pool's


def _assert_campaign_settings(address):
    """The settings of executors.DASK_CLUSTER_ENV reach the processes `dask scheduler` and
    `dask worker` start (docs/campaigns.md "Executors"), and the nanny's other settings stay."""
    import dask
    from distributed import Client

    def _worker_settings(dask_worker):  # nested: shipped to the workers by value (cloudpickle)
        import os

        return (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS"),
                {k: pc.callback_time for k, pc in dask_worker.periodic_callbacks.items()})

    def _scheduler_tick(dask_scheduler):
        return dask_scheduler.periodic_callbacks["tick"].callback_time

    with Client(address, timeout=30) as client:
        per_worker = client.run(_worker_settings)
        nanny_ticks = client.run(lambda dask_worker: dask_worker.periodic_callbacks["tick"].callback_time, nanny=True)
        assert client.run_on_scheduler(_scheduler_tick) == 1000
        profile = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
    assert len(per_worker) == 2
    for trim, omp, callbacks in per_worker.values():
        assert trim is None     # glibc's allocator thresholds, as in the local pool (nanny's default: 65536)
        assert omp == "1"       # the rest of distributed.nanny.pre-spawn-environ is kept
        assert callbacks["tick"] == 1000 and callbacks["memory_monitor"] == 1000 and callbacks["monitor"] == 2000
    assert set(nanny_ticks.values()) == {1000}
    assert set(profile.values()) == {False}


def test_chunks_shrink_as_the_campaign_ends():
    from harness.campaign.executors import CHUNK_MAX, CHUNK_S, chunk_runs

    assert chunk_runs(None, 500, 2) == 1                   # a run's time not known yet: one run
    assert chunk_runs(0.05, 500, 2, 0.5) == 10             # 0.5 s of flying
    assert chunk_runs(0.05, 500, 2) == min(CHUNK_MAX, int(CHUNK_S / 0.05))
    assert chunk_runs(0.001, 500, 2) == CHUNK_MAX
    assert chunk_runs(0.05, 0, 2, 0.5) == 10               # runs left not known: the time alone
    # the runs left shared among the two tasks per thread kept submitted, down to single runs
    sizes, left = [], 60
    while left:
        sizes.append(chunk_runs(0.05, left, 2, 0.5))
        left -= sizes[-1]
    assert sizes[:3] == [10, 10, 10] and sizes[-4:] == [1, 1, 1, 1] and sizes == sorted(sizes, reverse=True)
    assert len(sizes) < 20


def test_executor_is_told_how_many_runs_are_left(tmp_path):
    """run_campaign hands the executor an iterator whose length hint counts the runs not yet taken."""
    import operator

    from harness.campaign import run_campaign

    seen = []

    class Counting:
        def describe(self):
            return "counting"

        def run(self, tasks, timeout_s):
            while True:
                seen.append(operator.length_hint(tasks, -1))
                t = next(tasks, None)
                if t is None:
                    return
                yield {"run_id": t["run_id"], "status": "error", "outcome": "error",
                       "failure_mode": "error: test", "error": "not flown", "wall_s": 0.0, "worker": "test"}

        def close(self, cancel=False):
            pass

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    run_campaign(spec, tmp_path / "c.sqlite", executor=Counting(), progress=False)
    assert seen == [6, 5, 4, 3, 2, 1, 0]


def test_a_chunk_flies_in_one_thread_and_a_run_after_a_timeout_comes_back_unflown():
    """A task's runs fly back to back in one thread (no thread, no hand-over per run); a run past
    its wall timeout ends the task with a timeout record naming the restart, the runs after it come
    back unflown (to fly elsewhere) and the stuck thread starts none of them when it comes free."""
    import threading

    from harness.campaign.executors import fly_chunk_guarded
    from harness.campaign.worker import fly_one

    release = threading.Event()
    started = []  # (run_id, thread) of every run that took off

    def record(task):
        started.append((task["run_id"], threading.get_ident()))
        return fly_one(task)

    def hang_on_run_1(task):
        if task["run_id"] == 1:
            started.append((1, threading.get_ident()))
            release.wait(60.0)  # hangs past its 2 s wall timeout until the test lets it go
            return fly_one(task)
        return record(task)

    tasks = [{"run_id": i, "scenario": "ispace-m2", "overrides": {"t_max_s": 5.0}, "seed": i} for i in range(3)]
    recs, unflown = fly_chunk_guarded(tasks, 30.0, record)
    assert [r["run_id"] for r in recs] == [0, 1, 2] and all(r["status"] == "done" for r in recs) and not unflown
    assert len({th for _, th in started}) == 1 and started[0][1] != threading.get_ident()  # one flight thread
    started.clear()

    recs, unflown = fly_chunk_guarded(tasks, 2.0, hang_on_run_1)
    assert [r["run_id"] for r in recs] == [0, 1] and recs[0]["status"] == "done"
    assert recs[1]["failure_mode"] == "error: wall timeout" and "restart_worker" in recs[1]
    assert unflown == tasks[2:]              # flown elsewhere: this worker is being restarted
    flight = [t for t in threading.enumerate() if t.name == "fsil-runs-0"]
    assert len(flight) == 1                  # run 1 still holds it
    release.set()
    for t in flight:
        t.join(60.0)
    assert [rid for rid, _ in started] == [0, 1]          # run 2 never took off here
