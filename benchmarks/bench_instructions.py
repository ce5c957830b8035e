"""Instructions per closed-loop cycle, counted by valgrind: a measure of what the loop costs
that does not move with the host's load (wall-clock figures on this shared VM do, by up to 40 %).

    python benchmarks/bench_instructions.py [--scenario nominal-terminal-descent] [--short 10] [--long 30]
                                            [--rig loopback]

Flies the scenario twice on the loopback rig (or ``--rig``) under ``valgrind --tool=callgrind``, for
``--short`` and ``--long`` simulated seconds, and divides the difference in instructions by
the difference in cycles, so start-up (imports, build cache, handshake) cancels out; the
per-cycle share of the post-processing stays in. A first, uncounted flight fills numba's
cache for valgrind's CPU. On a serial rig (``--rig host-pty``) the flight program is a process of
its own, not counted: the count is the harness's side of the link alone. Reproducible to about 1 in 10^4 with address
randomisation off (``setarch -R``) and one BLAS thread, both set here. About five minutes.

Use it to judge a change to the hot path: run it before and after (wall-clock A/B runs
need many interleaved repeats to see a 5 % change here). To turn instructions into time,
divide by the instructions per microsecond that ``bench_descent.py`` shows at the same moment.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

CHILD = """
import sys
from harness.rigs import open_rig
from harness.scenario_files import load_scenario
with open_rig(sys.argv[3]) as up:
    r = up.fly(load_scenario(sys.argv[1]).with_(t_max_s=float(sys.argv[2])))
print("CYCLES", r.link_stats["exchanges"])
"""


def count(scenario: str, t_max_s: float, rig: str = "loopback") -> tuple[int, int]:
    """(instructions, cycles) of one flight of ``t_max_s`` simulated seconds under callgrind."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
               sys.executable, "-c", CHILD, scenario, str(t_max_s), rig]
        if shutil.which("setarch"):
            cmd = ["setarch", "-R"] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    instr = re.search(r"Collected : (\d+)", out.stderr)
    cycles = re.search(r"CYCLES (\d+)", out.stdout)
    if not instr or not cycles:
        raise SystemExit(f"could not read the counts:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return int(instr.group(1)), int(cycles.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="nominal-terminal-descent")
    ap.add_argument("--short", type=float, default=10.0, help="simulated seconds of the short flight")
    ap.add_argument("--long", type=float, default=30.0, help="simulated seconds of the long flight")
    ap.add_argument("--rig", default="loopback", help="the rig to fly on (host-pty: the harness's side alone)")
    ap.add_argument("--no-anchor", dest="anchor", action="store_false",
                    help="do not print the ratio to Basilisk's instructions per step (benchmarks/anchor_basilisk.py)")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    # a first flight compiles the plant's RK4 kernel for the CPU valgrind shows (its CPUID differs
    # from the host's, so numba's cache of the host's machine code does not apply) and caches it;
    # without it the short flight would pay the compile and the long one not
    count(args.scenario, 1.0, args.rig)
    i0, c0 = count(args.scenario, args.short, args.rig)
    i1, c1 = count(args.scenario, args.long, args.rig)
    per_cycle = (i1 - i0) / (c1 - c0)
    on = "" if args.rig == "loopback" else f" on {args.rig} (the harness's side)"
    print(f"{args.scenario}{on}: {per_cycle:,.0f} instructions per cycle "
          f"({c1 - c0} cycles between the {args.short:g} s and {args.long:g} s flights)")
    if args.anchor and args.rig == "loopback":  # issue 15's anchor: Basilisk's bare step, counted the same way (cached)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from anchor_basilisk import anchor, instructions_ratio_line, provenance

        rec = anchor()
        print(instructions_ratio_line(per_cycle, rec))
        print(provenance(rec))


if __name__ == "__main__":
    main()
