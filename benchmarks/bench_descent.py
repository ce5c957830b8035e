"""Real-time factor of a whole closed-loop descent on the loopback rig (wall and CPU time).

    python benchmarks/bench_descent.py [--repeat 20] [--scenario nominal-terminal-descent]

Goal (issue 3): at least 500x real time at the 50 Hz flight-code rate, i.e. at most 40 us per
flight-code cycle for everything: plant, sensor models, codec, link, the C flight code, the
record, and the run's set-up and post-processing (the whole ``fly()`` call is timed).

This machine is a shared 2-core VM: the same code runs up to ~40 % slower when the host is
busy, so the figure is the best of ``--repeat`` runs, and the median is printed beside it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from harness.cycle import how_advance_runs
from harness.plant import load_rk4_kernel
from harness.rigs import open_rig
from harness.scenario_files import load_scenario


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--scenario", default="nominal-terminal-descent")
    ap.add_argument("--anchor", choices=("cached", "refresh", "off"), default="cached",
                    help="Basilisk anchor ratio (benchmarks/anchor_basilisk.py): cached, measured now, or none")
    args = ap.parse_args()
    sc = load_scenario(args.scenario)
    walls, cpus = [], []
    with open_rig("loopback") as up:
        up.fly(sc.with_(t_max_s=2.0))  # build and warm up
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            res = up.fly(sc)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    n = res.link_stats["exchanges"]
    t_sim = res.sim_time_s
    best_wall, med_wall, best_cpu = min(walls), statistics.median(walls), min(cpus)
    loop_us = res.link_stats["loop_wall_s"] / n * 1e6
    _kernel, compiled = load_rk4_kernel()
    print(f"{args.scenario}: {res.outcome}, {t_sim:.1f} s simulated, {n} cycles at "
          f"{res.scenario.flight_rate_hz:.0f} Hz; plant RK4 kernel "
          f"{'compiled by numba' if compiled else 'interpreted (NUMBA_DISABLE_JIT=1 or no numba)'}; "
          f"a cycle with a fault hook: {how_advance_runs()}")
    print(f"best of {args.repeat}: wall {best_wall:.3f} s = {t_sim / best_wall:.0f}x real time "
          f"({best_wall / n * 1e6:.1f} us/cycle); CPU {best_cpu:.3f} s = {t_sim / best_cpu:.0f}x; "
          f"median wall {med_wall / n * 1e6:.1f} us/cycle = {t_sim / med_wall:.0f}x; "
          f"last run's cycle loop alone {loop_us:.1f} us/cycle")
    if args.anchor != "off":  # the anchor of issue 15: Basilisk's bare dynamics on this machine
        from anchor_basilisk import anchor, loop_ratio_line, provenance

        rec = anchor(refresh=args.anchor == "refresh")
        print(loop_ratio_line(n / best_wall, rec) + f" (load average now {os.getloadavg()[0]:.2f})")
        print(provenance(rec))


if __name__ == "__main__":
    main()
