"""The ``fsil`` command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import FsilError
from harness.validation import check_option, check_output_file

# A seed given on the command line has the range a scenario or spec file's seed has (an integer
# from 0 to 2^63-1, TOML's 64-bit integers): numpy refuses a negative one with a bare ValueError.
SEED_MAX = 2 ** 63 - 1


def summary_table(results) -> str:
    """A fixed-width table of outcomes and the numbers that decide them."""
    head = ("scenario", "outcome", "v_down", "v_horiz", "tilt", "prop_left", "first LRF", "point of no return",
            "x real time")
    rows = [head, ("", "", "m/s", "m/s", "deg", "kg", "t s @ m", "t s @ m", "")]
    for r in results:
        td = r.touchdown
        fv = r.first_valid_lrf()
        pnr = r.point_of_no_return()
        rows.append((r.scenario.name, r.outcome,
                     f"{td.v_vertical:.2f}" if td else "-", f"{td.v_horizontal:.2f}" if td else "-",
                     f"{td.tilt_deg:.1f}" if td else "-", f"{td.propellant_kg:.1f}" if td else "-",
                     f"{fv['t_s']:.1f} @ {fv['altitude_m']:.0f}" if fv else "never",
                     f"{pnr['t_s']:.1f} @ {pnr['altitude_m']:.0f}" if pnr else "-",
                     f"{r.real_time_factor:.0f}"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(2, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_demo(args) -> int:
    from harness.plot import plot_descents
    from harness.rigs import open_rig
    from harness.safetext import safe_component
    from harness.scenario_files import load_scenario

    out = Path(args.out)
    runs = [load_scenario("nominal-terminal-descent"), load_scenario("ispace-m2", "as_flown"),
            load_scenario("ispace-m2", "fixed")]
    results = []
    for sc in runs:
        with open_rig(args.rig) as rig:
            res = rig.fly(sc, artifacts=out / safe_component(sc.name, what="scenario name"))
        results.append(res)
        print(res.verdict(), end="\n\n")
    print(summary_table(results))
    png = plot_descents(results, out / "demo.png", title="fsil demo: nominal terminal descent vs ispace M2 late LRF")
    print(f"\nplot: {png}\nartefacts (telemetry CSV/npz, link logs, summaries): {out}/")
    return 0 if results[0].landed and not results[1].landed else 1


def cmd_run(args) -> int:
    from harness.plot import plot_descents
    from harness.rigs import open_rig
    from harness.safetext import safe_component
    from harness.scenario_files import scenario_by_name

    check_option("--seed", args.seed, 0, SEED_MAX)
    sc = scenario_by_name(args.scenario)
    if args.seed is not None:
        sc = sc.dispersed(args.seed) if getattr(args, "disperse", False) else sc.with_(seed=args.seed)
    out = Path(args.out) / safe_component(sc.name, what="scenario name")
    with open_rig(args.rig) as rig:
        res = rig.fly(sc, artifacts=out)
    print(res.verdict())
    print()
    print(summary_table([res]))
    print(f"\nplot: {plot_descents([res], out / 'descent.png')}")
    return 0 if res.landed else 1


def cmd_scenarios(args) -> int:
    from harness import scenario_files as sf

    if args.action == "list":
        for name in sf.library_names():
            sc = sf.load_scenario(name)
            vs = sf.variants(name)
            print(f"{name:26s} {sc.description}" + (f"  [variants: {', '.join(vs)}]" if vs else ""))
        return 0
    table, results = sf.historical_table(args.rig, out=Path(args.out))
    print(table)
    ok = all(r.outcome in r.scenario.expect for r in results)
    return 0 if ok else 1


def cmd_conform(args) -> int:
    """The protocol conformance checklist on one rig (docs/conformance.md): 0 all pass, 1 a FAIL."""
    from harness.conform import conform

    check_output_file("--junit-xml", args.junit_xml)
    report = conform(args.rig, cycles=args.cycles, junit_xml=args.junit_xml)
    print(report.table())
    if args.junit_xml:
        print(f"JUnit XML: {args.junit_xml}")
    return 0 if report.passed else 1


def cmd_rigs(args) -> int:
    """List rigs and check each one's requirements. Exit 0 only when every listed rig is ready:
    1 when one is MISSING something here (tool, board, program), 2 when one is BROKEN (bad file)."""
    from harness.rigs import available_rigs, load_rig
    from harness.safetext import printable

    known = available_rigs()
    rigs = {r: known.get(r, r) for r in args.rig} if args.rig else known
    missing_any = broken = False
    for name, path in sorted(rigs.items(), key=lambda kv: str(kv[0])):
        shown = printable(str(name), 60)
        try:
            spec = load_rig(path)
            missing = spec.requirements()
        except FsilError as exc:
            print(f"{shown:10s} BROKEN   {printable(str(exc), 2000)}")
            broken = True
            continue
        state = "ready" if not missing else "MISSING"
        missing_any |= bool(missing)
        print(f"{shown:10s} {state:8s} {spec.kind:9s} {printable(spec.description, 200)}  [{path}]")
        for m in missing:
            print(f"{'':20s}- {printable(m, 2000)}")
    return 2 if broken else 1 if missing_any else 0


def cmd_replay(args) -> int:
    from harness.link import replay_link_log
    from harness.safetext import printable

    check_option("--head", args.head, 0)
    frames = replay_link_log(args.log)  # a hostile or broken log: LinkError naming offset and cause (exit 2)
    for direction, fs in frames.items():
        print(f"{direction}: {len(fs)} frames")
        for f in fs[: args.head]:  # the frames' text (a HELLO name) came from a device: escaped
            print(f"  seq {f.seq:5d} t={f.t_us / 1e6:9.3f} s {type(f.msg).__name__}: {printable(str(f.msg), 400)}")
    return 0


def cmd_falsify(args) -> int:
    """fsil falsify SPEC: search for a violating descent (exit 1 falsified, 0 not within the budget);
    --boundary: locate the success-probability crossing (exit 0 located, 1 not within the budget);
    --check FILE: fly a scenario file and judge the spec's requirements (exit 1 violated)."""
    from harness.falsify import check_case, falsify, load_falsify_spec, locate_boundary

    check_option("--seed", args.seed, 0, SEED_MAX)
    check_option("--budget", args.budget, 1)
    check_option("--workers", args.workers, 1)
    check_output_file("--out", args.out)  # the falsifying scenario file: before the search, not after it
    spec = load_falsify_spec(args.spec)
    if args.check:
        res, rob = check_case(spec, args.check)
        print(res.verdict())
        for r in rob:
            print("  " + r.line())
        return 0 if all(r.holds for r in rob) else 1
    if args.boundary:
        out = locate_boundary(spec, args.db, seed=args.seed, budget=args.budget, workers=args.workers,
                              scheduler=args.scheduler, progress=not args.no_progress)
        print(out.summary())
        return 0 if out.converged else 1
    out = falsify(spec, args.db, optimizer=args.optimizer, seed=args.seed, budget=args.budget, workers=args.workers,
                  scheduler=args.scheduler, progress=not args.no_progress, out=args.out)
    print(out.summary())
    return 1 if out.falsified is not None else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="fsil", description="flight-software-in-the-loop harness for lunar landers")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="fly a nominal descent and the ispace M2 late-LRF case; summary and plot")
    d.add_argument("--rig", default="loopback")
    d.add_argument("--out", default="demo-output")
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("run", help="fly one scenario")
    r.add_argument("scenario")
    r.add_argument("--rig", default="loopback")
    r.add_argument("--seed", type=int)
    r.add_argument("--out", default="fsil-runs")
    r.set_defaults(func=cmd_run)
    r.add_argument("--disperse", action="store_true", help="draw the start state from the scenario's dispersion")
    sc = sub.add_parser("scenarios", help="the scenario library: list, or the as-flown vs fixed table")
    sc.add_argument("action", choices=("list", "table"))
    sc.add_argument("--rig", default="loopback")
    sc.add_argument("--out", default="fsil-runs/scenarios")
    sc.set_defaults(func=cmd_scenarios)
    cf = sub.add_parser("conform", help="protocol conformance checklist against a rig's flight code")
    cf.add_argument("--rig", required=True, help="rig name or rig file (.toml)")
    cf.add_argument("--junit-xml", metavar="FILE", help="also write the checklist as JUnit XML")
    cf.add_argument("--cycles", type=int, default=50, help="lockstep cycles of the latency item (>= 1)")
    cf.set_defaults(func=cmd_conform)
    rg = sub.add_parser("rigs", help="list the rigs and check each one's requirements")
    rg.add_argument("rig", nargs="*", help="only these rigs (names or paths)")
    rg.set_defaults(func=cmd_rigs)
    rp = sub.add_parser("replay", help="decode a raw link log")
    rp.add_argument("log")
    rp.add_argument("--head", type=int, default=10)
    rp.set_defaults(func=cmd_replay)
    from harness.campaign.cli import add_parser as add_campaign; add_campaign(sub)  # issue 7: fsil campaign
    fz = sub.add_parser("falsify", help="search for the descent that breaks a requirement (issue 16); "
                        "exit 1 falsified, 0 not within the budget")
    fz.add_argument("spec", help="falsification spec (TOML), e.g. harness/data/falsify/m2_gate_fix_late_lrf.toml")
    fz.add_argument("--boundary", action="store_true", help="locate where P(success) crosses the [boundary] level")
    fz.add_argument("--check", metavar="SCENARIO.toml", help="fly a scenario file and judge the spec's requirements")
    fz.add_argument("--optimizer", choices=("cma", "de", "dual_annealing", "tpe", "random"))
    fz.add_argument("--seed", type=int, help="search seed (default: the spec's)")
    fz.add_argument("--budget", type=int, help="descents at most (default: the spec's)")
    fz.add_argument("--db", help="results database (default fsil-falsify/NAME.sqlite); the same command resumes")
    fz.add_argument("--out", help="where to write the falsifying scenario file (default next to the database)")
    fz.add_argument("--workers", type=int)
    fz.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:8786")
    fz.add_argument("--no-progress", action="store_true")
    fz.set_defaults(func=cmd_falsify)
    from harness.golden import add_parser as add_golden; add_golden(sub)  # issue 14: fsil golden
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except FsilError as exc:
        print(f"fsil: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.: stop quietly, no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # an output path that cannot be written (a file where a folder goes, no
        # permission, a read-only file system, a full disk): one line naming the path, exit 2
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"fsil: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
