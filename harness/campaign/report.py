"""The HTML report of a campaign: one self-contained file (matplotlib PNGs inlined as base64).

Sections: summary and pass criteria; success probability against each swept parameter (Wilson
95 % intervals, one line per combination of the other axes) and against each dispersed
parameter (quantile bins); where success drops; touchdown speed distributions; failure-mode
breakdown; the trajectories of the worst runs; robustness per requirement (when the spec names
requirements) with the worst runs of each; errors.
"""
from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.campaign import analysis  # noqa: E402
from harness.campaign.core import (load_store, robustness_by_requirement, summary_text, threshold_text,  # noqa: E402
                                   thresholds)
from harness.campaign.store import Store, param_field  # noqa: E402

_OUTCOME_COLORS = {"landed": "tab:green", "off-site": "tab:olive", "hard-landing": "tab:orange", "crashed": "tab:red",
                   "timeout": "tab:purple", "link-failure": "tab:brown", "error": "black"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


SCATTER_MAX = 5000  # runs drawn one point each; above, plots show the spread per swept value


def fig_robustness(table, axes, by: dict) -> str:
    """Robustness of each requirement: against the first numeric swept axis when there is one, else
    a histogram; the region below 0 (violated) shaded red. One panel per requirement."""
    from harness.safetext import printable

    n = len(by)
    fig, axs = plt.subplots(n, 1, figsize=(10, 2.9 * n), constrained_layout=True, squeeze=False)
    axis = next((a for a in axes if a["numeric"]), None)
    order = np.argsort(table["run_id"], kind="stable")
    for ax, (req, d) in zip(axs[:, 0], by.items()):
        v = np.asarray(d["value"], dtype=float)
        fin = np.isfinite(v)
        title = printable(req, 110)
        if axis is not None:
            rows = order[np.searchsorted(table["run_id"], np.asarray(d["run_id"]), sorter=order)]
            x = table[param_field(axis["name"])][rows].astype(float)
            if fin.sum() <= SCATTER_MAX:
                ax.scatter(x[fin], v[fin], s=12, c=np.where(v[fin] < 0, "tab:red", "tab:green"))
            else:  # many runs: per swept value, the spread (min, 5-95 %, median) instead of every point
                xs = np.unique(x[fin])
                q = np.array([np.quantile(v[fin][x[fin] == u], [0.0, 0.05, 0.5, 0.95, 1.0]) for u in xs])
                ax.fill_between(xs, q[:, 1], q[:, 3], color="tab:blue", alpha=0.25, lw=0, label="5-95 % of runs")
                ax.plot(xs, q[:, 2], "o-", color="tab:blue", label="median")
                ax.plot(xs, q[:, 0], "v", color="tab:red", ms=5, label="worst run")
                ax.plot(xs, q[:, 4], "^", color="tab:green", ms=5, label="best run")
                ax.legend(fontsize=7)
            ax.set_xlabel(axis["name"])
            ax.axhspan(min(np.nanmin(v[fin]) if fin.any() else -1, -1e-9) * 1.1 - 1e-3, 0, color="tab:red",
                       alpha=0.12, lw=0)
            ax.axhline(0, color="tab:red", lw=1)
        else:
            if fin.any():
                ax.hist(v[fin], bins=min(40, max(5, int(fin.sum() ** 0.5) * 2)), color="tab:blue")
            lo, hi = ax.get_xlim()
            ax.axvspan(min(lo, 0), 0, color="tab:red", alpha=0.12, lw=0)
            ax.axvline(0, color="tab:red", lw=1)
            ax.set_xlabel("robustness")
            ax.set_ylabel("runs")
        if (~fin).any():
            title += f"  ({int((~fin).sum())} runs not finite: e.g. no touchdown)"
        ax.set_title(f"{title}: {d['violated']} of {d['evaluated']} violated", fontsize=9)
    return _png(fig)


def _group_label(group: dict) -> str:
    return ", ".join(f"{v}" for v in group.values()) or "all runs"


def fig_success_vs_axes(table, axes, ths) -> list[tuple[str, str]]:
    out = []
    for a in axes:
        if not a["numeric"]:
            continue
        fig, ax = plt.subplots(figsize=(10, 4.8), constrained_layout=True)
        for t in (t for t in ths if t["axis"] == a["name"]):
            xs, k, n = t["xs"], t["k"], t["n"]
            p = k / np.maximum(n, 1)
            ci = np.array([analysis.wilson(int(i), int(j)) for i, j in zip(k, n)])
            line, = ax.plot(xs, p, "o-", label=_group_label(t["group"]))
            ax.fill_between(xs, ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.18)
            if t["p50"] not in (None, math.inf):
                ax.axvline(t["p50"], color=line.get_color(), ls="--", lw=1)
                ax.annotate(f"50 % at {t['p50']:.0f}", (t["p50"], 0.5), xytext=(5, 5 + 12 * len(out)),
                            textcoords="offset points", color=line.get_color(), fontsize=8)
        ax.set_xlabel(a["name"])
        ax.set_ylabel("P(landed)")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, title=", ".join(b["name"] for b in axes if b is not a) or None, title_fontsize=8)
        ax.set_title(f"success probability against {a['name']} (bands: Wilson 95 % interval)")
        if len(a["labels"]) > 1 and min(xs) > 0 and max(xs) / max(min(xs), 1e-9) > 20:
            ax.set_xscale("log")
        out.append((a["name"], _png(fig)))
    # categorical axes alone: a bar chart with intervals
    for a in axes:
        if a["numeric"]:
            continue
        fin = table[table["status"] != "pending"]
        labs = a["labels"]
        k = np.array([int(analysis.success(fin[fin[param_field(a["name"])] == lab]).sum()) for lab in labs])
        n = np.array([int((fin[param_field(a["name"])] == lab).sum()) for lab in labs])
        p = k / np.maximum(n, 1)
        ci = np.array([analysis.wilson(int(i), int(j)) for i, j in zip(k, n)])
        fig, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
        ax.bar(labs, p, yerr=[p - ci[:, 0], ci[:, 1] - p], capsize=4, color="tab:blue", alpha=0.7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("P(landed)")
        ax.set_title(f"success probability by {a['name']} (all other values pooled; Wilson 95 %)")
        out.append((a["name"], _png(fig)))
    return out


def fig_success_vs_dispersions(table, dispersed, axes) -> str | None:
    if not dispersed:
        return None
    fin = table[table["status"] != "pending"]
    cat = next((param_field(a["name"]) for a in axes if not a["numeric"]), None)
    groups = list(dict.fromkeys(fin[cat])) if cat else [None]
    ncol = min(3, len(dispersed))
    nrow = -(-len(dispersed) // ncol)
    fig, axs = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), constrained_layout=True, squeeze=False)
    for ax in axs.flat[len(dispersed):]:
        ax.set_axis_off()
    for ax, path in zip(axs.flat, dispersed):
        for g in groups:
            sub = fin if g is None else fin[fin[cat] == g]
            x = sub[param_field(path)]
            ok = np.isfinite(x)
            if ok.sum() < 4:
                continue
            edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, 7)))
            mids, ps, los, his = [], [], [], []
            for lo, hi in zip(edges[:-1], edges[1:]):
                m = ok & (x >= lo) & (x <= hi)
                k, n = int(analysis.success(sub[m]).sum()), int(m.sum())
                w = analysis.wilson(k, n)
                mids.append(0.5 * (lo + hi)), ps.append(k / max(n, 1)), los.append(w[0]), his.append(w[1])
            line, = ax.plot(mids, ps, "o-", label=str(g) if g is not None else "all")
            ax.fill_between(mids, los, his, color=line.get_color(), alpha=0.15)
        ax.set_xlabel(path)
        ax.set_ylabel("P(landed)")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("success probability against each dispersed parameter (6 quantile bins, Wilson 95 %)")
    return _png(fig)


