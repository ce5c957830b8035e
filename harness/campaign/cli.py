"""``fsil campaign``: run a spec, fly one run again, write the HTML report.

    fsil campaign SPEC.toml [--db PATH] [--workers N | --scheduler tcp://HOST:8786] [--retry-errors]
                            [--report report.html] [--no-progress] [--allow-import MODULE ...]
    fsil campaign rerun DB RUN_ID [--out DIR] [--allow-import MODULE ...]
    fsil campaign report DB [--out report.html] [--allow-import MODULE ...]

A scenario given as ``module:function`` is Python code: it is imported only when its module is
named with ``--allow-import`` (a spec file or a database alone never runs code). Several
``fsil campaign`` processes may work on one --db at once: they share its runs.

Exit codes: 0 all pass criteria met; 1 a criterion failed (named on stderr), or a rerun did not
reproduce; 2 a bad spec, database or argument.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

SUBCOMMANDS = ("rerun", "report")


def add_parser(sub) -> None:
    """Register ``fsil campaign`` on the main parser's subparsers."""
    p = sub.add_parser("campaign", help="Monte Carlo / sweep campaigns: run a spec, rerun one run, report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    p.add_argument("-h", "--help", action="store_true", dest="campaign_help")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_campaign)


def _run_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fsil campaign", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", help="campaign spec (TOML), e.g. harness/data/campaigns/m2_lrf_acquisition.toml")
    ap.add_argument("--db", help="results database (SQLite); default fsil-campaigns/NAME.sqlite")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, help="local worker processes (default: the usable CPU cores)")
    g.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://HOST:8786")
    ap.add_argument("--retry-errors", action="store_true", help="fly runs recorded as errors again")
    ap.add_argument("--report", help="also write the HTML report to this file")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    _allow_import_option(ap)
    return ap


def _allow_import_option(ap) -> None:
    ap.add_argument("--allow-import", action="append", default=[], metavar="MODULE",
                    help="allow a module:function scenario from MODULE (or a module inside the package MODULE) "
                         "to be imported and run; repeatable. Without it, code named in a spec or database is "
                         "refused")


def cmd_campaign(args) -> int:
    argv = list(args.argv)
    if getattr(args, "campaign_help", False):
        argv = ["-h", *argv] if not argv or argv[0] not in SUBCOMMANDS else [argv[0], "-h", *argv[1:]]
    if argv and argv[0] == "rerun":
        ap = argparse.ArgumentParser(prog="fsil campaign rerun",
                                     description="fly one run of a campaign again, alone; compare; plot")
        ap.add_argument("db")
        ap.add_argument("run_id", type=int)
        ap.add_argument("--out", help="folder for telemetry, link log, summary and plot")
        _allow_import_option(ap)
        return cmd_rerun(ap.parse_args(argv[1:]))
    if argv and argv[0] == "report":
        ap = argparse.ArgumentParser(prog="fsil campaign report", description="write the HTML report of a campaign")
        ap.add_argument("db")
        ap.add_argument("--out", help="HTML file (default: next to the database, NAME.html)")
        ap.add_argument("--worst", type=int, default=6, help="how many worst runs to plot")
        _allow_import_option(ap)
        return cmd_report(ap.parse_args(argv[1:]))
    return cmd_run(_run_parser().parse_args(argv))


def cmd_run(a) -> int:
    from harness.campaign.core import run_campaign, summary_text

    from harness.validation import check_output_file

    if a.workers is not None and a.workers < 1:
        from harness.errors import ConfigError

        raise ConfigError(f"--workers {a.workers}: allowed: an integer >= 1")
    check_output_file("--report", a.report)  # before flying, not after
    out = run_campaign(a.spec, a.db, workers=a.workers, scheduler=a.scheduler, progress=not a.no_progress,
                       retry_errors=a.retry_errors, allow_import=a.allow_import)
    axes = _axes(out.db)
    print(summary_text(out.table, axes, out.criteria))
    if out.spec.requirements:
        from harness.campaign.core import robustness_text
        from harness.campaign.store import Store

        with Store(out.db, create=False) as st:
            text = robustness_text(st.robustness())
        if text:
            print("\n" + text)
    print(f"\nresults: {out.db}  ({out.flown} runs flown now in {out.wall_s:.1f} s"
          + (f", {60 * out.flown / out.wall_s:.0f} runs/min" if out.flown and out.wall_s > 0 else "") + ")")
    if a.report:
        from harness.campaign.report import write_report
        from harness.errors import ConfigError

        try:
            print(f"report: {write_report(out.db, a.report, allow_import=a.allow_import)}")
        except OSError as exc:  # the campaign's results are in the database: say so, and how to get the report
            raise ConfigError(f"--report {a.report}: cannot write the report ({exc.strerror or exc}); the results "
                              f"are kept in {out.db}: fsil campaign report {out.db} --out FILE") from None
    failed = [c for c in out.criteria if not c.passed]
    if failed:
        for c in failed:
            print(f"fsil campaign: pass criterion not met: {c.criterion.describe()}: {c.detail}", file=sys.stderr)
        return 1
    return 0


def _axes(db):
    from harness.campaign.store import Store

    with Store(db, create=False) as s:
        return s.campaign()["axes"]


def cmd_rerun(a) -> int:
    from harness.campaign.core import rerun

    r = rerun(a.db, a.run_id, a.out, allow_import=a.allow_import)
    print(r.result.verdict())
    print()
    if r.reproduced:
        what = "outcome, touchdown numbers" + (" and full telemetry" if r.telemetry_compared else "")
        print(f"run {r.run_id} reproduced exactly ({what} identical to the campaign's record)")
    else:
        print(f"run {r.run_id} did NOT reproduce the campaign's record:")
        for d in r.differences:
            print(f"  {d}")
    print(f"plot: {r.plot}\nartefacts: {r.folder}/")
    return 0 if r.reproduced else 1


def cmd_report(a) -> int:
    from harness.campaign.report import write_report
    from harness.validation import check_option

    check_option("--worst", a.worst, 0)
    out = a.out or str(Path(a.db).with_suffix(".html"))
    print(f"report: {write_report(a.db, out, worst=a.worst, allow_import=a.allow_import)}")
    return 0
