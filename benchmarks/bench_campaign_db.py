"""A 100,000-run campaign database: how long it takes to plan, resume and report (issue 15).

    python benchmarks/bench_campaign_db.py [--runs 100000] [--failed 0.48] [--pending 0.1]

Flying 100,000 descents does not fit a benchmark, so the database is synthetic: the M2 campaign
spec (harness/data/campaigns/m2_lrf_acquisition.toml) with ``runs_per_point`` raised to reach
``--runs``, planned and stored by the real code (spec, plan, Store.init_campaign), then filled
with results of the real schema in one transaction (Store.record_many): outcome, touchdown
numbers and metrics drawn per run, a robustness row per requirement, a packed trajectory for
landed runs and packed telemetry of a synthetic 50 Hz descent for failed runs (as
worker.fly_one stores them, so the file has the size of a real one). ``--pending`` of the runs
are left unflown, to resume.

Printed, in seconds: plan (plan + write the plan into a new database), fill (synthetic results),
resume (what ``fsil campaign`` does before the first run flies again: check the file, re-plan,
compare, list pending, claim), one claim + record cycle per run on the full database, results
(the numpy table), summary (text), report (the HTML report with every figure); and bytes per run.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

M2 = Path(__file__).resolve().parent.parent / "harness" / "data" / "campaigns" / "m2_lrf_acquisition.toml"
REQUIREMENTS = ("touchdown_envelope",)


def synthetic_spec(n_runs: int, requirements=REQUIREMENTS):
    """The M2 campaign spec with enough runs per grid point for ``n_runs`` (45 grid points)."""
    from harness.campaign import load_spec

    text = M2.read_text()
    per = max(1, n_runs // 45)  # 100,000 -> 99,990 runs (a campaign holds at most 100,000)
    text = text.replace("runs_per_point = 23", f"runs_per_point = {per}")
    if requirements:
        text = text.replace('keep_telemetry = "failed"',
                            f'keep_telemetry = "failed"\nrequirements = {list(requirements)!r}'.replace("'", '"'))
    return load_spec(f"synthetic-{n_runs}.toml", text=text)


def _descent(rng, t_end: float, hz: float = 50.0) -> dict:
    """A synthetic descent's telemetry (runner.COLUMNS, float64) with smooth signals and sensor noise."""
    from harness.runner import COLUMNS

    t = np.arange(0.0, t_end, 1.0 / hz)
    alt = np.maximum(0.0, 3000.0 * (1 - t / t_end) ** 1.6 + rng.normal(0, 1e-5, t.size).cumsum())
    cols = {"t_s": t, "altitude_m": alt, "v_up_mps": np.gradient(alt, t), "truth_alt_site_m": alt}
    for i, c in enumerate(COLUMNS):  # as compressible as real telemetry: ~15 kB packed for 60 s
        if c not in cols:
            cols[c] = (np.sin(t / (7.0 + i)) * 100.0 + (rng.normal(0, 1e-4, t.size).cumsum() if i % 4 == 1 else 0)) \
                if i % 3 else np.round(t / t_end * 4)
    return {c: cols[c] for c in COLUMNS}


def synthetic_db(path: str | Path, n_runs: int = 100_000, *, failed: float = 0.48, pending: float = 0.0,
                 seed: int = 0, requirements=REQUIREMENTS) -> tuple[float, float]:
    """Plan and fill a campaign database at ``path`` (which must not exist); returns the seconds
    spent planning and filling. ``failed``: share of flown runs that crash (their telemetry is
    kept); ``pending``: share of runs (the last ones) left unflown."""
    from harness.campaign.sampling import plan
    from harness.campaign.store import Store
    from harness.campaign.worker import decimate, pack_columns, telemetry_digest

    spec = synthetic_spec(n_runs, requirements)
    t0 = time.perf_counter()
    with Store(path) as st:
        st.init_campaign(spec, plan(spec))
        t_plan = time.perf_counter() - t0
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        n = spec.n_runs
        flown = n - int(round(pending * n))
        crashed = rng.random(n) < failed
        # a few descents packed as fly_one packs them, shared by many rows (packing 50,000 would
        # take minutes and measure the codec, not the database)
        # (crashes end after 40-55 s, as in M2: ~17 kB packed; landings after 120-160 s)
        shapes = [_descent(rng, float(te)) for te in (*rng.uniform(40.0, 55.0, 6), *rng.uniform(120.0, 160.0, 6))]
        tel = [(pack_columns(tm), telemetry_digest(tm)) for tm in shapes[:6]]
        traj = [pack_columns(decimate(tm), float_dtype="<f2") for tm in shapes[6:]]
        vv = np.where(crashed, rng.uniform(8.0, 60.0, n), rng.gamma(4.0, 0.35, n))
        recs = []
        for i in range(flown):
            bad = bool(crashed[i])
            k = i % 6 + (0 if bad else 6)
            recs.append({
                "run_id": i, "status": "done", "outcome": "crashed" if bad else "landed",
                "v_vertical": float(vv[i]), "v_horizontal": float(rng.uniform(0, 1.5)), "tilt_deg": float(rng.uniform(0, 4)),
                "propellant_kg": float(rng.uniform(20, 140)), "position_error_m": float(rng.uniform(0, 30)),
                "touchdown_t_s": float(shapes[k]["t_s"][-1]), "first_lrf_alt_m": float(rng.uniform(50, 3000)),
                "first_lrf_t_s": float(rng.uniform(1, 60)), "pnr_t_s": float(rng.uniform(1, 60)) if bad else math.nan,
                "pnr_alt_m": float(rng.uniform(100, 900)) if bad else math.nan,
                "max_est_error_m": float(rng.uniform(0, 1500)), "lrf_rejected": int(rng.integers(0, 40)),
                "sim_time_s": float(shapes[k]["t_s"][-1]), "wall_s": float(rng.uniform(0.05, 0.6)),
                "failure_mode": "point of no return before first LRF fix" if bad else "",
                "verdict": ("CRASHED: touchdown at %.1f m/s vertical (limit 3.0 m/s); point of no return at "
                            "%.0f m before the first valid LRF range" % (vv[i], rng.uniform(100, 900))) if bad
                else "LANDED: touchdown at %.2f m/s vertical, within the envelope" % vv[i],
                "error": "", "worker": f"bench:{1000 + i % 2}", "telemetry_sha256": tel[k][1] if bad else "%064x" % i,
                "robustness": [(r, float(3.0 - vv[i]), float(shapes[k]["t_s"][-1])) for r in spec.requirements],
                **({"telemetry": tel[k][0]} if bad else {"traj": traj[k - 6]}),
            })
        st.record_many(recs)
        return t_plan, time.perf_counter() - t0