def fig_touchdown(table, axes) -> str:
    fin = table[table["status"] == "done"]
    cat = next((param_field(a["name"]) for a in axes if not a["numeric"]), None)
    groups = list(dict.fromkeys(fin[cat])) if cat else [None]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for g in groups:
        sub = fin if g is None else fin[fin[cat] == g]
        for ax, col in ((a1, "v_vertical"), (a2, "v_horizontal")):
            v = sub[col][np.isfinite(sub[col])]
            if v.size:
                bins = np.logspace(np.log10(max(min(v.min(), 0.5), 1e-3)), np.log10(max(v.max(), 1.0) * 1.05), 40)
                ax.hist(np.maximum(v, bins[0]), bins=bins, histtype="step", lw=1.5,
                        label=f"{g if g is not None else 'all'} ({v.size})")
    env_v, env_h = 2.0, 0.5
    try:
        from harness.scenario import Envelope

        env_v, env_h = Envelope().v_vertical_max, Envelope().v_horizontal_max
    except Exception:  # noqa: BLE001
        pass
    for ax, lim, name in ((a1, env_v, "vertical (down) speed at touchdown [m/s]"),
                          (a2, env_h, "horizontal speed at touchdown [m/s]")):
        ax.axvline(lim, color="k", ls="--", lw=1, label=f"envelope {lim} m/s")
        ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("runs")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("touchdown speed distributions (log scale: soft landings and impacts on one axis)")
    return _png(fig)


