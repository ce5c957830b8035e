"""Falsification specs: a TOML file that says what to search, for which requirements, how long.

Schema (unknown keys are errors naming the file, the key and the allowed keys)::

    [falsify]     name, description, scenario, requirements, optimizer, budget, seed, run_seed,
                  batch, run_timeout_s
    [scenario]    "dotted.path" = value            fixed overrides (as in campaign specs)
    [parameters]  "dotted.path" = { low = .., high = .., scale = "linear"|"log" }   the search space
    [dispersions] "dotted.path" = { dist = .. }    boundary search only: drawn per run (campaign syntax)
    [boundary]    parameter, low, high, level, budget, tolerance, batch, initial, min_descents
                                                   (fsil falsify --boundary)

Dotted paths are the campaign's (docs/campaigns.md): Scenario fields, ``lrf.*``, ``imu.*``,
``nav_error.*``, ``flight_params.NAME``, ``faults.N.<field>`` (and ``faults.N.<field>.K`` for
one component of a vector field).
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError

OPTIMIZERS = ("cma", "de", "dual_annealing", "tpe", "random")
SCALES = ("linear", "log")

_KEYS = {
    "falsify": {"name", "description", "scenario", "requirements", "optimizer", "budget", "seed", "run_seed",
                "batch", "run_timeout_s"},
    "parameter": {"low", "high", "scale"},
    "boundary": {"parameter", "low", "high", "level", "budget", "tolerance", "batch", "initial", "min_descents"},
}
_TOP = {"falsify", "scenario", "parameters", "dispersions", "boundary"}


@dataclass(frozen=True)
class Parameter:
    """One bounded search parameter: a dotted scenario path and its interval."""

    path: str
    low: float
    high: float
    scale: str = "linear"

    def value(self, u: float) -> float:
        """The parameter value at ``u`` in [0, 1] (linear or logarithmic between low and high)."""
        u = min(1.0, max(0.0, float(u)))
        if self.scale == "log":
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))


@dataclass(frozen=True)
class Boundary:
    """Where along ``parameter`` the success probability crosses ``level``, to +- ``tolerance``."""

    parameter: str
    low: float
    high: float
    level: float = 0.5
    budget: int = 150
    tolerance: float = 25.0
    batch: int = 10
    initial: int = 20
    min_descents: int = 50   # the interval is asymptotic: never trust it on fewer descents


@dataclass(frozen=True)
class FalsifySpec:
    name: str
    scenario: str
    requirements: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    optimizer: str = "cma"
    budget: int = 100
    seed: int = 0
    run_seed: int | None = 1       # None: a different scenario seed per run ("per-run")
    batch: int = 0                 # 0: the optimiser's natural batch
    run_timeout_s: float = 300.0
    description: str = ""
    overrides: dict = field(default_factory=dict)
    dispersions: tuple = ()        # campaign Dispersion objects (boundary search)
    boundary: Boundary | None = None
    source: str = "<memory>"
    text: str = ""

    @property
    def digest(self) -> str:
        """Hash of what decides the runs and the search (not the description, budget or optimizer)."""
        plan = {"scenario": self.scenario, "requirements": list(self.requirements), "overrides": self.overrides,
                "parameters": [(p.path, p.low, p.high, p.scale) for p in self.parameters],
                "run_seed": self.run_seed, "dispersions": [(d.path, d.dist, d.args) for d in self.dispersions],
                "boundary": None if self.boundary is None else vars(self.boundary)}
        return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def overrides_for(self, values: dict) -> dict:
        """The spec's fixed overrides followed by ``values`` (path -> value)."""
        return {**self.overrides, **values}


def _num(v, key: str, src: str, lo=-math.inf, hi=math.inf, integer=False):
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (isinstance(v, float) and math.isnan(v)) or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        rng = f" in [{lo:g}, {hi:g}]" if (lo, hi) != (-math.inf, math.inf) else ""
        raise ConfigError(f"{src}: {key} = {v!r} is invalid; allowed: {kind}{rng}")
    return v