def resume_s(path: Path, n_runs: int, requirements=REQUIREMENTS) -> tuple[float, int]:
    """What ``run_campaign`` does before it flies again on an existing database."""
    from harness.campaign.sampling import plan
    from harness.campaign.store import Store

    t0 = time.perf_counter()
    spec = synthetic_spec(n_runs, requirements)
    with Store(path, stale_s=600.0) as st:
        assert st.init_campaign(spec, plan(spec))
        todo = st.pending()
        st.claim(4)
        st.release()
    return time.perf_counter() - t0, len(todo)


def per_run_db_ms(path: Path, k: int = 200) -> float:
    """Claim + record (one transaction each) of ``k`` runs on the full database, ms per run."""
    from harness.campaign.store import Store

    with Store(path) as st:
        t0 = time.perf_counter()
        done = 0
        while done < k:
            got = st.claim(4)
            if not got:
                break
            st.record_many([{"run_id": g["run_id"], "status": "done", "outcome": "landed", "v_vertical": 1.0,
                             "traj": b"x" * 1200, "telemetry_sha256": "0" * 64} for g in got])
            done += len(got)
        return 1000.0 * (time.perf_counter() - t0) / max(done, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--failed", type=float, default=0.48, help="share of flown runs that fail (M2: 493 of 1,035)")
    ap.add_argument("--pending", type=float, default=0.1, help="share of runs left to fly (resume)")
    ap.add_argument("--dir", type=Path, default=None, help="where the database goes (default: a temporary folder)")
    a = ap.parse_args()
    from harness.campaign import results, write_report
    from harness.campaign.core import load_db, summary_text

    tmp = a.dir or Path(tempfile.mkdtemp(prefix="bench-campaign-db-"))
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / f"synthetic-{a.runs}.sqlite"
    for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        p.unlink(missing_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f}; database {db}")
    t_plan, t_fill = synthetic_db(db, a.runs, failed=a.failed, pending=a.pending)
    n = len(results(db))
    print(f"plan      {t_plan:7.2f} s  ({n} runs: plan + write the plan into a new database)")
    print(f"fill      {t_fill:7.2f} s  (synthetic results, one transaction; not a campaign cost)")
    t, todo = resume_s(db, a.runs)
    print(f"resume    {t:7.2f} s  (check, re-plan, compare, list {todo} pending, claim)")
    print(f"per run   {per_run_db_ms(db):7.2f} ms (claim + record on the full database)")
    t0 = time.perf_counter()
    spec, tab, axes = load_db(db)
    t_tab = time.perf_counter() - t0
    print(f"results   {t_tab:7.2f} s  (the numpy table of {len(tab)} runs)")
    t0 = time.perf_counter()
    summary_text(tab, axes)
    print(f"summary   {time.perf_counter() - t0:7.2f} s  (the text summary)")
    t0 = time.perf_counter()
    out = write_report(db, tmp / "report.html")
    print(f"report    {time.perf_counter() - t0:7.2f} s  (HTML report, {out.stat().st_size // 1024} KB)")
    size = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    print(f"database  {size / 1e6:7.1f} MB = {size / n / 1e3:.1f} KB per run ({a.failed:.0%} of flown runs failed, "
          f"telemetry kept)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
