"""Campaign specs: a TOML file that says which descents to fly, how many, and what must hold.

Schema (every key is listed in docs/campaigns.md; unknown keys are errors)::

    [campaign]      name, description, scenario, seed, sampling, runs_per_point, rig,
                    run_timeout_s, keep_telemetry, requirements
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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.errors import ConfigError
from harness.validation import (INT64_MAX, Interval, KeyProblem, Model, check_values, parse_toml, read_text, validate,
                                value_text)

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

# A campaign plans every run before the first one flies (one row each in its database): bounded,
# so a slip such as runs_per_point = 10000000 is an error at once, not minutes of silent planning.
MAX_RUNS = 100_000


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
    rig: str = "loopback"  # what the workers load: a rig name or an absolute rig-file path
    rig_as_written: str = "loopback"  # [campaign] rig in the spec (the plan's digest hashes it)
    run_timeout_s: float = 300.0
    keep_telemetry: str = "failed"
    overrides: dict = field(default_factory=dict)
    dispersions: tuple[Dispersion, ...] = ()
    axes: tuple[Axis, ...] = ()
    criteria: tuple[Criterion, ...] = ()
    source: str = "<memory>"
    text: str = ""
    allow_import: tuple[str, ...] = ()  # modules whose module:function scenarios may be imported
    requirements: tuple[str, ...] = ()  # harness.requirements names or STL formulas, robustness stored per run

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
        if self.requirements:  # what each run stores (absent: digests of older specs stay as they were)
            plan["requirements"] = list(self.requirements)
        if self.rig_as_written != "loopback":  # another flight code, or the same one on another rig
            plan["rig"] = self.rig_as_written
        return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# scenario resolution and dotted-path overrides


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _exists(path: str) -> bool:
    """Path(path).exists(), False for a name the file system refuses to look up (too long, ...)."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):  # ValueError: a NUL byte
        return False


def code_reference(ref: str) -> tuple[str, str] | None:
    """``(module, function)`` when ``ref`` names Python code (``package.module:function``), else
    None (a scenario name, ``NAME:VARIANT`` of a library scenario, or a file)."""
    if not isinstance(ref, str) or ":" not in ref or _exists(ref):
        return None
    mod, _, fn = ref.partition(":")
    if not _MODULE.fullmatch(mod) or not fn.isidentifier():
        return None
    from harness.scenario_files import library_names

    if mod in library_names() or _exists(mod):
        return None  # NAME:VARIANT
    return mod, fn


def import_allowed(module: str, allow_import) -> bool:
    """True when ``module`` is one of ``allow_import`` or inside one of those packages."""
    return any(module == a or module.startswith(a + ".") for a in allow_import or ())


def resolve_scenario(ref: str, allow_import=()):
    """A Scenario from a reference: a scenario file or name (``load_scenario``), a built-in name
    (``fsil run`` names), or ``package.module:function``. Code is imported only when its module
    is in ``allow_import`` (the user's ``--allow-import MODULE``): a spec file or a campaign
    database is data, and naming code in it must not run that code."""
    code = code_reference(ref)
    if code is not None:
        mod, fn = code
        if not import_allowed(mod, allow_import):
            raise ConfigError(f"scenario {ref!r} names Python code (module {mod}, function {fn}); fsil imports "
                              f"code named in a file or database only when you allow it on the command line: "
                              f"--allow-import {mod} (Python API: allow_import=[{mod!r}])")
        try:
            obj = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"scenario {ref!r}: cannot import {mod}:{fn} ({exc})") from None
        return obj()
    from harness.scenario_files import scenario_by_name

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


def check_flight_params(scenario, origin: str, source_dir=None) -> None:
    """The scenario's flight_params are parameters of the flight code's registry (``fsw_params.def``
    of ``source_dir``, the reference one by default) and within their ranges."""
    from harness.params import check_params, load_param_table

    check_params(scenario.flight_params, load_param_table(source_dir), origin)


def resolve_campaign_rig(rig: str, source: str) -> tuple[str, object]:
    """The rig of ``[campaign] rig``: (what the workers load, the loaded RigSpec). A name is a rig
    on the rig search path (``fsil rigs``); a path ending in .toml is taken relative to the spec
    file's folder. ConfigError names the key and the cause."""
    from harness.rigs import load_rig

    ref = rig
    if rig.endswith(".toml"):
        base = Path(source).resolve().parent if source not in ("<memory>", "") else Path.cwd()
        ref = str((base / rig).resolve())
    try:
        spec = load_rig(ref)
    except ConfigError as exc:
        raise ConfigError(f"{source}: [campaign] rig = {value_text(rig)}: {exc}") from None
    return ref, spec


