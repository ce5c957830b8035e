"""Running a campaign: plan, store, fly what is not yet flown, summarise, judge."""
from __future__ import annotations

import itertools
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.campaign import analysis
from harness.campaign.sampling import plan
from harness.campaign.spec import CampaignSpec, load_spec
from harness.errors import ConfigError
from harness.campaign.store import Store, param_field
from harness.safetext import inside, printable, safe_component


def default_db(spec: CampaignSpec) -> Path:
    """fsil-campaigns/NAME.sqlite; the name comes from the spec file, so it is made a safe file
    name that stays inside fsil-campaigns (``../../x`` -> ``_.._x.sqlite``)."""
    return inside(Path("fsil-campaigns"), f"{spec.name}.sqlite")


@dataclass
class CampaignOutcome:
    spec: CampaignSpec
    db: Path
    table: np.ndarray
    criteria: list = field(default_factory=list)
    flown: int = 0
    resumed: bool = False
    wall_s: float = 0.0
    executor: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def complete(self) -> bool:
        return bool((self.table["status"] != "pending").all())


def _task(spec: CampaignSpec, t: dict, campaign_key: str | None = None) -> dict:
    return {"run_id": t["run_id"], "scenario": spec.scenario, "overrides": t["overrides"], "seed": t["seed"],
            "keep_telemetry": spec.keep_telemetry, "origin": f"{spec.source} run {t['run_id']}",
            "allow_import": tuple(spec.allow_import), "requirements": tuple(spec.requirements),
            "campaign_key": campaign_key, "rig": spec.rig}


POLL_S = 0.5  # while other campaign processes fly the last runs of a shared database
CLAIM_BATCH = 4  # runs claimed per write transaction
COMMIT_S = 0.25  # results are committed in batches at most this old: a kill -9 loses them and the runs in the air
RENEW_S = 5.0  # claims are renewed this often (a claim is stale after store.Store.stale_s >= 600 s)


def workers_for_rig(spec: CampaignSpec, workers: int | None, scheduler: str | None) -> int | None:
    """A rig over one physical board (kind usb-mcu) flies one run at a time, on this machine."""
    from harness.campaign.worker import rig_spec

    if spec.rig == "loopback" or rig_spec(spec.rig).kind != "usb-mcu":
        return workers
    if scheduler or (workers or 1) != 1:
        raise ConfigError(f"{spec.source}: [campaign] rig = {spec.rig_as_written!r} is one board on this machine: "
                          f"its runs fly one at a time here (--workers 1, no --scheduler), not "
                          + (f"on the Dask cluster {scheduler}" if scheduler else f"on {workers} workers"))
    return 1


class _RunsLeft:
    """The runs handed to an executor, claimed as it takes them; ``operator.length_hint`` gives how
    many are still to come (an estimate when other campaign processes share the database), so an
    executor can make its last tasks short (executors.chunk_runs)."""

    def __init__(self, runs, left: list):
        self._runs, self._left = runs, left

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        run = next(self._runs)
        self._left[0] = max(0, self._left[0] - 1)
        return run

    def __length_hint__(self) -> int:
        return self._left[0]


