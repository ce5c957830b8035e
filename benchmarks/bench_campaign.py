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
the throughput also depends on what else runs: the load average is printed, and the CPU time
per run of every process of the executor (the campaign process: claiming, unpickling, SQLite
writes, progress; the workers; Dask's scheduler and the `dask worker` process that holds the
nannies) and the workers' minor page faults per run, which move much less with load.

    python benchmarks/bench_campaign.py --runs 192 --workers 2 --compare 7

times the local pool and Dask alternately, 7 times each (a new pool and a new cluster each time),
and prints every Dask/local ratio, their minimum and median, and the CPU accounting of each.
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


ROLES = ("campaign process", "workers", "scheduler", "nannies")


def _processes() -> dict:
    """{pid: (role, CPU seconds, minor page faults)} of this process's descendants that fly or
    schedule runs: the local pool's workers, Dask's scheduler, the `dask worker` process (its
    nannies) and the worker processes it spawned (Linux /proc; empty without psutil)."""
    try:
        import psutil
    except ImportError:
        return {}
    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            if "dask scheduler" in cmd:
                role = "scheduler"
            elif "dask worker" in cmd:
                role = "nannies"
            elif "spawn_main" in cmd or (p.parent() and "forkserver" in " ".join(p.parent().cmdline())):
                role = "workers"
            else:
                continue  # forkserver, resource tracker: idle
            t = p.cpu_times()
            with open(f"/proc/{p.pid}/stat") as f:
                minflt = int(f.read().rsplit(")", 1)[1].split()[7])
            out[p.pid] = (role, t.user + t.system, minflt)
        except (psutil.Error, OSError, ValueError, IndexError):
            pass
    return out