def fig_failure_modes(table, axes) -> str:
    fin = table[table["status"] != "pending"]
    cat = next((param_field(a["name"]) for a in axes if not a["numeric"]), None)
    groups = list(dict.fromkeys(fin[cat])) if cat else [None]
    modes = [m for m, _ in Counter(m for m in fin["failure_mode"] if m).most_common()]
    fig, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * max(1, len(modes)) * max(1, len(groups)) ** 0.5),
                           constrained_layout=True)
    if not modes:
        ax.text(0.5, 0.5, "no failures", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    h = 0.8 / len(groups)
    for j, g in enumerate(groups):
        sub = fin if g is None else fin[fin[cat] == g]
        counts = [int((sub["failure_mode"] == m).sum()) for m in modes]
        y = np.arange(len(modes)) + j * h
        bars = ax.barh(y, counts, height=h, label=str(g) if g is not None else "all")
        for b, c in zip(bars, counts):
            if c:
                ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {c}", va="center", fontsize=7)
    ax.set_yticks(np.arange(len(modes)) + 0.4 - h / 2)
    ax.set_yticklabels(modes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("runs")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("failure modes (diagnosis of each run that did not land)")
    return _png(fig)


def worst_runs(table, n: int, group: str | None = None) -> np.ndarray:
    """Up to ``n`` runs, worst first, spread over cases: the worst run (highest touchdown or impact
    vertical speed; errors first) of each (configuration, failure mode), then the next worst."""
    fin = table[table["status"] != "pending"]
    key = np.where(fin["status"] == "error", np.inf,
                   np.where(np.isfinite(fin["v_vertical"]), fin["v_vertical"], np.inf))
    order = np.argsort(-key, kind="stable")
    groups = fin[group][order].tolist() if group else [""] * len(order)
    modes = np.where(fin["failure_mode"] != "", fin["failure_mode"], fin["outcome"])[order].tolist()
    picked, seen = [], set()
    for i, case in zip(order.tolist(), zip(groups, modes)):
        if case not in seen:
            seen.add(case)
            picked.append(i)
    for i in order[:n + len(picked)].tolist():
        if len(picked) >= n:
            break
        if i not in picked:
            picked.append(i)
    picked = sorted(picked[:n], key=lambda i: -key[i])
    return fin[np.array(picked, dtype=int)] if picked else fin[:0]


def _point(r, axes) -> str:
    return ", ".join(f"{r[param_field(a['name'])]:g}" if a["numeric"] else str(r[param_field(a["name"])]) for a in axes)


def fig_worst(st: Store, worst, axes) -> str | None:
    if not len(worst):
        return None
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, constrained_layout=True)
    drawn = 0
    for r in worst:
        tr = st.trajectory(int(r["run_id"]))
        if tr is None:
            continue
        lab = f"run {r['run_id']} {_point(r, axes)}: {r['outcome']}" + (f" {r['v_vertical']:.1f} m/s" if np.isfinite(
            r["v_vertical"]) else "")
        line, = a1.plot(tr["t_s"], tr["altitude_m"], label=lab)
        a1.plot(tr["t_s"], tr["est_alt_m"], ls="--", lw=0.8, color=line.get_color())
        a2.plot(tr["t_s"], -tr["v_up_mps"], color=line.get_color())
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    a1.set_ylabel("altitude [m] (dashed: flight-code estimate)")
    a2.set_ylabel("descent speed [m/s]")
    a2.set_xlabel("simulated time [s]")
    for ax in (a1, a2):
        ax.grid(True, alpha=0.3)
    a1.legend(fontsize=7)
    fig.suptitle("trajectories of the worst runs")
    return _png(fig)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1150px;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:1.8em}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