def run_campaign(spec: CampaignSpec | str | Path, db: str | Path | None = None, *, workers: int | None = None,
                 scheduler: str | None = None, executor=None, progress: bool = True, retry_errors: bool = False,
                 stream=None, allow_import=()) -> CampaignOutcome:
    """Fly every run of ``spec`` not yet in ``db`` and return the table and the criteria verdicts.

    ``executor``: an object with ``run(tasks, timeout_s)`` and ``close()`` (see executors.py);
    default: a Dask executor for ``scheduler``, else a local pool of ``workers`` processes.
    Interrupting (Ctrl-C, SIGTERM, kill -9) loses only the runs in the air; call again to resume.
    Several campaign processes may run on one ``db`` at once: each run is claimed by one of them
    (store.Store.claim), each flies what it claimed, and each returns when every run is finished.
    ``allow_import``: modules whose ``module:function`` scenarios may be imported (spec.py).
    """
    from harness.campaign.executors import make_executor

    stream = stream or sys.stderr
    if not isinstance(spec, CampaignSpec):
        spec = load_spec(spec, allow_import=allow_import)
    db = Path(db) if db else default_db(spec)
    workers = workers_for_rig(spec, workers, scheduler)
    shown = printable(spec.name, 80)  # the name comes from a file: no terminal escapes
    t0 = time.perf_counter()
    started = time.time()
    flown = 0
    desc = ""
    with Store(db, stale_s=max(600.0, 3 * spec.run_timeout_s)) as store:
        planned = plan(spec)
        resumed = store.init_campaign(spec, planned)
        todo = store.pending(retry_errors=retry_errors)
        done0 = spec.n_runs - len(todo)
        if not todo:
            print(f"campaign {shown}: all {spec.n_runs} runs already in {db}", file=stream)
        ex = None
        bar = None
        tally = Counter()
        waiting_said = False
        # workers resolve the base scenario once per campaign invocation (worker._base_scenario)
        campaign_key = f"{spec.digest}:{os.getpid()}:{time.time_ns()}"

        left = [len(todo)]  # pending runs not yet handed to the executor (others on the database may take some)

        def claimed():
            while True:  # a few at a time: one write transaction per CLAIM_BATCH runs
                got = store.claim(CLAIM_BATCH, errors_before=started if retry_errors else None)
                if not got:
                    return
                for t in got:
                    yield _task(spec, t, campaign_key)

        batch: list[dict] = []
        last_commit = [time.monotonic(), time.monotonic()]  # of results, of the claims' renewal

        def commit(force: bool = False) -> None:
            nonlocal flown
            now = time.monotonic()
            if batch and (force or now - last_commit[0] >= COMMIT_S):
                for rec, kept in zip(batch, store.record_many(batch)):
                    if kept:
                        flown += 1
                        tally[rec.get("outcome", "error")] += 1
                batch.clear()
                last_commit[0] = now
                if bar is not None:
                    bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in sorted(tally.items())), refresh=False)
            if force or now - last_commit[1] >= RENEW_S:
                store.renew()
                last_commit[1] = now

        try:
            while todo:
                tasks = claimed()
                first = next(tasks, None)
                if first is not None:
                    if ex is None:
                        ex = executor or make_executor(workers=workers, scheduler=scheduler, rig=spec.rig)
                        desc = ex.describe()
                        others = store.held_by_others()
                        shared = (f" (sharing the database with {len(others)} other campaign process"
                                  f"{'es' * (len(others) > 1)})") if others else ""
                        print(f"campaign {shown}: {spec.n_runs} runs ({spec.n_points} grid points x "
                              f"{spec.runs_per_point}), {done0} already in {db}, {len(todo)} to fly on {desc}"
                              f"{shared}", file=stream)
                        if progress:
                            from tqdm import tqdm

                            bar = tqdm(total=spec.n_runs, initial=done0, unit="run", file=stream, dynamic_ncols=True,
                                       smoothing=0.05, desc=printable(spec.name, 40))
                    for rec in ex.run(_RunsLeft(itertools.chain([first], tasks), left), spec.run_timeout_s):
                        batch.append(rec)
                        commit()
                        if bar is not None:
                            bar.update(1)
                    commit(force=True)
                    continue
                others = store.held_by_others()
                if not others:
                    break
                if not waiting_said:
                    print(f"campaign {shown}: waiting for {sum(others.values())} runs being flown by other "
                          f"campaign processes on {db} ({', '.join(sorted(others))})", file=stream)
                    waiting_said = True
                time.sleep(POLL_S)
        except BaseException:
            if ex is not None:
                ex.close(cancel=True)
            commit(force=True)  # the results already back are kept
            store.release()
            if bar is not None:
                bar.close()
            print(f"\ncampaign interrupted; finished runs are in {db}: run the same command to resume",
                  file=stream)
            raise
        if ex is not None:
            ex.close()
        if bar is not None:
            bar.close()
        table = store.table()
        axes = store.campaign()["axes"]
        if flown and bool((table["status"] != "pending").all()):
            store.compact()
    crit = analysis.evaluate(spec.criteria, table, axes)
    return CampaignOutcome(spec, db, table, crit, flown, resumed, time.perf_counter() - t0, desc)


def load_db(db: str | Path, *, allow_import=()) -> tuple[CampaignSpec, np.ndarray, list[dict]]:
    """The spec (re-read from the copy stored in the database), the results table and the axes.
    The stored spec is data like any file: its ``module:function`` scenario is imported only for
    a module in ``allow_import``."""
    with Store(db, create=False) as store:
        return load_store(store, allow_import=allow_import)


def load_store(store: Store, *, allow_import=()) -> tuple[CampaignSpec, np.ndarray, list[dict]]:
    """:func:`load_db` on a database already open (one file check for a whole report)."""
    camp = store.campaign()
    if camp is None:
        raise ConfigError(f"{store.path}: no campaign in this database")
    try:
        spec = load_spec(camp["source"] or str(store.path), text=camp["spec_text"], allow_import=allow_import)
    except ConfigError as exc:
        raise ConfigError(f"{store.path}: the campaign spec stored in this database: {exc}") from None
    return spec, store.table(), camp["axes"]


def results(db: str | Path) -> np.ndarray:
    """The results table of a campaign database as a numpy structured array, one row per run.

    Fields: run_id, point_index, one per sweep axis (float for numeric axes, str label otherwise),
    one per dispersed path (float), seed, status (pending|done|error), the metrics of
    ``store.METRIC_COLUMNS`` (NaN when not applicable), lrf_rejected, outcome, failure_mode,
    worker, error (first 200 characters).
    """
    with Store(db, create=False) as store:
        return store.table()


