"""Boundary search: where along one parameter does the success probability cross a level?

Each descent flies at a value ``x`` of the boundary parameter with the spec's ``[dispersions]``
drawn afresh (and its own scenario seed); it succeeds when every requirement of the spec holds
(robustness >= 0). The success probability is modelled as a logistic curve in ``x``,
``P(x) = 1 / (1 + exp(-(a + b x)))``, fitted by maximum likelihood. The crossing
``x* = (logit(level) - a) / b`` gets a **profile-likelihood** confidence interval (95 %: the
``x*`` whose best fit is within 1.92 log-likelihood units of the overall best), which stays
honest when the data are few or separate perfectly (no Wald approximation).

Sampling is adaptive: ``initial`` descents evenly spaced over [low, high], then batches drawn
from the normalised profile likelihood of ``x*`` (Thompson-style: where the crossing may still
be), until the interval's half-width is within ``tolerance`` (and at least ``min_descents`` flew:
the interval is asymptotic, and on a couple of dozen descents it can be confidently wrong) or
the budget is spent. A grid
spends most of its descents far from the crossing; this spends them where the answer is
decided.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.falsify.spec import FalsifySpec, load_falsify_spec
from harness.falsify.store import FalsifyStore
from harness.safetext import inside

_CHI2_95_HALF = 1.920729410347062   # chi2(1).ppf(0.95) / 2
_GRID = 121                          # candidate crossings per pass (a coarse pass, then a fine one)


@dataclass
class BoundaryOutcome:
    spec: FalsifySpec
    db: Path
    key: str
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))        # boundary parameter per descent
    success: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    errors: int = 0
    crossing: float = math.nan
    interval: tuple[float, float] = (math.nan, math.nan)
    converged: bool = False
    flown: int = 0
    wall_s: float = 0.0

    @property
    def descents(self) -> int:
        return int(self.x.size)

    @property
    def half_width(self) -> float:
        return (self.interval[1] - self.interval[0]) / 2.0

    def summary(self) -> str:
        b = self.spec.boundary
        lo, hi = self.interval
        edge = ""
        if lo <= b.low + 1e-9 * (b.high - b.low) or hi >= b.high - 1e-9 * (b.high - b.low):
            edge = " (the interval reaches the end of the search range: widen low/high)"
        head = (f"{b.parameter}: success probability crosses {b.level:.0%} at {self.crossing:.1f} "
                f"(95 % CI {lo:.1f} .. {hi:.1f}, +-{self.half_width:.1f}){edge}")
        verdict = (f"located within +-{b.tolerance:g} after {self.descents} descents" if self.converged else
                   f"NOT located within +-{b.tolerance:g}: budget of {b.budget} descents spent")
        ok = int(self.success.sum())
        return (f"{head}\n  {verdict}; {ok} of {self.descents} descents met {', '.join(self.spec.requirements)}"
                + (f"; {self.errors} harness errors (not counted)" if self.errors else ""))


def _nll(a, b, z, y):
    eta = a + b * z
    # -log-likelihood of Bernoulli(sigmoid(eta)), numerically stable
    return float(np.sum(np.logaddexp(0.0, eta) - y * eta))


def profile(z: np.ndarray, y: np.ndarray, level: float, grid: np.ndarray, slope_max: float = 400.0):
    """Profile negative log-likelihood of the crossing at each ``grid`` value (z in [0, 1]):
    for each candidate c, the best slope b (either sign, |b| <= ``slope_max`` per unit of z, on a
    geometric grid 19 % apart: the
    profile is flat in b near its best, so the grid costs little accuracy) with a = logit(level) - b c."""
    lg = math.log(level / (1.0 - level))
    mags = np.geomspace(1e-2, slope_max, 60)
    best = np.full(grid.size, _nll(lg, 0.0, z, y))       # b = 0: the constant fit
    dz = z[None, :] - grid[:, None]                      # (candidates, descents)
    for b in np.concatenate([mags, -mags]):
        eta = lg + b * dz
        nll = np.sum(np.logaddexp(0.0, eta) - y[None, :] * eta, axis=1)
        np.minimum(best, nll, out=best)
    return best


def fit_crossing(x, y, low: float, high: float, level: float = 0.5):
    """``(crossing, (lo, hi))``: maximum-likelihood crossing of ``level`` and its 95 %
    profile-likelihood interval, for outcomes ``y`` (1 success) at ``x`` within [low, high]."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    z = (x - low) / (high - low)
    coarse = np.linspace(0.0, 1.0, _GRID)
    nll_c = profile(z, y, level, coarse)
    lo_c, hi_c = _interval(coarse, nll_c)
    step = coarse[1] - coarse[0]
    fine = np.linspace(max(0.0, lo_c - 2 * step), min(1.0, hi_c + 2 * step), _GRID)
    nll_f = profile(z, y, level, fine)
    grid = np.concatenate([coarse, fine])
    nll = np.concatenate([nll_c, nll_f])
    order = np.argsort(grid, kind="stable")
    grid, nll = grid[order], nll[order]
    i = int(np.argmin(nll))
    lo, hi = _interval(grid, nll)
    to_x = lambda g: low + g * (high - low)   # noqa: E731
    return to_x(grid[i]), (to_x(lo), to_x(hi)), (grid, nll)