def build_scenario(ref: str, overrides: dict, seed: int, origin: str = "<memory>", allow_import=(), base=None):
    """The scenario of one run: ``ref`` resolved (or ``base``, that scenario already resolved),
    ``overrides`` applied, ``seed`` set."""
    if base is None:
        try:
            base = resolve_scenario(ref, allow_import)
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    sc = apply_overrides(base, overrides, origin)
    return dataclasses.replace(sc, seed=int(seed))


# ---------------------------------------------------------------------------------------------
# loading


# ---------------------------------------------------------------------------------------------
# the schema (harness/validation.py: errors name the file, the key, the value and what is allowed)

# Result columns that criteria may take statistics of (see store.METRIC_COLUMNS).
STAT_COLUMNS = ("v_vertical", "v_horizontal", "tilt_deg", "propellant_kg", "position_error_m",
                "max_est_error_m", "wall_s")
_NonEmpty = Annotated[str, Field(min_length=1)]


class CampaignTable(Model):
    """[campaign]"""

    name: _NonEmpty | None = None
    description: str = ""
    scenario: _NonEmpty = Field(description="a scenario name, a scenario file, or module:function with "
                                            "--allow-import MODULE")
    seed: int = Field(ge=0, le=INT64_MAX)
    sampling: Literal["random", "lhs", "sobol"] = "lhs"
    runs_per_point: int = Field(1, ge=1, le=MAX_RUNS, description=f"at most {MAX_RUNS} runs per campaign")
    rig: _NonEmpty = Field("loopback", description="where the runs fly: loopback (the reference flight code "
                                                   "in-process), a rig name (fsil rigs), or a rig file (a path "
                                                   "relative to this spec) over your own flight code; every run "
                                                   "boots the flight code afresh, each worker its own instance")
    run_timeout_s: float = Field(300.0, ge=0.1, le=86400.0, description="s, wall time per run")
    keep_telemetry: Literal["failed", "all", "none"] = "failed"
    requirements: list[_NonEmpty] = Field([], description="requirements whose robustness every run stores: names "
                                                          "from harness.requirements.LIBRARY or STL formulas")

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, reqs):
        from harness.requirements import check_requirement_list

        return check_requirement_list(reqs)


class Sweep(Model):
    """[[sweep]]"""

    path: _NonEmpty
    values: Annotated[list[Any], Field(min_length=1)] | None = None
    linspace: list[float] | None = Field(None, description="[start, stop, num], num an integer from 1 to "
                                                           f"{MAX_RUNS}")
    labels: list[str] | None = None
    name: _NonEmpty | None = None

    @model_validator(mode="after")
    def _one_source_of_values(self):
        if (self.values is None) == (self.linspace is None):
            raise KeyProblem("values", self.values, "exactly one of values = [...] or linspace = [start, stop, num]")
        if self.linspace is not None:
            ls = self.linspace
            if len(ls) != 3 or isinstance(ls[2], float) and not ls[2].is_integer() or not 1 <= ls[2] <= MAX_RUNS:
                raise KeyProblem("linspace", ls, f"[start, stop, num], num an integer from 1 to {MAX_RUNS}")
        n = len(self.values) if self.values is not None else int(self.linspace[2])
        if self.labels is not None:
            if len(self.labels) != n:
                raise KeyProblem("labels", self.labels, f"{n} strings, one per value")
            if len(set(self.labels)) != n:
                raise KeyProblem("labels", self.labels, "distinct strings")
        return self


class CriterionTable(Model):
    """[[criteria]]"""

    metric: _NonEmpty
    op: Literal[">=", ">", "<=", "<", "=="]
    value: float
    where: dict[str, Any] = {}
    name: str = ""

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric):
        if metric not in METRICS:
            pre, _, col = metric.partition(".")
            if pre not in STAT_PREFIXES or col not in STAT_COLUMNS:
                raise KeyProblem("", metric, f"{', '.join(METRICS)}, or STAT.COLUMN with STAT in "
                                             f"{', '.join(STAT_PREFIXES)} and COLUMN in {', '.join(STAT_COLUMNS)}")
        return metric