# ------------------------------------------------------------------------------------------
# text summary


def _fmt(v, spec=".2f"):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def summary_text(table: np.ndarray, axes: list[dict], criteria=None) -> str:
    """The summary printed at the end of ``fsil campaign``: per grid point, thresholds, criteria."""
    names = [a["name"] for a in axes]
    head = (*names, "runs", "landed", "success [95% CI]", "v_down p50", "v_down max", "errors", "main failure mode")
    rows = [head]
    for p in np.unique(table["point_index"]):
        sub = table[table["point_index"] == p]
        fin = sub[sub["status"] != "pending"]
        k, n = int(analysis.success(fin).sum()), len(fin)
        lo, hi = analysis.wilson(k, n)
        vv = fin["v_vertical"][np.isfinite(fin["v_vertical"])]
        modes = Counter(m for m in fin["failure_mode"] if m)
        labels = [(_fmt(float(sub[param_field(nm)][0]), "g") if a["numeric"] else str(sub[param_field(nm)][0]))
                  for nm, a in zip(names, axes)]
        rows.append((*labels, f"{n}/{len(sub)}", str(k), f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]" if n else "-",
                     _fmt(float(np.median(vv)) if vv.size else None), _fmt(float(vv.max()) if vv.size else None),
                     str(int((fin["status"] == "error").sum())),
                     f"{modes.most_common(1)[0][0]} ({modes.most_common(1)[0][1]})" if modes else ""))
    w = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(x) for c, x in zip(r, w)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    fin = table[table["status"] != "pending"]
    k = int(analysis.success(fin).sum())
    lines.append("")
    lines.append(f"total: {len(fin)}/{len(table)} runs finished, {k} landed, "
                 + ", ".join(f"{o} {c}" for o, c in Counter(fin["outcome"]).most_common() if o != "landed"))
    lines += threshold_lines(table, axes)
    if criteria:
        lines.append("")
        lines.append("pass criteria:")
        lines += ["  " + c.line() for c in criteria]
    # outcomes, failure modes and axis labels come from the database: a terminal escape in an
    # edited one is shown escaped, never sent to the terminal
    return "\n".join(printable(line, 100_000) for line in lines)


def thresholds(table: np.ndarray, axes: list[dict]) -> list[dict]:
    """For each numeric axis and each combination of the other axes: where success drops."""
    out = []
    for a in axes:
        if not a["numeric"] or len(a["labels"]) < 2:
            continue
        others = [b["name"] for b in axes if b["name"] != a["name"]]
        for key, (xs, k, n, lo, hi) in analysis.rate_by(table, param_field(a["name"]),
                                                         [param_field(o) for o in others]).items():
            out.append({"axis": a["name"], "group": dict(zip(others, key)),
                        "p50": analysis.threshold(xs, k, n, 0.5), "lowest_99": analysis.lowest_passing(xs, k, n, 0.99),
                        "xs": xs, "k": k, "n": n})
    return out


def threshold_text(v) -> str:
    """A threshold for the text and HTML reports (None: never reached; inf: above the whole sweep)."""
    if v is None:
        return "never (lands at every swept value)"
    if v == math.inf:
        return "above the whole sweep (fails at every value)"
    return f"{v:.0f}"


def threshold_lines(table, axes) -> list[str]:
    th = thresholds(table, axes)
    if not th:
        return []
    lines = ["", "where success drops along each numeric axis (50 % crossing; lowest value with >= 99 % landed "
                 "from the top down):"]
    for t in th:
        g = ", ".join(f"{k}={v}" for k, v in t["group"].items())
        low = "none" if t["lowest_99"] is None else f"{t['lowest_99']:.0f}"
        lines.append(f"  {t['axis']} [{g}]: 50 % at {threshold_text(t['p50'])}; >= 99 % down to {low}")
    return lines


def robustness_by_requirement(rows) -> dict[str, dict]:
    """Per requirement (in the order first stored): the run ids, robustness values and instants of
    worst of ``rows`` (Store.robustness), and min / median / how many runs violated it (< 0)."""
    out: dict[str, dict] = {}
    for run_id, req, value, t_worst in rows:
        d = out.setdefault(req, {"run_id": [], "value": [], "t_worst_s": []})
        d["run_id"].append(run_id)
        d["value"].append(value)
        d["t_worst_s"].append(t_worst)
    for d in out.values():
        v = np.asarray(d["value"], dtype=float)
        d["value"] = v
        ok = v[~np.isnan(v)]
        d["min"] = float(ok.min()) if ok.size else math.nan
        d["median"] = float(np.median(ok)) if ok.size else math.nan
        d["violated"] = int((ok < 0).sum())
        d["evaluated"] = int(ok.size)
    return out


