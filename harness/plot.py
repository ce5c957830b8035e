"""Descent plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange")


def plot_descents(results, path: Path | str, title: str | None = None) -> Path:
    """Altitude, vertical speed, throttle and LRF range against time for one or more results.

    The point of no return and touchdown of each run are marked; the verdicts go in the legend.
    """
    results = list(results)
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True, constrained_layout=True)
    ax_alt, ax_v, ax_thr, ax_lrf = axes
    for k, res in enumerate(results):
        c = _COLORS[k % len(_COLORS)]
        tm = res.telemetry
        t = tm["t_s"]
        label = f"{res.scenario.name}: {res.outcome}"
        if res.touchdown:
            label += f" ({res.touchdown.v_vertical:.1f} m/s down)"
        ax_alt.plot(t, tm["altitude_m"], color=c, label=f"{label}: truth")
        ax_alt.plot(t, tm["est_alt_m"], color=c, ls="--", lw=1, label=f"{res.scenario.name}: flight-code estimate")
        ax_v.plot(t, tm["v_up_mps"], color=c, label=res.scenario.name)
        ax_thr.plot(t, tm["throttle_cmd"], color=c, lw=1, label=f"{res.scenario.name}: commanded")
        if res.thrust_max_n:
            ax_thr.plot(t, tm["thrust_n"] / res.thrust_max_n, color=c, ls=":", lw=1,
                        label=f"{res.scenario.name}: engine")
        valid = tm["lrf_valid"] > 0
        ax_lrf.plot(t[valid], tm["lrf_range_m"][valid], ".", ms=2, color=c, label=f"{res.scenario.name}: valid")
        rejected = valid & np.isin(tm["lrf_status"], (2, 4)) & (tm["lrf_new"] > 0)
        if rejected.any():
            ax_lrf.plot(t[rejected], tm["lrf_range_m"][rejected], "x", ms=4, color="k",
                        label=f"{res.scenario.name}: rejected by flight code")
        pnr = res.point_of_no_return()
        if pnr:
            for ax in axes:
                ax.axvline(pnr["t_s"], color=c, ls="-.", lw=1)
            ax_alt.annotate(f"point of no return\nt={pnr['t_s']:.1f} s, {pnr['altitude_m']:.0f} m",
                            (pnr["t_s"], pnr["altitude_m"]), xytext=(10, 20), textcoords="offset points",
                            color=c, fontsize=8, arrowprops={"arrowstyle": "->", "color": c})
    ax_alt.set_ylabel("altitude above terrain [m]")
    ax_v.set_ylabel("vertical speed [m/s]")
    ax_thr.set_ylabel("throttle [0..1]")
    ax_lrf.set_ylabel("LRF slant range [m]")
    ax_lrf.set_xlabel("simulated time [s]")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title or " vs ".join(r.scenario.name for r in results))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
