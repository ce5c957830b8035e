"""Campaign specs: a TOML file that says which descents to fly, how many, and what must hold.

Schema (every key is listed in docs/campaigns.md; unknown keys are errors)::

    [campaign]      name, description, scenario, seed, sampling, runs_per_point, rig,
                    run_timeout_s, keep_telemetry
    [scenario]      "dotted.path" = value          fixed overrides of the base scenario
    [dispersions]   "dotted.path" = {dist = ..., ...}   one random variable per path
    [[sweep]]       path, values | linspace, labels, name      grid axes, crossed
    [[criteria]]    metric, op, value, where, name             pass criteria (the CI gate)

A dotted path addresses a field of the Scenario dataclass and of the frozen dataclasses inside
it: ``altitude_m``, ``lrf.acquire_altitude_m``, ``nav_error.altitude_m``, ``imu.rate_hz``,
``flight_params.CONTINGENCY_ENABLE``, ``faults.0.<field>`` (the n-th fault object).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

SAMPLINGS = ("random", "lhs", "sobol")
KEEP_TELEMETRY = ("failed", "all", "none")
DISTS = {
    "uniform": ("low", "high"),
    "normal": ("mean", "sigma"),
    "truncnormal": ("mean", "sigma", "low", "high"),
    "lognormal": ("median", "sigma_log"),
    "loguniform": ("low", "high"),
    "choice": ("values",),
}
DIST_OPTIONAL = {"choice": ("weights",), "normal": (), "uniform": (), "truncnormal": (), "lognormal": (),
                 "loguniform": ()}
METRICS = ("success_rate", "success_rate_lower95", "error_rate", "crash_rate", "runs")
STAT_PREFIXES = ("mean", "max", "min", "p50", "p95", "p99")
OPS = (">=", ">", "<=", "<", "==")
# Named flight-code parameter sets a sweep value may name instead of a table.
NAMED_PARAM_SETS = ("AS_FLOWN", "FIXED")
# Scenario fields a spec may not address (callables and derived objects).
_UNADDRESSABLE = ("terrain",)

_KEYS = {
    "campaign": {"name", "description", "scenario", "seed", "sampling", "runs_per_point", "rig",
                 "run_timeout_s", "keep_telemetry"},
    "sweep": {"path", "values", "linspace", "labels", "name"},
    "criteria": {"metric", "op", "value", "where", "name"},
}
_TOP = {"campaign", "scenario", "dispersions", "sweep", "criteria"}


@dataclass(frozen=True)
class Dispersion:
    path: str
    dist: str
    args: dict[str, Any]

    def ppf(self, u):
        """Map uniform [0, 1) samples ``u`` (numpy array) to this distribution (inverse CDF)."""
        import numpy as np
        from scipy import stats

        a = self.args
        u = np.clip(np.asarray(u, dtype=float), 1e-12, 1 - 1e-12)
        if self.dist == "uniform":
            return a["low"] + u * (a["high"] - a["low"])
        if self.dist == "normal":
            return stats.norm.ppf(u, loc=a["mean"], scale=a["sigma"])
        if self.dist == "truncnormal":
            lo, hi = (a["low"] - a["mean"]) / a["sigma"], (a["high"] - a["mean"]) / a["sigma"]
            return stats.truncnorm.ppf(u, lo, hi, loc=a["mean"], scale=a["sigma"])
        if self.dist == "lognormal":
            return a["median"] * np.exp(a["sigma_log"] * stats.norm.ppf(u))
        if self.dist == "loguniform":
            return np.exp(np.log(a["low"]) + u * (np.log(a["high"]) - np.log(a["low"])))
        if self.dist == "choice":
            vals = a["values"]
            w = np.asarray(a.get("weights") or [1.0] * len(vals), dtype=float)
            cdf = np.cumsum(w / w.sum())
            idx = np.minimum(np.searchsorted(cdf, u, side="right"), len(vals) - 1)
            return [vals[i] for i in idx]
        raise AssertionError(self.dist)

    def representative(self):
        """A value inside the support, used to check the path at load time."""
        a = self.args
        return {"uniform": a.get("low"), "normal": a.get("mean"), "truncnormal": a.get("mean"),
                "lognormal": a.get("median"), "loguniform": a.get("low"),
                "choice": (a.get("values") or [None])[0]}[self.dist]


@dataclass(frozen=True)
class Axis:
    """One grid axis: a scenario path and its values (with a label each)."""

    name: str
    path: str
    values: tuple
    labels: tuple[str, ...]

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)


@dataclass(frozen=True)
class Criterion:
    metric: str
    op: str
    value: float
    where: dict = field(default_factory=dict)
    name: str = ""

    def describe(self) -> str:
        w = ", ".join(f"{k} {_where_text(v)}" for k, v in self.where.items())
        return self.name or f"{self.metric} {self.op} {self.value:g}" + (f" where {w}" if w else "")


def _where_text(v) -> str:
    if isinstance(v, dict):
        return " and ".join(f"{op} {x:g}" for op, x in v.items())
    if isinstance(v, list):
        return "in " + ", ".join(map(str, v))
    return f"= {v}"


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    scenario: str
    seed: int
    sampling: str = "lhs"
    runs_per_point: int = 1
    description: str = ""
    rig: str = "loopback"
    run_timeout_s: float = 300.0
    keep_telemetry: str = "failed"
    overrides: dict = field(default_factory=dict)
    dispersions: tuple[Dispersion, ...] = ()
    axes: tuple[Axis, ...] = ()
    criteria: tuple[Criterion, ...] = ()
    source: str = "<memory>"
    text: str = ""

    @property
    def n_points(self) -> int:
        return math.prod(len(a.values) for a in self.axes) if self.axes else 1

    @property
    def n_runs(self) -> int:
        return self.n_points * self.runs_per_point

    def grid(self):
        """Grid points in order: a list of tuples of value indices, one per axis."""
        return list(itertools.product(*(range(len(a.values)) for a in self.axes)))

    @property
    def digest(self) -> str:
        """Hash of what decides the runs (not the description or the criteria)."""
        plan = {"scenario": self.scenario, "seed": self.seed, "sampling": self.sampling,
                "runs_per_point": self.runs_per_point, "overrides": self.overrides,
                "dispersions": [(d.path, d.dist, d.args) for d in self.dispersions],
                "axes": [(a.name, a.path, list(a.values), list(a.labels)) for a in self.axes]}
        return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# scenario resolution and dotted-path overrides


def resolve_scenario(ref: str):
    """A Scenario from a reference: a library name (``ispace-m2``, ``ispace-m2:fixed``), a scenario
    TOML path (``harness.scenario_files.scenario_by_name``), or ``package.module:function``."""
    from harness.scenario_files import DEPRECATED_NAMES, library_names, scenario_by_name

    mod, sep, fn = ref.partition(":")
    if sep and mod not in library_names() and mod not in DEPRECATED_NAMES and not mod.endswith(".toml") \
            and not Path(ref).exists():
        try:
            return getattr(importlib.import_module(mod), fn)()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"scenario {ref!r}: cannot import {mod}:{fn} ({exc})") from None
    return scenario_by_name(ref)


def param_set(value, origin: str) -> dict:
    """A flight_params value: a table, or the name of a set in harness.scenario (AS_FLOWN, FIXED)."""
    if isinstance(value, str):
        if value not in NAMED_PARAM_SETS:
            raise ConfigError(f"{origin}: unknown flight-code parameter set {value!r}; allowed: a table of "
                              f"parameters or one of {', '.join(NAMED_PARAM_SETS)}")
        from harness import scenario as sc

        return dict(getattr(sc, value))
    if not isinstance(value, dict):
        raise ConfigError(f"{origin}: flight_params must be a table or one of {', '.join(NAMED_PARAM_SETS)}; "
                          f"got {value!r}")
    return dict(value)


def _set_path(obj, parts: list[str], value, path: str, origin: str):
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(obj, dict):  # flight_params
        if rest:
            raise ConfigError(f"{origin}: {path!r}: {head} is a flight-code parameter; nothing below it")
        new = dict(obj)
        new[head] = value
        return new
    if isinstance(obj, tuple) and not dataclasses.is_dataclass(obj):
        try:
            i = int(head)
            items = list(obj)
            items[i] = _set_path(items[i], rest, value, path, origin)
        except (ValueError, IndexError):
            raise ConfigError(f"{origin}: {path!r}: {head!r} is not an index of a {len(obj)}-element "
                              f"sequence; allowed: 0..{len(obj) - 1}") from None
        return tuple(items)
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj) if f.name not in _UNADDRESSABLE]
        if head not in names:
            raise ConfigError(f"{origin}: unknown key {path!r}: {type(obj).__name__} has no field {head!r}; "
                              f"allowed: {', '.join(names)}")
        sub = getattr(obj, head)
        if not rest and dataclasses.is_dataclass(sub):
            raise ConfigError(f"{origin}: {path!r} is a group; address one of its fields: "
                              f"{', '.join(f.name for f in dataclasses.fields(sub))}")
        new_val = _set_path(sub, rest, value, path, origin)
        if not rest and sub is not None and not isinstance(sub, (dict, tuple, list)):
            if isinstance(sub, bool) != isinstance(new_val, bool) or \
                    (isinstance(sub, (int, float)) and not isinstance(new_val, (int, float))) or \
                    (isinstance(sub, str) and not isinstance(new_val, str)):
                raise ConfigError(f"{origin}: {path} = {value!r} has the wrong type; allowed: "
                                  f"{type(sub).__name__} (like the default {sub!r})")
        try:
            return dataclasses.replace(obj, **{head: new_val})
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {path} = {value!r}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{origin}: {path} = {value!r}: {exc}") from None
    raise ConfigError(f"{origin}: {path!r}: cannot go below {type(obj).__name__} at {head!r}")


def apply_overrides(scenario, overrides: dict[str, Any], origin: str = "<memory>"):
    """A copy of ``scenario`` with each ``dotted.path = value`` applied in order."""
    for path, value in overrides.items():
        parts = path.split(".")
        if parts[0] == "flight_params":
            if len(parts) == 1:
                value = param_set(value, f"{origin}: {path}")
                scenario = scenario.with_(flight_params=value)
            else:
                scenario = scenario.with_(flight_params={".".join(parts[1:]): value})
            continue
        if path == "faults" or parts[0] in _UNADDRESSABLE:
            raise ConfigError(f"{origin}: {path!r} cannot be set from a spec; address fields such as faults.0.<field>")
        scenario = _set_path(scenario, parts, value, path, origin)
    return scenario


def check_flight_params(scenario, origin: str) -> None:
    from harness.params import check_params, load_param_table

    check_params(scenario.flight_params, load_param_table(), origin)


def build_scenario(ref: str, overrides: dict, seed: int, origin: str = "<memory>"):
    sc = apply_overrides(resolve_scenario(ref), overrides, origin)
    return dataclasses.replace(sc, seed=int(seed))


# ---------------------------------------------------------------------------------------------
# loading


def _unknown(keys, allowed, where: str, source: str) -> None:
    bad = sorted(set(keys) - set(allowed))
    if bad:
        raise ConfigError(f"{source}: unknown key {bad[0]!r} in {where}; allowed keys: {', '.join(sorted(allowed))}")


def _num(v, key: str, source: str, lo=-math.inf, hi=math.inf, integer=False):
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not (lo <= v <= hi):
        kind = "an integer" if integer else "a number"
        rng = f" in [{lo:g}, {hi:g}]" if (lo, hi) != (-math.inf, math.inf) else ""
        raise ConfigError(f"{source}: {key} = {v!r} is invalid; allowed: {kind}{rng}")
    return v


def _choice(v, key: str, allowed, source: str):
    if v not in allowed:
        raise ConfigError(f"{source}: {key} = {v!r} is invalid; allowed: {', '.join(map(str, allowed))}")
    return v


def load_spec(path_or_text: str | Path, *, text: str | None = None) -> CampaignSpec:
    """Load and validate a campaign spec from a TOML file (or ``text`` with ``path_or_text`` as its name)."""
    if text is None:
        p = Path(path_or_text)
        if not p.is_file():
            raise ConfigError(f"campaign spec {str(p)!r} not found")
        text = p.read_text()
        source = str(p)
    else:
        source = str(path_or_text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return spec_from_dict(doc, source=source, text=text)


def spec_from_dict(doc: dict, source: str = "<memory>", text: str = "") -> CampaignSpec:
    _unknown(doc, _TOP, "the top level", source)
    c = doc.get("campaign")
    if not isinstance(c, dict):
        raise ConfigError(f"{source}: missing [campaign] table (keys: {', '.join(sorted(_KEYS['campaign']))})")
    _unknown(c, _KEYS["campaign"], "[campaign]", source)
    for req in ("scenario", "seed"):
        if req not in c:
            raise ConfigError(f"{source}: [campaign] {req} is required")
    if not isinstance(c["scenario"], str):
        raise ConfigError(f"{source}: campaign.scenario = {c['scenario']!r} is invalid; allowed: a scenario name, "
                          f"a scenario file, or module:function")
    seed = _num(c["seed"], "campaign.seed", source, 0, 2**63 - 1, integer=True)
    sampling = _choice(c.get("sampling", "lhs"), "campaign.sampling", SAMPLINGS, source)
    rpp = _num(c.get("runs_per_point", 1), "campaign.runs_per_point", source, 1, 10**7, integer=True)
    timeout = _num(c.get("run_timeout_s", 300.0), "campaign.run_timeout_s", source, 0.1, 86400)
    keep = _choice(c.get("keep_telemetry", "failed"), "campaign.keep_telemetry", KEEP_TELEMETRY, source)
    rig = c.get("rig", "loopback")
    if rig != "loopback":
        raise ConfigError(f"{source}: campaign.rig = {rig!r} is invalid; allowed: loopback (campaigns fly many "
                          f"descents at once, in-process)")
    name = str(c.get("name") or Path(source).stem)

    try:
        base = resolve_scenario(c["scenario"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: campaign.scenario = {c['scenario']!r}: {exc}; also allowed: "
                          f"package.module:function") from None
    overrides = doc.get("scenario", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: [scenario] must be a table of dotted.path = value")
    overrides = _flatten(overrides)
    nominal = apply_overrides(base, overrides, f"{source}: [scenario]")
    check_flight_params(nominal, f"{source}: [scenario]")

    disps = []
    draw = doc.get("dispersions", {})
    if not isinstance(draw, dict):
        raise ConfigError(f"{source}: [dispersions] must be a table of \"dotted.path\" = {{dist = ...}}")
    for path, d in _flatten_dists(draw).items():
        key = f"dispersions.{path}"
        if not isinstance(d, dict) or "dist" not in d:
            raise ConfigError(f"{source}: {key} must be a table with dist = one of {', '.join(DISTS)}")
        dist = _choice(d["dist"], f"{key}.dist", tuple(DISTS), source)
        args = {k: v for k, v in d.items() if k != "dist"}
        _unknown(args, DISTS[dist] + DIST_OPTIONAL[dist], key + f" (dist = {dist})", source)
        for need in DISTS[dist]:
            if need not in args:
                raise ConfigError(f"{source}: {key}: dist = {dist} needs {', '.join(DISTS[dist])}; {need} is missing")
        if dist == "choice":
            if not isinstance(args["values"], list) or not args["values"]:
                raise ConfigError(f"{source}: {key}.values must be a non-empty list")
            if "weights" in args and (not isinstance(args["weights"], list) or len(args["weights"]) != len(
                    args["values"]) or any(not isinstance(w, (int, float)) or w < 0 for w in args["weights"])):
                raise ConfigError(f"{source}: {key}.weights must be {len(args['values'])} non-negative numbers")
        else:
            for k in DISTS[dist]:
                _num(args[k], f"{key}.{k}", source)
            for k in ("sigma", "sigma_log"):
                if k in args:
                    _num(args[k], f"{key}.{k}", source, 0.0)
            if "low" in args and args["low"] >= args["high"]:
                raise ConfigError(f"{source}: {key}: low = {args['low']} must be below high = {args['high']}")
            if dist == "loguniform" and args["low"] <= 0:
                raise ConfigError(f"{source}: {key}.low = {args['low']} is invalid; allowed: > 0 for loguniform")
        disp = Dispersion(path, dist, args)
        check_flight_params(apply_overrides(nominal, {path: disp.representative()}, f"{source}: {key}"),
                            f"{source}: {key}")
        disps.append(disp)

    axes = []
    sweeps = doc.get("sweep", [])
    if isinstance(sweeps, dict):
        sweeps = [sweeps]
    if not isinstance(sweeps, list):
        raise ConfigError(f"{source}: sweep must be an array of tables ([[sweep]])")
    for i, s in enumerate(sweeps):
        key = f"sweep[{i}]"
        if not isinstance(s, dict):
            raise ConfigError(f"{source}: {key} must be a table")
        _unknown(s, _KEYS["sweep"], key, source)
        if "path" not in s:
            raise ConfigError(f"{source}: {key}.path is required (a dotted scenario path)")
        path = s["path"]
        if ("values" in s) == ("linspace" in s):
            raise ConfigError(f"{source}: {key} ({path}) needs exactly one of values = [...] or "
                              f"linspace = [start, stop, num]")
        if "linspace" in s:
            ls = s["linspace"]
            if not (isinstance(ls, list) and len(ls) == 3 and isinstance(ls[2], int) and ls[2] >= 1
                    and all(isinstance(x, (int, float)) for x in ls[:2])):
                raise ConfigError(f"{source}: {key}.linspace = {ls!r} is invalid; allowed: [start, stop, num], "
                                  f"num an integer >= 1")
            a, b, n = ls
            values = [a + (b - a) * k / (n - 1) if n > 1 else a for k in range(n)]
        else:
            values = s["values"]
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{source}: {key}.values must be a non-empty list")
        labels = s.get("labels")
        if labels is None:
            labels = [v if isinstance(v, str) else (f"{v:g}" if isinstance(v, (int, float)) and
                                                    not isinstance(v, bool) else json.dumps(v, sort_keys=True))
                      for v in values]
        if not isinstance(labels, list) or len(labels) != len(values) or not all(isinstance(x, str) for x in labels):
            raise ConfigError(f"{source}: {key}.labels must be {len(values)} strings, one per value")
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{source}: {key}.labels must be distinct")
        for v in values:
            check_flight_params(apply_overrides(nominal, {path: v}, f"{source}: {key}"), f"{source}: {key}")
        if path.split(".")[0] == "flight_params" and "." not in path:
            values = [param_set(v, f"{source}: {key}") for v in values]
        axname = s.get("name", path)
        if not isinstance(axname, str) or not axname:
            raise ConfigError(f"{source}: {key}.name must be a non-empty string")
        axes.append(Axis(axname, path, tuple(values), tuple(labels)))
    if len({a.name for a in axes}) != len(axes):
        raise ConfigError(f"{source}: two sweep axes share a name; give them distinct name = ...")
    clash = {a.path for a in axes} & {d.path for d in disps}
    if clash:
        raise ConfigError(f"{source}: {sorted(clash)[0]!r} is both swept and dispersed; choose one")

    crits = []
    raw = doc.get("criteria", [])
    if isinstance(raw, dict):
        raw = [raw]
    axis_names = {a.name: a for a in axes}
    for i, cr in enumerate(raw):
        key = f"criteria[{i}]"
        if not isinstance(cr, dict):
            raise ConfigError(f"{source}: {key} must be a table")
        _unknown(cr, _KEYS["criteria"], key, source)
        for req in ("metric", "op", "value"):
            if req not in cr:
                raise ConfigError(f"{source}: {key}.{req} is required")
        metric = cr["metric"]
        if metric not in METRICS:
            pre, _, col = metric.partition(".")
            if pre not in STAT_PREFIXES or col not in STAT_COLUMNS:
                raise ConfigError(f"{source}: {key}.metric = {metric!r} is invalid; allowed: {', '.join(METRICS)}, "
                                  f"or STAT.COLUMN with STAT in {', '.join(STAT_PREFIXES)} and COLUMN in "
                                  f"{', '.join(STAT_COLUMNS)}")
        op = _choice(cr["op"], f"{key}.op", OPS, source)
        value = _num(cr["value"], f"{key}.value", source)
        where = cr.get("where", {})
        if not isinstance(where, dict):
            raise ConfigError(f"{source}: {key}.where must be a table of axis = value")
        for ax, cond in where.items():
            if ax not in axis_names:
                raise ConfigError(f"{source}: {key}.where: unknown axis {ax!r}; allowed: "
                                  f"{', '.join(axis_names) or '(no sweep axes)'}")
            axis = axis_names[ax]
            if isinstance(cond, dict):
                _unknown(cond, OPS, f"{key}.where.{ax}", source)
                if not axis.numeric:
                    raise ConfigError(f"{source}: {key}.where.{ax}: comparisons need a numeric axis; "
                                      f"allowed labels: {', '.join(axis.labels)}")
            else:
                for lab in cond if isinstance(cond, list) else [cond]:
                    if str(lab) not in axis.labels and not (axis.numeric and lab in axis.values):
                        raise ConfigError(f"{source}: {key}.where.{ax} = {lab!r} is not a value of the axis; "
                                          f"allowed: {', '.join(axis.labels)}")
        crits.append(Criterion(metric, op, float(value), dict(where), str(cr.get("name", ""))))

    return CampaignSpec(name=name, scenario=c["scenario"], seed=int(seed), sampling=sampling,
                        runs_per_point=int(rpp), description=str(c.get("description", "")), rig=rig,
                        run_timeout_s=float(timeout), keep_telemetry=keep, overrides=overrides,
                        dispersions=tuple(disps), axes=tuple(axes), criteria=tuple(crits), source=source,
                        text=text)


# Result columns that criteria may take statistics of (see store.METRIC_COLUMNS).
STAT_COLUMNS = ("v_vertical", "v_horizontal", "tilt_deg", "propellant_kg", "position_error_m",
                "max_est_error_m", "wall_s")


def _flatten(d: dict, prefix: str = "") -> dict:
    """Turn TOML sub-tables into dotted keys: [scenario.lrf] latency_s = 0.1 -> lrf.latency_s."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key != "flight_params" and not key.startswith("flight_params."):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, dict) and key == "flight_params":
            for pk, pv in v.items():
                out[f"flight_params.{pk}"] = pv
        else:
            out[key] = v
    return out


def _flatten_dists(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and "dist" not in v:
            out.update(_flatten_dists(v, key + "."))
        else:
            out[key] = v
    return out