def robustness_text(rows) -> str:
    """The per-requirement lines of the campaign summary (empty without requirements)."""
    by = robustness_by_requirement(rows)
    if not by:
        return ""
    lines = ["robustness per requirement (> 0 held, < 0 violated; in the requirement's unit):"]
    for req, d in by.items():
        lines.append(f"  {printable(req, 90)}: min {d['min']:+.4g}, median {d['median']:+.4g}, violated in "
                     f"{d['violated']} of {d['evaluated']} runs"
                     + (f" ({len(d['value']) - d['evaluated']} not evaluable)" if d["evaluated"] < len(d["value"])
                        else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# flying one run again


@dataclass
class Rerun:
    run_id: int
    result: object              # harness.runner.FlightResult
    stored: dict                # the run's row in the database
    differences: list[str]      # empty when the rerun reproduces the stored run exactly
    telemetry_compared: bool
    plot: Path | None = None
    folder: Path | None = None

    @property
    def reproduced(self) -> bool:
        return not self.differences


def rerun(db: str | Path, run_id: int, out: str | Path | None = None, *, allow_import=()) -> Rerun:
    """Fly run ``run_id`` of a campaign again, alone and in this process, from the parameters in
    the database; compare outcome, metrics and (when stored) telemetry; write artefacts and a plot."""
    from harness.campaign.spec import build_scenario
    from harness.campaign.worker import fly_on_rig, metrics, run_robustness, telemetry_digest
    from harness.plot import plot_descents

    with Store(db, create=False) as store:
        camp = store.campaign()
        row = store.run(int(run_id))
        old = store.columns(int(run_id), "telemetry")
        stored_rob = store.robustness(int(run_id))
    sc = build_scenario(camp["scenario"], row["params"], row["seed"], f"{db} run {run_id}", allow_import=allow_import)
    sc = sc.with_(name=safe_component(f"{camp['name']}-run{run_id}"))
    folder = Path(out) if out else inside(Path(db).parent, f"{Path(db).stem}-run{run_id}")
    try:  # the campaign's rig: the same flight code, booted afresh
        rig = load_spec(camp["source"] or str(db), text=camp["spec_text"], allow_import=allow_import).rig
    except ConfigError as exc:
        raise ConfigError(f"{db}: the campaign spec stored in this database: {exc}") from None
    res = fly_on_rig(sc, rig, artifacts=folder)
    diffs = []
    if row["status"] == "pending":
        diffs.append("the run was never flown in the campaign (status pending): nothing to compare")
    elif row["status"] == "error":
        diffs.append(f"in the campaign this run ended in an error: {(row['error'] or '').splitlines()[0]}; "
                     f"now: {res.outcome}")
    else:
        m = metrics(res)
        for k in ("outcome", "failure_mode", "lrf_rejected"):
            if m[k] != row[k]:
                diffs.append(f"{k}: stored {row[k]!r}, now {m[k]!r}")
        for k in ("v_vertical", "v_horizontal", "tilt_deg", "propellant_kg", "position_error_m", "touchdown_t_s",
                  "first_lrf_alt_m", "pnr_t_s", "max_est_error_m", "sim_time_s"):
            a, b = row[k], m[k]
            a = math.nan if a is None else a
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                diffs.append(f"{k}: stored {a!r}, now {b!r}")
        if stored_rob:
            now = {req: (v, t) for req, v, t in run_robustness(res, [r[1] for r in stored_rob])}
            for _, req, v, t in stored_rob:
                nv, nt = now[req]
                nt = math.nan if nt is None else nt
                same = (v == nv or (math.isnan(v) and math.isnan(nv))) and (t == nt or (math.isnan(t) and math.isnan(nt)))
                if not same:
                    diffs.append(f"robustness of {printable(req, 60)}: stored {v!r} at t = {t!r} s, now {nv!r} at "
                                 f"t = {nt!r} s")
    compared = False
    digest = row.get("telemetry_sha256")
    if digest and row["status"] == "done":  # the exact float64 telemetry of the campaign run
        compared = True
        if telemetry_digest(res.telemetry) != digest:
            diffs.append(f"telemetry differs from the campaign run's (SHA-256 {digest[:16]}... stored, "
                         f"{telemetry_digest(res.telemetry)[:16]}... now)")
    if old is not None:  # the kept columns, in the precision they were stored in
        compared = True
        for c, arr in old.items():
            new = res.telemetry.get(c)
            if new is None or new.shape != arr.shape or not np.array_equal(new.astype(arr.dtype), arr, equal_nan=True):
                diffs.append(f"telemetry column {c} differs")
    plot = plot_descents([res], folder / "descent.png",
                         title=f"{camp['name']} run {run_id}: {res.outcome}")
    return Rerun(int(run_id), res, row, diffs, compared, plot, folder)