def _interval(grid, nll):
    """The connected run of candidates around the best one within the 95 % likelihood drop."""
    i = int(np.argmin(nll))
    ok = nll <= nll[i] + _CHI2_95_HALF
    lo = hi = i
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi < grid.size - 1 and ok[hi + 1]:
        hi += 1
    return grid[lo], grid[hi]


def locate_boundary(spec: FalsifySpec | str | Path, db: str | Path | None = None, *, seed: int | None = None,
                    budget: int | None = None, workers: int | None = None, scheduler: str | None = None,
                    executor=None, progress: bool = True, stream=None) -> BoundaryOutcome:
    """Locate the crossing of the spec's ``[boundary]`` (see the module docstring). Resumable:
    the same call replays the recorded descents (key ``boundary:SEED``) and flies the rest."""
    import dataclasses

    from harness.campaign.executors import make_executor
    from harness.falsify.worker import judge_one

    stream = stream or sys.stderr
    if not isinstance(spec, FalsifySpec):
        spec = load_falsify_spec(spec)
    if spec.boundary is None:
        raise ConfigError(f"{spec.source}: no [boundary] table (keys: parameter, low, high, level, budget, "
                          f"tolerance, batch, initial)")
    if seed is not None:
        spec = dataclasses.replace(spec, seed=int(seed))
    b = spec.boundary
    if budget is not None:
        b = b.model_copy(update={"budget": int(budget)})
        spec = dataclasses.replace(spec, boundary=b)
    db = Path(db) if db else inside(Path("fsil-falsify"), f"{spec.name}-boundary.sqlite")
    from harness.campaign.core import workers_for_rig

    workers = workers_for_rig(spec, workers, scheduler)
    key = f"boundary:{spec.seed}"
    t0 = time.perf_counter()
    out = BoundaryOutcome(spec, db, key)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(5,)))
    xs, ys = [], []
    with FalsifyStore(db) as store:
        have = store.open_search(key, spec, "boundary")
        ex = executor or make_executor(workers=workers, scheduler=scheduler, rig=spec.rig)
        print(f"boundary {spec.name}: where P({', '.join(spec.requirements)}) crosses {b.level:.0%} along "
              f"{b.parameter} in [{b.low:g}, {b.high:g}] to +-{b.tolerance:g}; at most {b.budget} descents, "
              f"{have} already in {db}; flying on {ex.describe()}", file=stream)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=b.budget, unit="descent", file=stream, dynamic_ncols=True, desc="boundary")

        def fly(points: list[float]) -> None:
            tasks, rows = [], []
            for x in points:
                idx = len(xs) + len(rows)
                ss = np.random.SeedSequence(spec.seed, spawn_key=(4, idx))
                u = ss.generate_state(max(1, len(spec.dispersions)), dtype=np.uint64) / 2.0 ** 64
                params = {b.parameter: float(x)}
                for d, ui in zip(spec.dispersions, u):
                    v = d.ppf(np.array([ui]))[0]
                    params[d.path] = v.item() if hasattr(v, "item") else v
                seed_i = int(np.random.SeedSequence(spec.seed, spawn_key=(0, idx)).generate_state(1)[0])
                uu = [float((x - b.low) / (b.high - b.low))] + [float(v) for v in u[: len(spec.dispersions)]]
                st = store.stored(key, idx)
                if st is not None:
                    if st["u"] != uu:
                        raise ConfigError(f"{db}: cannot resume boundary search {key!r}: descent {idx} was recorded "
                                          f"at {st['u']}, now {uu}; use a new database")
                    rows.append([idx, float(x), st])
                else:
                    rows.append([idx, float(x), None])
                    tasks.append(({"run_id": idx, "scenario": spec.scenario, "overrides": spec.overrides_for(params),
                                   "seed": seed_i, "requirements": list(spec.requirements), "rig": spec.rig,
                                   "origin": f"{spec.source} boundary descent {idx}"}, uu, params))
            if tasks:
                meta = {t["run_id"]: (uu, params, t["seed"]) for t, uu, params in tasks}
                recs = {}
                for rec in ex.run([t for t, _, _ in tasks], spec.run_timeout_s, fn=judge_one):
                    uu, params, s = meta[rec["run_id"]]
                    store.record(key, rec["run_id"], uu, params, s, rec)
                    recs[rec["run_id"]] = rec
                    out.flown += 1
                    if bar is not None:
                        bar.update(1)
                for row in rows:
                    if row[2] is None:
                        r = recs[row[0]]
                        row[2] = {"status": r.get("status"), "objective": r.get("objective", math.nan)}
            elif bar is not None:
                bar.update(len(rows))
            for idx, x, st in rows:
                if st["status"] == "done" and not math.isnan(st["objective"]):
                    xs.append(x)
                    ys.append(1.0 if st["objective"] >= 0.0 else 0.0)
                else:
                    out.errors += 1
                    xs.append(x)
                    ys.append(math.nan)

        try:
            n0 = min(b.initial, b.budget)
            fly(list(np.linspace(b.low, b.high, n0)))
            while True:
                ok = ~np.isnan(ys)
                X, Y = np.asarray(xs)[ok], np.asarray(ys)[ok]
                c, (lo, hi), (grid, nll) = fit_crossing(X, Y, b.low, b.high, b.level)
                out.crossing, out.interval = c, (lo, hi)
                if bar is not None:
                    bar.set_postfix_str(f"crossing {c:.1f} [{lo:.1f}, {hi:.1f}]", refresh=False)
                if (hi - lo) / 2.0 <= b.tolerance and len(xs) >= min(b.min_descents, b.budget):
                    out.converged = True
                    break
                left = b.budget - len(xs)
                if left <= 0:
                    break
                w = np.exp(-(nll - nll.min()))
                w /= w.sum()
                pick = rng.choice(grid.size, size=min(b.batch, left), p=w)
                fly([float(b.low + grid[k] * (b.high - b.low)) for k in pick])
        except BaseException:
            if executor is None:
                ex.close(cancel=True)
            if bar is not None:
                bar.close()
            raise
        if executor is None:
            ex.close()
        if bar is not None:
            bar.close()
        ok = ~np.isnan(ys)
        out.x, out.success = np.asarray(xs)[ok], np.asarray(ys)[ok] > 0.5
        out.wall_s = time.perf_counter() - t0
        store.finish(key, {"crossing": out.crossing, "interval": list(out.interval), "converged": out.converged,
                           "descents": len(xs), "level": b.level, "parameter": b.parameter})
    return out
