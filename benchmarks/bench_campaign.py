"""Campaign throughput: runs per second per core with the local executor (1 and N workers,
parallel efficiency) and with Dask on a cluster started as a cluster user starts one: a
``dask scheduler`` process and a ``dask worker --nworkers N --nthreads 1`` process on loopback
TCP (executors.dask_cli_cluster).

    python benchmarks/bench_campaign.py [--runs 48] [--workers 2] [--no-dask]

The workload is a slice of the M2 acquisition campaign (all three flight-code configurations,
acquisition altitudes where runs land and crash), so runs have their real mix of lengths.
Executor start-up (process spawn, cffi load, cluster start) is excluded: each executor is
warmed with one run per worker first, then timed on ``--runs`` runs. "busy" is the sum of the
runs' wall times over workers x elapsed: the share of the time the executor kept its workers
flying (its own overhead: scheduling, pickling, the SQLite writes, the tail). On a shared machine
the throughput also depends on what else runs: the load average is printed, and the campaign
process's own CPU time per run (claiming, unpickling, SQLite writes, progress), which competes
with the workers for the cores.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = """
[campaign]
name = "bench"
scenario = "ispace-m2"
seed = {seed}
sampling = "lhs"
runs_per_point = {per}
run_timeout_s = 300
[dispersions]
"nav_error.altitude_m" = {{ dist = "truncnormal", mean = 1100.0, sigma = 150.0, low = 700.0, high = 1500.0 }}
"v_up_mps" = {{ dist = "uniform", low = -63.0, high = -57.0 }}
[[sweep]]
path = "faults.0.acquire_altitude_m"
values = [2400.0, 900.0, 600.0, 200.0]
[[sweep]]
name = "flight_code"
path = "flight_params"
values = ["AS_FLOWN", {{ LRF_GATE_POLICY = 1, CONTINGENCY_ENABLE = 0 }}, "FIXED"]
"""


def timed(executor, runs: int, workers: int, tmp: Path, tag: str) -> float:
    from harness.campaign import load_spec, run_campaign

    per = max(1, runs // 12)
    warm = load_spec("warm.toml", text=SPEC.format(seed=1, per=1).replace('values = [2400.0, 900.0, 600.0, 200.0]',
                                                                          'values = [2400.0]'))
    run_campaign(warm, tmp / f"warm-{tag}.sqlite", executor=_Keep(executor), progress=False)
    spec = load_spec("bench.toml", text=SPEC.format(seed=7, per=per))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = run_campaign(spec, tmp / f"{tag}.sqlite", executor=_Keep(executor), progress=False)
    dt = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    busy = float(out.table["wall_s"].sum())  # time workers spent inside runs
    parent_ms = 1000.0 * ((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)) / max(out.flown, 1)
    timed.mean_sim_time_s = float(out.table["sim_time_s"].mean())
    return out.flown / dt, busy / (workers * dt), parent_ms


def overhead(k: int = 12) -> tuple[float, float]:
    """In this process, as a worker does it: ms per run of ``worker.fly_one`` (scenario, flight,
    metrics, digest, packing) and of ``Rig.fly`` alone (``worker.fly_on_rig``), over ``k`` runs of
    the benchmark's mix."""
    from harness.campaign import load_spec
    from harness.campaign.core import _task
    from harness.campaign.sampling import plan
    from harness.campaign.spec import build_scenario
    from harness.campaign.worker import fly_on_rig, fly_one, warm_up

    spec = load_spec("bench.toml", text=SPEC.format(seed=3, per=1))
    tasks = [_task(spec, {"run_id": r.run_id, "overrides": r.overrides, "seed": r.seed}, "bench")
             for r in plan(spec)][:k]
    warm_up()
    fly_one(tasks[0])
    scs = [build_scenario(t["scenario"], t["overrides"], t["seed"]) for t in tasks]
    t0 = time.process_time()
    for sc in scs:
        fly_on_rig(sc)
    t1 = time.process_time()
    for t in tasks:
        fly_one(t)
    t2 = time.process_time()
    return 1000 * (t2 - t1) / len(tasks), 1000 * (t1 - t0) / len(tasks)


class _Keep:
    """Lend an executor to run_campaign without letting it close it."""

    def __init__(self, ex):
        self.ex = ex

    def describe(self):
        return self.ex.describe()

    def run(self, tasks, timeout_s):
        return self.ex.run(tasks, timeout_s)

    def close(self, cancel=False):
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--no-anchor", action="store_true", help="do not print the ratio to Basilisk's Monte Carlo")
    a = ap.parse_args()
    from harness.campaign.executors import DaskExecutor, LocalExecutor  # noqa: F401

    tmp = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the benchmark; "
          f"{(a.runs // 12) * 12} runs per measurement")
    whole, fly = overhead()
    print(f"per run in a worker (CPU): fly_one {whole:.1f} ms, of which Rig.fly {fly:.1f} ms: overhead "
          f"{whole - fly:.1f} ms ({(whole - fly) / whole:.1%}: scenario, metrics, digest, packing)")
    res = {}
    for n in (1, a.workers):
        ex = LocalExecutor(n)
        try:
            res[f"local-{n}"], busy, parent_ms = timed(ex, a.runs, n, tmp, f"local{n}")
        finally:
            ex.close()
        print(f"local, {n} worker(s): {res[f'local-{n}']:.2f} runs/s = {res[f'local-{n}'] / n:.2f} runs/s per core "
              f"(aim >= 15); workers busy flying {busy:.0%} of the time; campaign process {parent_ms:.1f} ms CPU "
              f"per run (load average now {os.getloadavg()[0]:.2f})")
    eff = res[f"local-{a.workers}"] / (a.workers * res["local-1"])
    print(f"parallel efficiency, {a.workers} workers vs 1: {eff:.0%} (aim >= 90 %)")
    if not a.no_anchor:  # issue 15's anchor: Basilisk's Monte Carlo on this machine (cached)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from anchor_basilisk import anchor, campaign_ratio_line, provenance

        rec = anchor()
        print(campaign_ratio_line(res[f"local-{a.workers}"] / a.workers, rec,
                                  mean_descent_s=getattr(timed, "mean_sim_time_s", None)))
        print(provenance(rec))
    if not a.no_dask:
        from harness.campaign.executors import dask_cli_cluster

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with dask_cli_cluster(a.workers, env=env, folder=tmp / "cluster") as address:
            ex = DaskExecutor(address)
            try:
                res["dask"], busy, parent_ms = timed(ex, a.runs, a.workers, tmp, "dask")
            finally:
                ex.close()
        ratio = res["dask"] / res[f"local-{a.workers}"]
        print(f"dask scheduler + dask worker processes ({address}), {a.workers} workers x 1 thread: "
              f"{res['dask']:.2f} runs/s = {ratio:.0%} of local (aim >= 90 %); workers busy flying {busy:.0%} of the "
              f"time; campaign process {parent_ms:.1f} ms CPU per run")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
