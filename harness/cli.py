"""The ``fsil`` command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import FsilError


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


def _scenario_by_name(name: str):
    from harness import scenario as sc

    builtins = {"terminal-nominal": sc.terminal_descent, "terminal-lrf-latency": sc.terminal_descent_lrf_latency,
                "m2-late-lrf": sc.m2_late_lrf}
    if name in builtins:
        return builtins[name]()
    from harness.scenario_files import library_names, load_scenario   # library name or TOML path
    try:
        return load_scenario(name)
    except FsilError as exc:
        if name.endswith(".toml") or ":" in name or name in library_names():
            raise
        raise FsilError(f"unknown scenario {name!r}; built in: {', '.join(builtins)}; library: "
                        f"{', '.join(library_names())} (NAME:VARIANT selects a variant); or a TOML path") from exc


def cmd_demo(args) -> int:
    from harness.plot import plot_descents
    from harness.runner import fly
    from harness.rigs import open_rig
    from harness.scenario import FIXED, m2_late_lrf, terminal_descent

    out = Path(args.out)
    runs = [terminal_descent(), m2_late_lrf(), m2_late_lrf(name="m2-late-lrf-fixed", flight_params=FIXED)]
    results = []
    for sc in runs:
        with open_rig(args.rig) as rig:
            res = fly(sc, rig.transport, rig=rig.name, artifacts=out / sc.name)
        results.append(res)
        print(res.verdict(), end="\n\n")
    print(summary_table(results))
    png = plot_descents(results, out / "demo.png", title="fsil demo: nominal terminal descent vs ispace M2 late LRF")
    print(f"\nplot: {png}\nartefacts (telemetry CSV/npz, link logs, summaries): {out}/")
    return 0 if results[0].landed and not results[1].landed else 1


def cmd_run(args) -> int:
    from harness.plot import plot_descents
    from harness.rigs import open_rig
    from harness.runner import fly

    sc = _scenario_by_name(args.scenario)
    if args.seed is not None:
        sc = sc.dispersed(args.seed) if getattr(args, "disperse", False) else sc.with_(seed=args.seed)
    out = Path(args.out) / sc.name
    with open_rig(args.rig) as rig:
        res = fly(sc, rig.transport, rig=rig.name, artifacts=out)
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


def cmd_rigs(args) -> int:
    from harness.rigs import available_rigs, load_rig

    rigs = available_rigs()
    if args.rig:
        rigs = {n: p for n, p in rigs.items() if n in args.rig} or {r: r for r in args.rig}
    bad = 0
    for name, path in sorted(rigs.items()):
        try:
            spec = load_rig(path)
            missing = spec.requirements()
        except FsilError as exc:
            print(f"{name:10s} BROKEN   {exc}")
            bad += 1
            continue
        state = "ready" if not missing else "MISSING"
        print(f"{name:10s} {state:8s} {spec.kind:9s} {spec.description}  [{path}]")
        for m in missing:
            print(f"{'':20s}- {m}")
    return 1 if bad else 0


def cmd_replay(args) -> int:
    from harness.link import replay_link_log

    frames = replay_link_log(args.log)
    for direction, fs in frames.items():
        print(f"{direction}: {len(fs)} frames")
        for f in fs[: args.head]:
            print(f"  seq {f.seq:5d} t={f.t_us / 1e6:9.3f} s {type(f.msg).__name__}: {f.msg}")
    return 0


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
    rg = sub.add_parser("rigs", help="list the rigs and check each one's requirements")
    rg.add_argument("rig", nargs="*", help="only these rigs (names or paths)")
    rg.set_defaults(func=cmd_rigs)
    rp = sub.add_parser("replay", help="decode a raw link log")
    rp.add_argument("log")
    rp.add_argument("--head", type=int, default=10)
    rp.set_defaults(func=cmd_replay)
    from harness.campaign.cli import add_parser as add_campaign; add_campaign(sub)  # issue 7: fsil campaign
    from harness.golden import add_parser as add_golden; add_golden(sub)  # issue 14: fsil golden
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except FsilError as exc:
        print(f"fsil: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
