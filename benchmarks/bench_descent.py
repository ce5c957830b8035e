"""Real-time factor of a whole closed-loop descent on the loopback rig (wall and CPU time).

    python benchmarks/bench_descent.py [--repeat 5] [--scenario nominal-terminal-descent]

Goal (issue 3): at least 500x real time at the 50 Hz flight-code rate.
"""
from __future__ import annotations

import argparse
import time

from harness.rigs import open_rig
from harness.scenario_files import load_scenario


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scenario", default="nominal-terminal-descent")
    args = ap.parse_args()
    sc = load_scenario(args.scenario)
    with open_rig("loopback") as up:
        up.fly(sc.with_(t_max_s=2.0))  # build and warm up
        best_wall = best_cpu = float("inf")
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            res = up.fly(sc)
            best_wall = min(best_wall, time.perf_counter() - w0)
            best_cpu = min(best_cpu, time.process_time() - c0)
    n = res.link_stats["exchanges"]
    print(f"{args.scenario}: {res.outcome}, {res.sim_time_s:.1f} s simulated, {n} cycles at "
          f"{res.scenario.flight_rate_hz:.0f} Hz")
    print(f"best of {args.repeat}: wall {best_wall:.3f} s = {res.sim_time_s / best_wall:.0f}x real time "
          f"({best_wall / n * 1e6:.1f} us/cycle); CPU {best_cpu:.3f} s = {res.sim_time_s / best_cpu:.0f}x")


if __name__ == "__main__":
    main()
