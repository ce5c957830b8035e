"""A campaign run's work outside its cycle loop, per run, on a sample of the M2 campaign's runs.

    python benchmarks/bench_outside_loop.py [--every 20]
    python benchmarks/bench_outside_loop.py --descent 30

``--descent N``: instead, what ``benchmarks/bench_descent.py`` counts beside the loop: N flights of
nominal-terminal-descent on one loopback rig (round-trip times kept, as there), ``fly()``'s time
less its loop's, best and median, in ms per run and us per cycle.

What a campaign worker does around ``harness.runner.fly``'s ``while True:`` loop: build the
scenario, bring the loopback rig up (the flight code's build key), set the flight up (faults,
link, lander, plant, sensors, CONFIG handshake), and after the loop: drain and close the link,
turn the per-cycle record into telemetry columns, merge the flight code's TELEMETRY, build the
FlightResult, free the run's objects; then ``metrics`` and ``telemetry_digest``. Packing the
columns for the database is not counted (its own benchmark: bench_campaign_db.py).

Times are CPU time of this thread (``time.thread_time``), not wall time: on a shared machine a
process waiting for a core does not count, so the figures move far less with the load. The
loop's own time is taken by the runner's clock, here pointed at the same CPU clock.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=20, help="fly every N-th run of the M2 plan (default 20: 52 runs)")
    ap.add_argument("--descent", type=int, metavar="N", help="fly nominal-terminal-descent N times on one rig instead")
    args = ap.parse_args()

    from harness import runner

    # the runner's clock (loop_wall_s, wall_time_s) on this thread's CPU time, as the rest here
    runner.time = types.SimpleNamespace(perf_counter=time.thread_time, sleep=time.sleep)
    if args.descent:
        descent(args.descent)
        return
    from harness.campaign import load_spec
    from harness.campaign.core import _task
    from harness.campaign.sampling import plan
    from harness.campaign.spec import build_scenario
    from harness.campaign.worker import _base_scenario, fly_on_rig, metrics, telemetry_digest, warm_up

    spec = load_spec(ROOT / "harness/data/campaigns/m2_lrf_acquisition.toml")
    tasks = [_task(spec, {"run_id": t.run_id, "overrides": t.overrides, "seed": t.seed}, "bench")
             for t in plan(spec)][::args.every]
    warm_up()
    clock = time.thread_time
    total = dict(build=0.0, fly_outside_loop=0.0, metrics=0.0, digest=0.0, loop=0.0)
    for task in tasks:
        t0 = clock()
        sc = build_scenario(task["scenario"], task["overrides"], task["seed"], "<bench>", allow_import=(),
                            base=_base_scenario(task))
        t1 = clock()
        res = fly_on_rig(sc, "loopback")
        t2 = clock()
        metrics(res)
        t3 = clock()
        telemetry_digest(res.telemetry)
        t4 = clock()
        loop = res.link_stats["loop_wall_s"]
        total["build"] += t1 - t0
        total["fly_outside_loop"] += (t2 - t1) - loop
        total["metrics"] += t3 - t2
        total["digest"] += t4 - t3
        total["loop"] += loop
    n = len(tasks)
    outside = sum(v for k, v in total.items() if k != "loop")
    print(f"load average {os.getloadavg()[0]:.2f}; {n} M2 runs; CPU ms per run:")
    for k, v in total.items():
        print(f"  {k:18s} {v / n * 1e3:7.2f}")
    print(f"  {'outside the loop':18s} {outside / n * 1e3:7.2f}")


def descent(repeat: int) -> None:
    """fly() less its cycle loop, CPU time, for one descent flown ``repeat`` times on one open rig."""
    import statistics

    from harness.rigs import open_rig
    from harness.scenario_files import load_scenario

    sc = load_scenario("nominal-terminal-descent")
    clock, outside = time.thread_time, []
    with open_rig("loopback") as up:
        up.fly(sc)  # build, compile, warm up
        for _ in range(repeat):
            t0 = clock()
            res = up.fly(sc)
            outside.append(clock() - t0 - res.link_stats["loop_wall_s"])
    cycles = res.link_stats["exchanges"]
    best, median = min(outside), statistics.median(outside)
    print(f"load average {os.getloadavg()[0]:.2f}; nominal-terminal-descent x {repeat}, {cycles} cycles; "
          f"fly() outside its loop, CPU: best {best * 1e3:.2f} ms ({best / cycles * 1e6:.2f} us/cycle), "
          f"median {median * 1e3:.2f} ms ({median / cycles * 1e6:.2f} us/cycle)")


if __name__ == "__main__":
    main()