.pass{color:#176b1b;font-weight:bold} .fail{color:#b00020;font-weight:bold} img{max-width:100%}
"""


def write_report(db: str | Path, out: str | Path | None = None, worst: int = 6, *, allow_import=()) -> Path:
    with Store(db, create=False) as st:  # the file is checked once
        return _write_report(st, db, out, worst, allow_import)


def _write_report(st: Store, db, out, worst: int, allow_import) -> Path:
    spec, table, axes = load_store(st, allow_import=allow_import)
    camp = st.campaign()
    dispersed = camp["dispersed"]
    crit = analysis.evaluate(spec.criteria, table, axes)
    ths = thresholds(table, axes)
    fin = table[table["status"] != "pending"]
    k = int(analysis.success(fin).sum())
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>fsil campaign {e(spec.name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>fsil campaign report: {e(spec.name)}</h1>",
             f"<p>{e(spec.description)}</p>" if spec.description else "",
             f"<p>scenario <b>{e(spec.scenario)}</b>, seed {spec.seed}, sampling {spec.sampling}, "
             f"{spec.n_points} grid points x {spec.runs_per_point} runs = {len(table)} runs; "
             f"{len(fin)} finished, <b>{k} landed</b> ({k / max(len(fin), 1):.1%}); database <code>{e(str(db))}</code></p>"]
    if crit:
        parts.append("<h2>Pass criteria</h2><table><tr><th></th><th>criterion</th><th>result</th></tr>")
        for c in crit:
            cls = "pass" if c.passed else "fail"
            parts.append(f"<tr><td class='{cls}'>{'PASS' if c.passed else 'FAIL'}</td>"
                         f"<td>{e(c.criterion.describe())}</td><td>{e(c.detail)}</td></tr>")
        parts.append("</table>")
    if ths:
        parts.append("<h2>Where the flight code stops landing</h2><table><tr><th>axis</th><th>other axes</th>"
                     "<th>P(landed) = 50 % at</th><th>&ge; 99 % landed down to</th></tr>")
        for t in ths:
            low = "none" if t["lowest_99"] is None else f"{t['lowest_99']:.0f}"
            parts.append(f"<tr><td>{e(t['axis'])}</td><td>{e(_group_label(t['group']))}</td>"
                         f"<td>{e(threshold_text(t['p50']))}</td><td>{low}</td></tr>")
        parts.append("</table><p>50 % crossing: linear interpolation between the two swept values around it.</p>")
    parts.append("<h2>Success probability against the swept parameters</h2><p>P(landed) at each swept value; "
                 "bands and error bars are Wilson score 95 % intervals; dashed lines mark the 50 % crossings.</p>")
    for _name, img in fig_success_vs_axes(table, axes, ths):
        parts.append(img)
    img = fig_success_vs_dispersions(table, dispersed, axes)
    if img:
        parts.append("<h2>Success probability against the dispersed parameters</h2>" + img)
    parts.append("<h2>Touchdown speeds</h2>" + fig_touchdown(table, axes))
    parts.append("<h2>Failure modes</h2>" + fig_failure_modes(table, axes))
    modes = Counter(m for m in fin["failure_mode"] if m)
    if modes:
        parts.append("<table><tr><th>failure mode</th><th>runs</th><th>example run</th></tr>")
        for m, c in modes.most_common():
            ex = int(fin[fin["failure_mode"] == m]["run_id"][0])
            parts.append(f"<tr><td>{e(m)}</td><td>{c}</td><td>{ex}</td></tr>")
        parts.append("</table>")
    w = worst_runs(table, worst, next((param_field(a["name"]) for a in axes if not a["numeric"]), None))
    img = fig_worst(st, w, axes)
    if img:
        parts.append("<h2>Worst runs</h2>" + img)
    if len(w):
        parts.append("<table><tr><th>run</th><th>point</th><th>outcome</th><th>v_down</th><th>failure mode</th>"
                     "<th>fly it again</th></tr>")
        for r in w:
            pt = ", ".join(f"{a['name']}={r[param_field(a['name'])]:g}" if a["numeric"]
                           else f"{a['name']}={r[param_field(a['name'])]}"
                           for a in axes)
            vv = f"{r['v_vertical']:.2f}" if np.isfinite(r["v_vertical"]) else "-"
            parts.append(f"<tr><td>{r['run_id']}</td><td>{e(pt)}</td><td>{e(str(r['outcome']))}</td><td>{vv}</td>"
                         f"<td>{e(str(r['failure_mode']))}</td>"
                         f"<td><code>fsil campaign rerun {e(str(db))} {r['run_id']}</code></td></tr>")
        parts.append("</table>")
    by = robustness_by_requirement(st.robustness())
    if by:
        parts.append("<h2>Requirements: robustness per run</h2><p>STL robustness of each requirement on each run, "
                     "in the requirement's own unit: &gt; 0 held with that margin, &lt; 0 violated by that much "
                     "(red region).</p>" + fig_robustness(table, axes, by))
        parts.append("<table><tr><th>requirement</th><th>min</th><th>median</th><th>violated</th>"
                     "<th>worst runs (robustness, instant of worst)</th></tr>")
        for req, d in by.items():
            order = np.argsort(np.where(np.isnan(d["value"]), np.inf, d["value"]), kind="stable")[:worst]
            runs = "; ".join(f"run {d['run_id'][i]}: {d['value'][i]:+.3g}"
                             + (f" at {d['t_worst_s'][i]:.1f} s" if np.isfinite(d['t_worst_s'][i]) else "")
                             for i in order)
            parts.append(f"<tr><td><code>{e(req)}</code></td><td>{d['min']:+.4g}</td><td>{d['median']:+.4g}</td>"
                         f"<td>{d['violated']} of {d['evaluated']}</td><td>{e(runs)}</td></tr>")
        parts.append("</table>")
    errs = fin[fin["status"] == "error"]
    if len(errs):
        parts.append(f"<h2>Errors ({len(errs)})</h2><table><tr><th>run</th><th>cause</th></tr>")
        for r in errs[:50]:
            parts.append(f"<tr><td>{r['run_id']}</td><td>{e(str(r['error']))}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Summary table</h2><pre>" + e(summary_text(table, axes, crit)) + "</pre>")
    parts.append("<h2>Spec</h2><pre>" + e(camp["spec_text"]) + "</pre></body></html>")
    out = Path(out) if out else Path(db).with_suffix(".html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    return out
