"""Falsification and boundary-search measurements (issue 16). Long: run by hand, not in CI.

    python benchmarks/bench_falsify.py falsify --seeds 10 --workers 2          # descents to first violation
    python benchmarks/bench_falsify.py boundary --seeds 5 --workers 2          # M2 gate-fix 50 % altitude
    python benchmarks/bench_falsify.py reference --runs 60 --workers 2         # P(landed) at fixed altitudes
    python benchmarks/bench_falsify.py replay --workers 2                      # falsified case flown again
    python benchmarks/bench_falsify.py table                                   # tables from what is stored

Everything is stored in bench-falsify/*.sqlite: an interrupted measurement resumes where it
stopped (same command), and ``table`` prints the tables from the databases at any time.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "harness" / "data" / "falsify"
# problem -> (spec, failing region, budget for the optimisers, budget for uniform random)
PROBLEMS = {
    "m2-gate-fix-late-lrf": (DATA / "m2_gate_fix_late_lrf.toml", "large", 40, 40),
    "accel-bias-corner": (DATA / "accel_bias_corner.toml", "small", 200, 600),
    "accel-bias-corner-4d": (DATA / "accel_bias_corner_4d.toml", "large", 200, 600),
}
OPTIMIZERS = ("random", "cma", "de", "dual_annealing", "tpe")


def _executor(workers):
    from harness.campaign.executors import LocalExecutor

    return LocalExecutor(workers)


def cmd_falsify(args) -> None:
    from harness.falsify import falsify

    out = Path(args.out)
    ex = _executor(args.workers)
    try:
        for name in args.problems.split(","):
            spec, _region, budget, budget_random = PROBLEMS[name]
            for opt in args.optimizers.split(","):
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    r = falsify(spec, out / f"{name}.sqlite", optimizer=opt, seed=seed, executor=ex, progress=False,
                                budget=budget_random if opt == "random" else budget, write_case=False,
                                stream=open("/dev/null", "w"))
                    print(f"{name} {opt} seed {seed}: "
                          f"{r.descents_to_violation if r.falsified else 'not falsified'} "
                          f"({r.descents} descents, {r.flown} flown now, {r.wall_s:.0f} s)", flush=True)
    finally:
        ex.close()
    print(table(out))


def table(out: Path) -> str:
    from harness.falsify.store import FalsifyStore

    lines = ["| problem (failing region) | optimiser | falsified | median descents to first violation | "
             "speed-up vs random (median) |", "| --- | --- | --- | --- | --- |"]
    for name, (_spec, region, budget, budget_random) in PROBLEMS.items():
        db = out / f"{name}.sqlite"
        if not db.exists():
            continue
        with FalsifyStore(db) as st:
            res = {}
            for s in st.searches():
                if s["mode"] != "falsify" or not s["result"]:
                    continue
                _, opt, seed = s["key"].split(":")
                r = s["result"]
                res.setdefault(opt, []).append(r["descents_to_violation"] if r["falsified"] else math.inf)
        med = {o: statistics.median(v) for o, v in res.items()}
        for opt in OPTIMIZERS:
            if opt not in res:
                continue
            v = res[opt]
            cap = budget_random if opt == "random" else budget
            m = med[opt]
            mtxt = f"> {cap}" if math.isinf(m) else f"{m:g}"
            sp = ""
            if opt != "random" and "random" in med:
                rm = med["random"]
                if math.isinf(m):
                    sp = "-"
                elif math.isinf(rm):
                    sp = f"> {budget_random / m:.1f}x"
                else:
                    sp = f"{rm / m:.1f}x"
            lines.append(f"| {name} ({region}) | {opt} | {sum(not math.isinf(x) for x in v)}/{len(v)} | {mtxt} | {sp} |")
    return "\n".join(lines)


def cmd_boundary(args) -> None:
    from harness.falsify import locate_boundary

    ex = _executor(args.workers)
    try:
        for seed in range(1, args.seeds + 1):
            b = locate_boundary(DATA / "m2_gate_fix_boundary.toml", Path(args.out) / "m2-boundary.sqlite", seed=seed,
                                executor=ex, progress=False, stream=open("/dev/null", "w"))
            print(f"seed {seed}: {b.summary()}  ({b.flown} flown now, {b.wall_s:.0f} s)", flush=True)
    finally:
        ex.close()


def cmd_reference(args) -> None:
    """P(landed) of the gate-fix configuration at fixed first-fix altitudes, many dispersed descents
    each (the boundary search's answer must agree): a campaign run by the campaign engine."""
    import tomllib

    from harness.campaign import run_campaign
    from harness.campaign.analysis import wilson
    from harness.campaign.spec import spec_from_dict

    src = tomllib.loads((DATA / "m2_gate_fix_boundary.toml").read_text())
    doc = {"campaign": {"name": "m2-gate-fix-reference", "scenario": "ispace-m2", "seed": 7, "sampling": "random",
                        "runs_per_point": args.runs, "run_timeout_s": 120, "keep_telemetry": "none"},
           "scenario": src["scenario"], "dispersions": src["dispersions"],
           "sweep": [{"name": "lrf_acquire_m", "path": "faults.0.acquire_altitude_m",
                      "values": [float(x) for x in args.altitudes.split(",")]}]}
    spec = spec_from_dict(doc, source="bench_falsify reference")
    res = run_campaign(spec, Path(args.out) / "m2-reference.sqlite", workers=args.workers, progress=False)
    tab = res.table
    for x in sorted(set(tab["lrf_acquire_m"])):
        sub = tab[tab["lrf_acquire_m"] == x]
        k, n = int((sub["outcome"] == "landed").sum()), len(sub)
        lo, hi = wilson(k, n)
        print(f"first fix at {x:.0f} m: {k}/{n} landed = {k / n:.2f} [{lo:.2f}, {hi:.2f}]")


def cmd_replay(args) -> None:
    """Falsify the M2 gate-fix spec, write the case, fly the file again, compare the robustness."""
    from harness.falsify import check_case, falsify

    spec = DATA / "m2_gate_fix_late_lrf.toml"
    out = Path(args.out)
    r = falsify(spec, out / "replay.sqlite", executor=_executor(args.workers), progress=False,
                out=out / "m2-falsified.toml")
    print(r.summary())
    res, rob = check_case(spec, r.scenario_file)
    for (name, value, t_worst, unit, _f), again in zip(r.falsified.robustness, rob):
        same = "identical" if value == again.value and t_worst == again.t_worst_s else "DIFFERENT"
        print(f"{name}: when found {value!r} {unit} at t={t_worst}; flown again {again.value!r} at "
              f"t={again.t_worst_s}: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("falsify", "boundary", "reference", "replay", "table"))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1, help="falsify: seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    ap.add_argument("--runs", type=int, default=60, help="reference: dispersed descents per altitude")
    ap.add_argument("--altitudes", default="740,770,800,830,860")
    ap.add_argument("--out", default="bench-falsify")
    args = ap.parse_args()
    {"falsify": cmd_falsify, "boundary": cmd_boundary, "reference": cmd_reference, "replay": cmd_replay,
     "table": lambda a: print(table(Path(a.out)))}[args.what](args)


if __name__ == "__main__":
    main()