class SpecFile(Model):
    """A campaign spec file: the top level."""

    campaign: CampaignTable
    scenario: dict[str, Any] = Field({}, description="dotted.path = value")
    dispersions: dict[str, Any] = Field({}, description='"dotted.path" = {dist = ...}')
    sweep: list[Sweep] = []
    criteria: list[CriterionTable] = []


class _Uniform(Interval):
    dist: Literal["uniform"]


class _LogUniform(_Uniform):
    dist: Literal["loguniform"]
    low: float = Field(gt=0.0)


class _Normal(Model):
    dist: Literal["normal"]
    mean: float
    sigma: float = Field(ge=0.0)


class _TruncNormal(Interval):
    dist: Literal["truncnormal"]
    mean: float
    sigma: float = Field(gt=0.0)


class _LogNormal(Model):
    dist: Literal["lognormal"]
    median: float = Field(gt=0.0)
    sigma_log: float = Field(ge=0.0)


class _Choice(Model):
    dist: Literal["choice"]
    values: Annotated[list[Any], Field(min_length=1)]
    weights: list[Annotated[float, Field(ge=0.0)]] | None = None

    @model_validator(mode="after")
    def _weights(self):
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise KeyProblem("weights", self.weights, f"{len(self.values)} numbers >= 0, one per value")
            if not sum(self.weights) > 0:
                raise KeyProblem("weights", self.weights, "numbers >= 0 with a positive sum (at least one value "
                                                          "must be possible)")
        return self


_DIST_MODELS = {"uniform": _Uniform, "normal": _Normal, "truncnormal": _TruncNormal, "lognormal": _LogNormal,
                "loguniform": _LogUniform, "choice": _Choice}


# ---------------------------------------------------------------------------------------------
# loading


def load_spec(path_or_text: str | Path, *, text: str | None = None, allow_import=()) -> CampaignSpec:
    """Load and validate a campaign spec from a TOML file (or ``text`` with ``path_or_text`` as its
    name). ``allow_import``: modules a ``module:function`` scenario may come from."""
    source = str(path_or_text)
    if text is None:
        text = read_text(path_or_text, what="campaign spec")
    doc = parse_toml(text, source, what="campaign spec")
    return spec_from_dict(doc, source=source, text=text, allow_import=allow_import)


