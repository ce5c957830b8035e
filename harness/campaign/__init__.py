"""Fault-injection campaigns: Monte Carlo dispersions and grid sweeps of descents, on local cores
or a Dask cluster, results in SQLite, an HTML report, pass criteria for CI (docs/campaigns.md).

Python API::

    from harness.campaign import load_spec, run_campaign, results, rerun, write_report

    out = run_campaign("harness/data/campaigns/m2_lrf_acquisition.toml", "m2.sqlite", workers=2)
    out.passed, [c.line() for c in out.criteria]
    tab = results("m2.sqlite")          # numpy structured array, one row per run
    tab[tab["outcome"] != "landed"][["run_id", "lrf_acquire_m", "failure_mode"]]
    r = rerun("m2.sqlite", 17)          # fly run 17 again alone; r.reproduced, r.plot
    write_report("m2.sqlite", "m2.html")
"""
from harness.campaign.analysis import wilson
from harness.campaign.core import (CampaignOutcome, Rerun, load_db, rerun, results, run_campaign, summary_text,
                                   thresholds)
from harness.campaign.sampling import plan
from harness.campaign.spec import CampaignSpec, apply_overrides, load_spec, resolve_scenario


def write_report(db, out=None, worst: int = 6, *, allow_import=()):
    """Write the self-contained HTML report of a campaign database; returns its path."""
    from harness.campaign.report import write_report as _w

    return _w(db, out, worst=worst, allow_import=allow_import)


__all__ = ["CampaignOutcome", "CampaignSpec", "Rerun", "apply_overrides", "load_db", "load_spec", "plan", "rerun",
           "resolve_scenario", "results", "run_campaign", "summary_text", "thresholds", "wilson", "write_report"]
