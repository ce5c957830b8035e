"""Golden-run regression: every library scenario's descent, stored and compared signal by signal.

Each library scenario (and each variant whose configuration differs from the base) is flown on
the loopback rig. Its telemetry is reduced to a compact reference in ``tests/golden/<name>.npz``:

* continuous signals (altitude, vertical and horizontal speed, tilt, mass, throttle, estimated
  altitude) sampled at about :data:`MAX_SAMPLES` instants, quantised to a fiftieth of their
  tolerance and delta-encoded (a few KB a scenario);
* discrete signals (guidance phase ``mode``, ``engine_on``, ``lrf_status``) as their full-rate
  change points, compared exactly;
* the outcome (exact), the end time and the touchdown numbers (with tolerances).

:func:`compare` names, for each signal outside its band, the first instant it left the band,
the reference and current values there, and the largest excursion; :func:`plot_diff` draws the
moved signals with their bands. :func:`accept` rewrites references and appends the reason, the
date, the git commit and the signals that moved to ``tests/golden/CHANGELOG.md``
(``fsil golden accept [SCENARIO...] --reason "..."``).

Tolerances live here, not in the references, so widening a band never needs a re-accept.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import FsilError

REPO_ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = REPO_ROOT / "tests" / "golden"
FORMAT_VERSION = 1
MAX_SAMPLES = 400   # continuous signals: at most about this many instants per reference

# signal -> (absolute tolerance, relative tolerance, unit): band = abs + rel * |reference|
CONTINUOUS: dict[str, tuple[float, float, str]] = {
    "altitude_m": (0.5, 1e-4, "m"),
    "v_up_mps": (0.05, 0.0, "m/s"),
    "v_horizontal_mps": (0.05, 1e-4, "m/s"),
    "tilt_deg": (0.2, 0.0, "deg"),
    "mass_kg": (0.05, 0.0, "kg"),
    "throttle_cmd": (0.01, 0.0, "-"),
    "est_alt_m": (0.5, 1e-4, "m"),
}
DISCRETE = ("mode", "engine_on", "lrf_status")   # compared exactly, change point by change point
# touchdown field -> absolute tolerance
TOUCHDOWN_TOL = {"t_s": 0.05, "v_vertical": 0.02, "v_horizontal": 0.02, "tilt_deg": 0.1,
                 "position_error_m": 0.5, "propellant_kg": 0.05}
END_TIME_TOL_S = 0.05   # the run's last record (touchdown / timeout instant), s


class GoldenError(FsilError):
    """A golden reference is missing, unreadable or names an unknown scenario."""


# ------------------------------------------------------------------------------ the scenario set
def golden_names() -> list[str]:
    """Library scenarios plus ``name:variant`` for each variant that changes the configuration
    (a variant identical to the base apart from its name, e.g. ``as_flown``, is not repeated)."""
    from harness.scenario_files import library_names, load_scenario, variants

    out = []
    for name in library_names():
        base = load_scenario(name)
        out.append(name)
        for v in variants(name):
            sc = load_scenario(name, v)
            same = dataclasses.replace(sc, name=base.name, variant=base.variant, expect=base.expect,
                                       description=base.description) == base
            if not same:
                out.append(f"{name}:{v}")
    return out


def reference_path(name: str, folder: Path | None = None) -> Path:
    return Path(folder or GOLDEN_DIR) / (name.replace(":", "--") + ".npz")


def fly_scenario(name: str):
    """Fly one golden scenario on the loopback rig; returns the FlightResult."""
    from harness.rigs import open_rig
    from harness.scenario_files import load_scenario

    base, _, variant = name.partition(":")
    sc = load_scenario(base, variant or None)
    with open_rig("loopback") as rig:
        return rig.fly(sc)


# ------------------------------------------------------------------------------ reduce / store
def _quantum(sig: str) -> float:
    return CONTINUOUS[sig][0] / 50.0


def reduce_result(res) -> dict:
    """The compact reference of one FlightResult (plain arrays and a JSON-able header)."""
    tm = res.telemetry
    t = np.asarray(tm["t_s"], float)
    n = t.size
    stride = max(1, math.ceil(n / MAX_SAMPLES))
    idx = np.arange(0, n, stride)
    if n and idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    out: dict = {"sample_index": idx.astype(np.int32)}
    for sig in CONTINUOUS:
        x = np.asarray(tm[sig], float)[idx]
        nan = np.isnan(x)
        q = np.rint(np.where(nan, 0.0, x) / _quantum(sig)).astype(np.int64)
        out[f"q_{sig}"] = np.diff(q, prepend=0)
        out[f"nan_{sig}"] = np.nonzero(nan)[0].astype(np.int32)
    for sig in DISCRETE:
        x = np.asarray(tm[sig], float)
        ch = np.nonzero(np.diff(x) != 0)[0] + 1 if n else np.zeros(0, int)
        at = np.concatenate([[0], ch]).astype(np.int32) if n else np.zeros(0, np.int32)
        out[f"at_{sig}"] = at
        out[f"val_{sig}"] = x[at].astype(np.int32) if n else np.zeros(0, np.int32)
    td = res.touchdown
    header = {"format": FORMAT_VERSION, "scenario": res.scenario.name, "firmware": res.firmware,
              "outcome": res.outcome, "cycles": int(n), "cycle_dt_s": float(t[1] - t[0]) if n > 1 else 0.0,
              "t_end_s": float(t[-1]) if n else 0.0,
              "touchdown": dataclasses.asdict(td) if td else None}
    out["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    return out


def write_reference(reduced: dict, path: Path) -> None:
    """Write a reduced reference atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **reduced)
    tmp = path.with_suffix(".npz.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


@dataclass
class Reference:
    """A decoded golden reference: header plus the signals at their stored instants."""

    header: dict
    sample_index: np.ndarray
    t_s: np.ndarray                      # times of the continuous samples, s
    continuous: dict[str, np.ndarray]    # signal -> values at t_s (NaN where none)
    changes: dict[str, tuple[np.ndarray, np.ndarray]]   # signal -> (cycle index, value) change points


def _ints(reduced: dict, key: str) -> np.ndarray:
    """``reduced[key]`` as int64; an array of another kind (a float index, text) is refused."""
    a = np.asarray(reduced[key])
    if a.dtype.kind not in "iu" and a.size:
        raise ValueError(f"{key} holds {a.dtype} values, not integers")
    return a.astype(np.int64)


def decode(reduced: dict) -> Reference:
    """A Reference from the arrays of a reference file; ValueError, KeyError, TypeError or
    IndexError on any array of the wrong kind or length (load_reference names the file)."""
    header = json.loads(bytes(np.asarray(reduced["header"], np.uint8)).decode())
    if not isinstance(header, dict) or not isinstance(header.get("cycle_dt_s"), (int, float)):
        raise ValueError("the header is not a JSON object with a number cycle_dt_s")
    idx = _ints(reduced, "sample_index")
    dt = header["cycle_dt_s"]
    cont = {}
    for sig in CONTINUOUS:
        x = np.cumsum(np.asarray(reduced[f"q_{sig}"], np.int64)) * _quantum(sig)
        x[np.asarray(reduced[f"nan_{sig}"], np.int64)] = np.nan
        cont[sig] = x
    changes = {s: (_ints(reduced, f"at_{s}"), _ints(reduced, f"val_{s}")) for s in DISCRETE}
    for s, (at, val) in changes.items():
        if at.shape != val.shape:
            raise ValueError(f"at_{s} and val_{s} differ in length ({at.size} and {val.size})")
    return Reference(header, idx, idx * dt, cont, changes)


def load_reference(name: str, folder: Path | None = None) -> Reference:
    path = reference_path(name, folder)
    if not path.exists():
        raise GoldenError(f"no golden reference for {name!r} ({path}); create it with "
                          f"fsil golden accept {name} --reason \"...\"")
    try:
        with np.load(path) as z:
            reduced = {k: z[k] for k in z.files}
        ref = decode(reduced)
    except (OSError, ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise GoldenError(f"{path}: unreadable golden reference ({exc}); re-accept it") from exc
    if ref.header.get("format") != FORMAT_VERSION:
        raise GoldenError(f"{path}: golden format {ref.header.get('format')} (this harness reads "
                          f"{FORMAT_VERSION}); re-accept it")
    return ref


# ------------------------------------------------------------------------------ compare
@dataclass
class Deviation:
    """One signal outside its band: where it first left, how far, and the worst excursion."""

    signal: str
    unit: str
    first_t_s: float
    reference: float
    current: float
    band: float
    worst_t_s: float
    worst_diff: float
    detail: str = ""

    def line(self) -> str:
        if self.detail:
            return f"{self.signal}: {self.detail}"
        return (f"{self.signal}: left its band (+-{self.band:.3g} {self.unit}) at t={self.first_t_s:.2f} s: "
                f"reference {self.reference:.4g}, now {self.current:.4g} ({self.current - self.reference:+.3g} "
                f"{self.unit}); worst {self.worst_diff:+.3g} {self.unit} at t={self.worst_t_s:.2f} s")


def _discrete_diff(sig: str, ref_ch, cur_ch, dt: float) -> Deviation | None:
    (ra, rv), (ca, cv) = ref_ch, cur_ch
    k = 0
    while k < min(len(ra), len(ca)) and ra[k] == ca[k] and rv[k] == cv[k]:
        k += 1
    if k == len(ra) == len(ca):
        return None
    def at(a, v, i):
        return f"{v[i]} at t={a[i] * dt:.2f} s" if i < len(a) else "no further change"
    detail = (f"change point {k} differs: reference {at(ra, rv, k)}, now {at(ca, cv, k)} "
              f"({len(ra)} vs {len(ca)} change points)")
    t_first = min(ra[k] if k < len(ra) else 1e18, ca[k] if k < len(ca) else 1e18) * dt
    return Deviation(sig, "", t_first, float("nan"), float("nan"), 0.0, t_first, float("nan"), detail)


def compare(ref: Reference, cur: Reference) -> list[Deviation]:
    """Every signal of ``cur`` outside the band around ``ref`` (empty: the run matches)."""
    out: list[Deviation] = []
    rh, ch = ref.header, cur.header
    if rh["outcome"] != ch["outcome"]:
        out.append(Deviation("outcome", "", 0.0, math.nan, math.nan, 0.0, 0.0, math.nan,
                             f"reference {rh['outcome']}, now {ch['outcome']}"))
    if abs(rh["t_end_s"] - ch["t_end_s"]) > END_TIME_TOL_S:
        out.append(Deviation("t_end_s", "s", 0.0, rh["t_end_s"], ch["t_end_s"], END_TIME_TOL_S, 0.0,
                             ch["t_end_s"] - rh["t_end_s"],
                             f"run ended at t={ch['t_end_s']:.2f} s, reference {rh['t_end_s']:.2f} s"))
    rtd, ctd = rh.get("touchdown"), ch.get("touchdown")
    if (rtd is None) != (ctd is None):
        out.append(Deviation("touchdown", "", 0.0, math.nan, math.nan, 0.0, 0.0, math.nan,
                             f"reference {'none' if rtd is None else 'touchdown'}, now "
                             f"{'none' if ctd is None else 'touchdown'}"))
    elif rtd is not None:
        for k, tol in TOUCHDOWN_TOL.items():
            d = ctd[k] - rtd[k]
            if not abs(d) <= tol:
                out.append(Deviation(f"touchdown.{k}", "", rtd["t_s"], rtd[k], ctd[k], tol, rtd["t_s"], d,
                                     f"reference {rtd[k]:.4g}, now {ctd[k]:.4g} ({d:+.3g}, tolerance {tol})"))
    dt = rh["cycle_dt_s"] or ch["cycle_dt_s"]
    for sig, (atol, rtol, unit) in CONTINUOUS.items():
        r = ref.continuous[sig]
        # current values at the reference's instants (same cycle grid; beyond its end: its last value)
        c = np.interp(ref.t_s, cur.t_s, cur.continuous[sig]) if cur.t_s.size else np.full_like(r, np.nan)
        n = min(r.size, int(np.searchsorted(ref.t_s, cur.t_s[-1] + 1e-9)) if cur.t_s.size else 0)
        r, c, t = r[:n], c[:n], ref.t_s[:n]
        band = atol + rtol * np.abs(np.nan_to_num(r)) + _quantum(sig)
        diff = c - r
        bad = ~(np.abs(diff) <= band) & ~(np.isnan(r) & np.isnan(c))
        if bad.any():
            i = int(np.argmax(bad))
            j = int(np.nanargmax(np.where(bad, np.abs(np.nan_to_num(diff, nan=np.inf)), -1.0)))
            out.append(Deviation(sig, unit, float(t[i]), float(r[i]), float(c[i]), float(band[i]),
                                 float(t[j]), float(diff[j])))
    for sig in DISCRETE:
        d = _discrete_diff(sig, ref.changes[sig], cur.changes[sig], dt)
        if d:
            out.append(d)
    return out


def report(name: str, devs: list[Deviation]) -> str:
    if not devs:
        return f"{name}: matches its golden reference"
    return "\n".join([f"{name}: {len(devs)} signal(s) moved from the golden reference"] +
                     [f"  - {d.line()}" for d in devs])


def plot_diff(name: str, ref: Reference, cur: Reference, devs: list[Deviation], path: Path) -> Path:
    """Reference and current run of each moved signal with the reference's band; the first exit marked."""
    from harness.plot import plt

    sigs = [d.signal for d in devs if d.signal in CONTINUOUS or d.signal in DISCRETE] or ["altitude_m"]
    fig, axes = plt.subplots(len(sigs), 1, figsize=(10, 2.6 * len(sigs)), sharex=True, squeeze=False,
                             constrained_layout=True)
    dt = ref.header["cycle_dt_s"]
    for ax, sig in zip(axes[:, 0], sigs):
        if sig in CONTINUOUS:
            atol, rtol, unit = CONTINUOUS[sig]
            r = ref.continuous[sig]
            band = atol + rtol * np.abs(np.nan_to_num(r))
            ax.fill_between(ref.t_s, r - band, r + band, color="0.85", label="reference band")
            ax.plot(ref.t_s, r, color="k", lw=1, label="reference")
            ax.plot(cur.t_s, cur.continuous[sig], color="tab:red", lw=1, label="now")
            ax.set_ylabel(f"{sig} ({unit})")
        else:
            for lab, rr, col in (("reference", ref, "k"), ("now", cur, "tab:red")):
                at, val = rr.changes[sig]
                end = rr.header["cycles"]
                ax.step(np.append(at, end) * dt, np.append(val, val[-1] if val.size else 0), where="post",
                        color=col, label=lab)
            ax.set_ylabel(sig)
        for d in devs:
            if d.signal == sig:
                ax.axvline(d.first_t_s, color="tab:orange", ls="--", label=f"first exit t={d.first_t_s:.2f} s")
        ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("t (s)")
    fig.suptitle(f"golden run {name}: moved signals")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ check / accept
def check(name: str, folder: Path | None = None, artifacts: Path | None = None) -> tuple[list[Deviation], str]:
    """Fly ``name``, compare it with its reference; on a mismatch write ``<artifacts>/<name>-golden.png``.
    Returns the deviations and the printable diff."""
    ref = load_reference(name, folder)
    cur = decode(reduce_result(fly_scenario(name)))
    devs = compare(ref, cur)
    text = report(name, devs)
    if devs and artifacts is not None:
        png = plot_diff(name, ref, cur, devs, Path(artifacts) / f"{name.replace(':', '--')}-golden.png")
        text += f"\n  plot: {png}"
    return devs, text


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return head + (" + uncommitted changes" if dirty else "")


def accept(names: list[str] | None, reason: str, folder: Path | None = None,
           log=print) -> list[tuple[str, str]]:
    """Fly ``names`` (default: every golden scenario), write their references and append one
    CHANGELOG entry (reason, UTC date, git commit, what moved). Returns ``(name, summary)`` pairs."""
    if not reason or not reason.strip():
        raise GoldenError("fsil golden accept needs --reason \"why the reference changes\"")
    folder = Path(folder or GOLDEN_DIR)
    known = golden_names()
    names = list(names or known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise GoldenError(f"not a golden scenario: {', '.join(unknown)}; golden scenarios: {', '.join(known)}")
    reduced = {}
    for n in names:   # fly everything first: a failure leaves every reference as it was
        reduced[n] = reduce_result(fly_scenario(n))
    moved = []
    for n in names:
        path = reference_path(n, folder)
        cur = decode(reduced[n])
        if path.exists():
            try:
                devs = compare(load_reference(n, folder), cur)
                what = ", ".join(d.signal for d in devs) if devs else "unchanged"
            except GoldenError:
                what = "replaced an unreadable reference"
        else:
            what = "new reference"
        outcome = cur.header["outcome"]
        moved.append((n, f"{outcome}; {what}"))
    for n in names:
        write_reference(reduced[n], reference_path(n, folder))
        log(f"accepted {n}: {dict(moved)[n]}")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    entry = [f"## {stamp} - commit {_git_commit()}", "", f"Reason: {reason.strip()}", ""]
    entry += [f"- `{n}`: {what}" for n, what in moved]
    log_path = folder / "CHANGELOG.md"
    head = "" if log_path.exists() else ("# Golden-run references: why each one changed\n\n"
                                         "Appended by `fsil golden accept`; newest last.\n\n")
    with open(log_path, "a") as fh:
        fh.write(head + "\n".join(entry) + "\n\n")
    return moved


# ------------------------------------------------------------------------------ CLI
def cmd_golden(args) -> int:
    """``fsil golden list|check|accept``: exit 0 all match / accepted, 1 a signal moved, 2 bad input."""
    if args.action == "list":
        for n in golden_names():
            p = reference_path(n)
            print(f"{n:36s} {'%6d B' % p.stat().st_size if p.exists() else 'no reference'}")
        return 0
    if args.action == "accept":
        accept(args.scenario or None, args.reason or "")
        return 0
    known = golden_names()
    bad = [n for n in args.scenario if n not in known]
    if bad:
        raise GoldenError(f"not a golden scenario: {', '.join(bad)}; golden scenarios: {', '.join(known)}")
    failed = 0
    for n in args.scenario or known:
        devs, text = check(n, artifacts=Path(args.out))
        print(text)
        failed += bool(devs)
    return 1 if failed else 0


def add_parser(sub) -> None:
    g = sub.add_parser("golden", help="golden-run regression: list, check or accept the library scenarios' references")
    g.add_argument("action", choices=("list", "check", "accept"))
    g.add_argument("scenario", nargs="*", help="golden scenario names (default: all); NAME:VARIANT for a variant")
    g.add_argument("--reason", help="accept: why the references change (recorded in tests/golden/CHANGELOG.md)")
    g.add_argument("--out", default="artifacts/golden", help="check: folder for the plots of moved signals")
    g.set_defaults(func=cmd_golden)
