"""Statistics over a campaign's results table: success rates with confidence intervals,
thresholds along a swept axis, pass criteria."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.campaign.spec import Criterion
from harness.campaign.store import param_field

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (95 % by default); (nan, nan) for n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def success(tab: np.ndarray) -> np.ndarray:
    return tab["outcome"] == "landed"


def finished(tab: np.ndarray) -> np.ndarray:
    return tab["status"] != "pending"


def select(tab: np.ndarray, where: dict, axes: list[dict]) -> np.ndarray:
    """Boolean mask of the rows that match ``where`` (axis name -> label | [labels] | {op: number})."""
    mask = np.ones(len(tab), dtype=bool)
    by = {a["name"]: a for a in axes}
    for name, cond in where.items():
        col = tab[param_field(name)]
        if isinstance(cond, dict):
            for op, x in cond.items():
                mask &= _cmp(col, op, x)
        else:
            conds = cond if isinstance(cond, list) else [cond]
            if by[name]["numeric"]:
                vals = [float(c) for c in conds]
                mask &= np.isin(col, vals)
            else:
                mask &= np.isin(col, [str(c) for c in conds])
    return mask


def _cmp(a, op: str, b):
    return {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less,
            "==": np.equal}[op](a, b)


@dataclass
class CriterionResult:
    criterion: Criterion
    value: float
    runs: int
    passed: bool
    detail: str

    def line(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return f"{mark}  {self.criterion.describe()}: {self.detail}"


def metric_value(tab: np.ndarray, metric: str) -> tuple[float, str]:
    n = len(tab)
    k = int(success(tab).sum())
    if metric == "runs":
        return float(n), f"{n} runs"
    if n == 0:
        return math.nan, "no finished runs match"
    lo, hi = wilson(k, n)
    if metric == "success_rate":
        return k / n, f"{k}/{n} landed = {k / n:.3f} (95 % CI {lo:.3f}..{hi:.3f})"
    if metric == "success_rate_lower95":
        return lo, f"Wilson 95 % lower bound {lo:.3f} ({k}/{n} landed)"
    if metric == "error_rate":
        e = int((tab["status"] == "error").sum())
        return e / n, f"{e}/{n} runs ended in an error = {e / n:.3f}"
    if metric == "crash_rate":
        c = int((tab["outcome"] == "crashed").sum())
        return c / n, f"{c}/{n} crashed = {c / n:.3f}"
    stat, _, col = metric.partition(".")
    v = tab[col][np.isfinite(tab[col])]
    if not v.size:
        return math.nan, f"no run has a {col}"
    f = {"mean": np.mean, "max": np.max, "min": np.min, "p50": lambda x: np.percentile(x, 50),
         "p95": lambda x: np.percentile(x, 95), "p99": lambda x: np.percentile(x, 99)}[stat]
    val = float(f(v))
    return val, f"{stat} of {col} over {v.size} runs = {val:.4g}"


def evaluate(criteria, tab: np.ndarray, axes: list[dict]) -> list[CriterionResult]:
    out = []
    done = tab[finished(tab)]
    for c in criteria:
        sub = done[select(done, c.where, axes)]
        val, detail = metric_value(sub, c.metric)
        ok = bool(np.isfinite(val) and _cmp(np.float64(val), c.op, c.value))
        if not np.isfinite(val):
            detail += " (cannot be evaluated: fails)"
        out.append(CriterionResult(c, val, len(sub), ok, detail))
    return out


def rate_by(tab: np.ndarray, col: str, others: list[str] | None = None):
    """Success rate against ``col`` for each combination of the ``others`` columns.

    Returns {other-values tuple: (x values, k, n, lo, hi)} over finished runs, x sorted.
    """
    tab = tab[finished(tab)]
    others = others or []
    groups = {}
    keys = sorted(set(zip(*(tab[o].tolist() for o in others)))) if others else [()]
    for key in keys:
        m = np.ones(len(tab), dtype=bool)
        for o, v in zip(others, key):
            m &= tab[o] == v
        sub = tab[m]
        xs = np.unique(sub[col])
        k = np.array([int(success(sub[sub[col] == x]).sum()) for x in xs])
        n = np.array([int((sub[col] == x).sum()) for x in xs])
        ci = np.array([wilson(int(a), int(b)) for a, b in zip(k, n)]).reshape(-1, 2)
        groups[key] = (xs, k, n, ci[:, 0], ci[:, 1])
    return groups


def threshold(xs, k, n, level: float = 0.5) -> float | None:
    """Where the success rate first drops below ``level`` going down the axis from its top value:
    linear interpolation between the last value at or above ``level`` and the first below it.
    None if it never drops below; math.inf if it is already below at the top of the axis."""
    order = np.argsort(xs)[::-1]
    xs, p = np.asarray(xs, float)[order], (np.asarray(k) / np.maximum(np.asarray(n), 1))[order]
    if not len(xs):
        return None
    if p[0] < level:
        return math.inf
    for i in range(1, len(xs)):
        if p[i] < level:
            x0, x1, p0, p1 = xs[i - 1], xs[i], p[i - 1], p[i]
            return float(x1 + (x0 - x1) * (level - p1) / (p0 - p1)) if p0 != p1 else float(x0)
    return None


def lowest_passing(xs, k, n, level: float = 0.99) -> float | None:
    """The lowest axis value down to which every value (from the top) has success rate >= level."""
    order = np.argsort(xs)[::-1]
    xs, p = np.asarray(xs, float)[order], (np.asarray(k) / np.maximum(np.asarray(n), 1))[order]
    last = None
    for x, pi in zip(xs, p):
        if pi < level:
            break
        last = float(x)
    return last