def spec_from_dict(doc: dict, source: str = "<memory>", text: str = "", allow_import=()) -> CampaignSpec:
    if isinstance(doc, dict) and isinstance(doc.get("sweep"), dict):
        doc = {**doc, "sweep": [doc["sweep"]]}
    if isinstance(doc, dict) and isinstance(doc.get("criteria"), dict):
        doc = {**doc, "criteria": [doc["criteria"]]}
    check_values(doc, source)
    f = validate(SpecFile, doc, source)
    c = f.campaign
    name = c.name or Path(source).stem
    allow_import = tuple(allow_import or ())

    try:
        base = resolve_scenario(c.scenario, allow_import)
    except ConfigError as exc:
        raise ConfigError(f"{source}: [campaign] scenario = {value_text(c.scenario)}: {exc}; also allowed: "
                          f"a library name (fsil scenarios list), a scenario file, or module:function "
                          f"with --allow-import MODULE") from None
    rig, rig_spec = resolve_campaign_rig(c.rig, source)
    source_dir = rig_spec.source_dir  # its parameter registry (None: the reference one)

    overrides = _flatten(f.scenario)
    nominal = apply_overrides(base, overrides, f"{source}: [scenario]")
    check_flight_params(nominal, f"{source}: [scenario]", source_dir)

    disps = []
    for path, d in _flatten_dists(f.dispersions).items():
        key = f"[dispersions] {path}"
        if not isinstance(d, dict) or not isinstance(d.get("dist"), str) or d.get("dist") not in DISTS:
            got = value_text(d.get("dist")) if isinstance(d, dict) else value_text(d)
            raise ConfigError(f"{source}: [dispersions.{path}] dist = {got} is invalid; allowed: a table "
                              f"{{dist = ..., ...}} with dist one of {', '.join(DISTS)}")
        m = validate(_DIST_MODELS[d["dist"]], d, source, where=("dispersions", path))
        args = {k: v for k, v in d.items() if k != "dist"}  # as written: the plan's digest hashes them
        disp = Dispersion(path, m.dist, args)
        check_flight_params(apply_overrides(nominal, {path: disp.representative()}, f"{source}: {key}"),
                            f"{source}: {key}", source_dir)
        disps.append(disp)

    axes = []
    for i, s in enumerate(f.sweep):
        key = f"[[sweep]] #{i + 1}"
        path = s.path
        if s.linspace is not None:
            a, b, n = s.linspace[0], s.linspace[1], int(s.linspace[2])
            values = [a + (b - a) * k / (n - 1) if n > 1 else a for k in range(n)]
        else:
            values = list(s.values)
        labels = s.labels
        if labels is None:
            labels = [v if isinstance(v, str) else (f"{v:g}" if isinstance(v, (int, float)) and
                                                    not isinstance(v, bool) else json.dumps(v, sort_keys=True))
                      for v in values]
            if len(set(labels)) != len(labels):
                raise ConfigError(f"{source}: {key} values give the same label twice ({', '.join(labels)}); "
                                  f"allowed: distinct values, or labels = [...] naming each")
        for v in values:
            check_flight_params(apply_overrides(nominal, {path: v}, f"{source}: {key} path = {path!r}"),
                                f"{source}: {key}", source_dir)
        if path.split(".")[0] == "flight_params" and "." not in path:
            values = [param_set(v, f"{source}: {key}") for v in values]
        axes.append(Axis(s.name or path, path, tuple(values), tuple(labels)))
    if len({a.name for a in axes}) != len(axes):
        raise ConfigError(f"{source}: two [[sweep]] axes share a name; allowed: distinct name = ... for each")
    clash = {a.path for a in axes} & {d.path for d in disps}
    if clash:
        raise ConfigError(f"{source}: {sorted(clash)[0]!r} is both swept and dispersed; allowed: one of the two")
    n_points = math.prod(len(a.values) for a in axes) if axes else 1
    if n_points * c.runs_per_point > MAX_RUNS:
        raise ConfigError(f"{source}: [campaign] runs_per_point = {c.runs_per_point} gives {n_points} grid points x "
                          f"{c.runs_per_point} = {n_points * c.runs_per_point} runs; allowed: at most {MAX_RUNS} "
                          f"runs per campaign (split a bigger study into several campaigns)")

    crits = []
    axis_names = {a.name: a for a in axes}
    for i, cr in enumerate(f.criteria):
        key = f"[[criteria]] #{i + 1} where"
        for ax, cond in cr.where.items():
            if ax not in axis_names:
                raise ConfigError(f"{source}: {key}: unknown axis {ax!r}; allowed: "
                                  f"{', '.join(axis_names) or '(no sweep axes)'}")
            axis = axis_names[ax]
            if isinstance(cond, dict):
                bad = sorted(set(cond) - set(OPS))
                if bad:
                    raise ConfigError(f"{source}: {key}.{ax}: unknown comparison {bad[0]!r}; allowed: {', '.join(OPS)}")
                if not axis.numeric:
                    raise ConfigError(f"{source}: {key}.{ax}: comparisons need a numeric axis; "
                                      f"allowed labels: {', '.join(axis.labels)}")
                for op, x in cond.items():
                    if not isinstance(x, (int, float)) or isinstance(x, bool):
                        raise ConfigError(f"{source}: {key}.{ax} {op} {value_text(x)} is invalid; allowed: a number")
            else:
                for lab in cond if isinstance(cond, list) else [cond]:
                    if str(lab) not in axis.labels and not (axis.numeric and lab in axis.values):
                        raise ConfigError(f"{source}: {key}.{ax} = {lab!r} is not a value of the axis; "
                                          f"allowed: {', '.join(axis.labels)}")
        crits.append(Criterion(cr.metric, cr.op, float(cr.value), dict(cr.where), cr.name))

    return CampaignSpec(name=name, scenario=c.scenario, seed=c.seed, sampling=c.sampling,
                        runs_per_point=c.runs_per_point, description=c.description, rig=rig,
                        rig_as_written=c.rig,
                        run_timeout_s=c.run_timeout_s, keep_telemetry=c.keep_telemetry, overrides=overrides,
                        dispersions=tuple(disps), axes=tuple(axes), criteria=tuple(crits), source=source,
                        text=text, allow_import=allow_import, requirements=tuple(c.requirements))


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