def timed(executor, runs: int, workers: int, tmp: Path, tag: str) -> tuple[float, float, dict]:
    """(runs/s, busy, accounting) of one campaign of ``runs`` runs on ``executor``; accounting:
    CPU ms per run of each role of ROLES and the workers' minor page faults per run ("faults")."""
    from harness.campaign import load_spec, run_campaign

    per = max(1, runs // 12)
    warm = load_spec("warm.toml", text=SPEC.format(seed=1, per=1).replace('values = [2400.0, 900.0, 600.0, 200.0]',
                                                                          'values = [2400.0]'))
    run_campaign(warm, tmp / f"warm-{tag}.sqlite", executor=_Keep(executor), progress=False)
    spec = load_spec("bench.toml", text=SPEC.format(seed=7, per=per))
    procs0 = _processes()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = run_campaign(spec, tmp / f"{tag}.sqlite", executor=_Keep(executor), progress=False)
    dt = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    procs1 = _processes()
    busy = float(out.table["wall_s"].sum())  # time workers spent inside runs
    n = max(out.flown, 1)
    acc = dict.fromkeys(ROLES, 0.0)
    acc["campaign process"] = 1000.0 * ((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)) / n
    faults = 0
    for pid, (role, cpu, minflt) in procs1.items():
        if pid in procs0:  # started before the timed campaign: the executor's processes
            acc[role] += 1000.0 * (cpu - procs0[pid][1]) / n
            if role == "workers":
                faults += minflt - procs0[pid][2]
    acc["faults"] = faults / n
    timed.mean_sim_time_s = float(out.table["sim_time_s"].mean())
    return out.flown / dt, busy / (workers * dt), acc


def accounting_text(acc: dict) -> str:
    """CPU ms per run of each process role (and the total), the workers' page faults per run."""
    parts = [f"{r} {acc[r]:.2f}" for r in ROLES if acc[r] or r in ("campaign process", "workers")]
    return (f"CPU ms per run: {', '.join(parts)}; total {sum(acc[r] for r in ROLES):.2f}; workers' minor page "
            f"faults {acc['faults']:.0f} per run")


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


def dask_phase(a, tmp: Path, tag: str) -> tuple[float, float, dict, str]:
    """Dask on a cluster started as a cluster user starts one (executors.dask_cli_cluster)."""
    from harness.campaign.executors import DaskExecutor, dask_cli_cluster

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with dask_cli_cluster(a.workers, env=env, folder=tmp / f"cluster-{tag}") as address:
        ex = DaskExecutor(address)
        try:
            rate, busy, acc = timed(ex, a.runs, a.workers, tmp, tag)
        finally:
            ex.close()
    return rate, busy, acc, address


def local_phase(a, n: int, tmp: Path, tag: str) -> tuple[float, float, dict]:
    from harness.campaign.executors import LocalExecutor

    ex = LocalExecutor(n)
    try:
        return timed(ex, a.runs, n, tmp, tag)
    finally:
        ex.close()


def compare(a, tmp: Path) -> None:
    """``--compare K``: the local pool and Dask alternately, K times each; every ratio, min, median."""
    import statistics

    ratios, cpu_local, cpu_dask = [], [], []
    for i in range(a.compare):
        load0 = os.getloadavg()[0]
        local, busy_l, acc_l = local_phase(a, a.workers, tmp, f"cmp{i}-local")
        dask, busy_d, acc_d, _ = dask_phase(a, tmp, f"cmp{i}-dask")
        ratios.append(dask / local)
        cpu_local.append(sum(acc_l[r] for r in ROLES))
        cpu_dask.append(sum(acc_d[r] for r in ROLES))
        print(f"pair {i + 1}/{a.compare}: local {local:.2f} runs/s (busy {busy_l:.0%}), dask {dask:.2f} runs/s (busy "
              f"{busy_d:.0%}): dask/local {dask / local:.0%}; load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")
        print(f"    local {accounting_text(acc_l)}")
        print(f"    dask  {accounting_text(acc_d)}", flush=True)
    print(f"dask/local over {a.compare} interleaved pairs ({a.workers} workers, {(a.runs // 12) * 12} runs each): "
          f"{', '.join(f'{r:.0%}' for r in ratios)}; min {min(ratios):.0%}, median {statistics.median(ratios):.0%} "
          f"(aim: all >= 90 %)")
    print(f"CPU ms per run, all processes: local median {statistics.median(cpu_local):.2f}, dask median "
          f"{statistics.median(cpu_dask):.2f} ({statistics.median(cpu_dask) / statistics.median(cpu_local) - 1:+.1%})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--no-anchor", action="store_true", help="do not print the ratio to Basilisk's Monte Carlo")
    ap.add_argument("--compare", type=int, default=0, metavar="K",
                    help="only the local pool against Dask, alternately, K times each")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the benchmark; "
          f"{(a.runs // 12) * 12} runs per measurement")
    if a.compare:
        compare(a, tmp)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return 0
    whole, fly = overhead()
    print(f"per run in a worker (CPU): fly_one {whole:.1f} ms, of which Rig.fly {fly:.1f} ms: overhead "
          f"{whole - fly:.1f} ms ({(whole - fly) / whole:.1%}: scenario, metrics, digest, packing)")
    res = {}
    for n in (1, a.workers):
        res[f"local-{n}"], busy, acc = local_phase(a, n, tmp, f"local{n}")
        print(f"local, {n} worker(s): {res[f'local-{n}']:.2f} runs/s = {res[f'local-{n}'] / n:.2f} runs/s per core "
              f"(aim >= 15); workers busy flying {busy:.0%} of the time (load average now {os.getloadavg()[0]:.2f})"
              f"\n    {accounting_text(acc)}")
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
        res["dask"], busy, acc, address = dask_phase(a, tmp, "dask")
        ratio = res["dask"] / res[f"local-{a.workers}"]
        print(f"dask scheduler + dask worker processes ({address}), {a.workers} workers x 1 thread: "
              f"{res['dask']:.2f} runs/s = {ratio:.0%} of local (aim >= 90 %); workers busy flying {busy:.0%} of the "
              f"time\n    {accounting_text(acc)}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