def _unknown(table, allowed, where: str, src: str) -> None:
    bad = sorted(set(table) - set(allowed))
    if bad:
        raise ConfigError(f"{src}: unknown key {bad[0]!r} in {where}; allowed keys: {', '.join(sorted(allowed))}")


def load_falsify_spec(path: str | Path) -> FalsifySpec:
    """Load and validate a falsification spec; every path and bound is applied to the scenario
    once before anything flies, so a bad one fails here naming the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"falsification spec {str(p)!r} not found")
    text = p.read_text()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return spec_from_dict(doc, str(p), text)


def spec_from_dict(doc: dict, src: str = "<memory>", text: str = "") -> FalsifySpec:
    from harness.campaign.spec import apply_overrides, check_flight_params
    from harness.campaign.spec import spec_from_dict as campaign_spec
    from harness.requirements import LIBRARY, resolve

    _unknown(doc, _TOP, "the top level", src)
    f = doc.get("falsify")
    if not isinstance(f, dict):
        raise ConfigError(f"{src}: missing [falsify] table (keys: {', '.join(sorted(_KEYS['falsify']))})")
    _unknown(f, _KEYS["falsify"], "[falsify]", src)
    for req in ("scenario", "requirements"):
        if req not in f:
            raise ConfigError(f"{src}: [falsify] {req} is required")
    reqs = f["requirements"]
    if isinstance(reqs, str):
        reqs = [reqs]
    if not isinstance(reqs, list) or not reqs or not all(isinstance(r, str) for r in reqs):
        raise ConfigError(f"{src}: falsify.requirements = {reqs!r}; allowed: a list of library names "
                          f"({', '.join(LIBRARY)}) or STL formulas")
    for r in reqs:
        try:
            resolve(r)
        except ConfigError as exc:
            raise ConfigError(f"{src}: falsify.requirements: {exc}") from None
    optimizer = f.get("optimizer", "cma")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"{src}: falsify.optimizer = {optimizer!r} is invalid; allowed: {', '.join(OPTIMIZERS)}")
    budget = _num(f.get("budget", 100), "falsify.budget", src, 1, 10**7, integer=True)
    seed = _num(f.get("seed", 0), "falsify.seed", src, 0, 2**63 - 1, integer=True)
    rs = f.get("run_seed", 1)
    if rs == "per-run":
        run_seed = None
    else:
        if isinstance(rs, str):
            raise ConfigError(f"{src}: falsify.run_seed = {rs!r} is invalid; allowed: an integer >= 0 (every run "
                              f"flies with that scenario seed) or \"per-run\"")
        run_seed = int(_num(rs, "falsify.run_seed", src, 0, 2**63 - 1, integer=True))
    batch = _num(f.get("batch", 0), "falsify.batch", src, 0, 10**5, integer=True)
    timeout = _num(f.get("run_timeout_s", 300.0), "falsify.run_timeout_s", src, 0.1, 86400)

    # the campaign validator checks the scenario, the fixed overrides and the dispersions
    camp = {"campaign": {"name": str(f.get("name") or Path(src).stem), "scenario": f["scenario"], "seed": 0},
            "scenario": doc.get("scenario", {}), "dispersions": doc.get("dispersions", {})}
    cs = campaign_spec(camp, source=src)
    nominal = apply_overrides(_base(cs.scenario, src), cs.overrides, f"{src}: [scenario]")

    params = []
    table = doc.get("parameters", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{src}: [parameters] must be a table of \"dotted.path\" = {{low = .., high = ..}}")
    for path, pt in _flatten_params(table).items():
        key = f"parameters.{path}"
        if not isinstance(pt, dict):
            raise ConfigError(f"{src}: {key} must be a table {{low = .., high = ..}}")
        _unknown(pt, _KEYS["parameter"], key, src)
        for need in ("low", "high"):
            if need not in pt:
                raise ConfigError(f"{src}: {key}.{need} is required")
        lo, hi = _num(pt["low"], f"{key}.low", src), _num(pt["high"], f"{key}.high", src)
        if not lo < hi:
            raise ConfigError(f"{src}: {key}: low = {lo} must be below high = {hi}")
        scale = pt.get("scale", "linear")
        if scale not in SCALES:
            raise ConfigError(f"{src}: {key}.scale = {scale!r} is invalid; allowed: {', '.join(SCALES)}")
        if scale == "log" and lo <= 0:
            raise ConfigError(f"{src}: {key}.low = {lo} is invalid; allowed: > 0 for scale = \"log\"")
        if path in cs.overrides:
            raise ConfigError(f"{src}: {path!r} is both fixed in [scenario] and searched in [parameters]; choose one")
        for v in (float(lo), float(hi)):
            check_flight_params(apply_overrides(nominal, {path: v}, f"{src}: {key}"), f"{src}: {key}")
        params.append(Parameter(path, float(lo), float(hi), scale))

    boundary = None
    if "boundary" in doc:
        b = doc["boundary"]
        if not isinstance(b, dict):
            raise ConfigError(f"{src}: [boundary] must be a table")
        _unknown(b, _KEYS["boundary"], "[boundary]", src)
        for need in ("parameter", "low", "high"):
            if need not in b:
                raise ConfigError(f"{src}: [boundary] {need} is required")
        if not isinstance(b["parameter"], str):
            raise ConfigError(f"{src}: boundary.parameter = {b['parameter']!r}; allowed: a dotted scenario path")
        lo, hi = _num(b["low"], "boundary.low", src), _num(b["high"], "boundary.high", src)
        if not lo < hi:
            raise ConfigError(f"{src}: [boundary] low = {lo} must be below high = {hi}")
        for v in (float(lo), float(hi)):
            check_flight_params(apply_overrides(nominal, {b["parameter"]: v}, f"{src}: [boundary]"),
                                f"{src}: [boundary]")
        if b["parameter"] in {d.path for d in cs.dispersions} | set(cs.overrides):
            raise ConfigError(f"{src}: boundary.parameter {b['parameter']!r} is also fixed or dispersed; choose one")
        boundary = Boundary(
            b["parameter"], float(lo), float(hi),
            level=float(_num(b.get("level", 0.5), "boundary.level", src, 0.01, 0.99)),
            budget=int(_num(b.get("budget", 150), "boundary.budget", src, 4, 10**6, integer=True)),
            tolerance=float(_num(b.get("tolerance", 25.0), "boundary.tolerance", src, 0.0)),
            batch=int(_num(b.get("batch", 10), "boundary.batch", src, 1, 10**4, integer=True)),
            initial=int(_num(b.get("initial", 20), "boundary.initial", src, 2, 10**5, integer=True)),
            min_descents=int(_num(b.get("min_descents", 50), "boundary.min_descents", src, 2, 10**6, integer=True)))
    if not params and boundary is None:
        raise ConfigError(f"{src}: [parameters] is empty: give at least one \"dotted.path\" = {{low = .., high = ..}} "
                          f"(or a [boundary] table for fsil falsify --boundary)")
    return FalsifySpec(name=cs.name, scenario=cs.scenario, requirements=tuple(reqs), parameters=tuple(params),
                       optimizer=optimizer, budget=int(budget), seed=int(seed), run_seed=run_seed, batch=int(batch),
                       run_timeout_s=float(timeout), description=str(f.get("description", "")),
                       overrides=dict(cs.overrides), dispersions=cs.dispersions, boundary=boundary, source=src,
                       text=text)


def _base(ref: str, src: str):
    from harness.campaign.spec import resolve_scenario

    try:
        return resolve_scenario(ref)
    except ConfigError as exc:
        raise ConfigError(f"{src}: falsify.scenario = {ref!r}: {exc}") from None


def _flatten_params(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not ({"low", "high"} & set(v)) and v:
            out.update(_flatten_params(v, key + "."))
        else:
            out[key] = v
    return out
