"""Falsification specs: a TOML file that says what to search, for which requirements, how long.

Schema (checked by harness/validation.py: an error names the file, the key, the value and what is
allowed; unknown keys and sections are errors listing the allowed ones; NaN, infinity, integers
beyond 64 bits and files that are not UTF-8 are refused)::

    [falsify]     scenario (required), requirements (required: a library name, an STL formula, or
                  an array of them), name, description, optimizer = "cma"|"de"|"dual_annealing"|
                  "tpe"|"random", budget (runs, 1..10^7), seed (>= 0), run_seed (>= 0 or "per-run"),
                  batch (0..10^5, 0: the optimiser's own), run_timeout_s (s, 0.1..86400)
    [scenario]    "dotted.path" = value            fixed overrides (as in campaign specs)
    [parameters]  "dotted.path" = { low = .., high = .., scale = "linear"|"log" }   the search space
                  (low < high; low > 0 for "log")
    [dispersions] "dotted.path" = { dist = .. }    boundary search only: drawn per run (campaign syntax)
    [boundary]    parameter, low, high (required, low < high), level (0.01..0.99), budget (4..10^6),
                  tolerance (>= 0, the parameter's unit), batch (1..10^4), initial (2..10^5),
                  min_descents (2..10^6)                    (fsil falsify --boundary)

At least one of [parameters] or [boundary]. Dotted paths are the campaign's (docs/campaigns.md):
Scenario fields, ``lrf.*``, ``imu.*``, ``nav_error.*``, ``flight_params.NAME``,
``faults.N.<field>`` (and ``faults.N.<field>.K`` for one component of a vector field); every path
and bound is applied to the scenario at load time. [scenario] and [dispersions] go through the
campaign spec's validator (harness/campaign/spec.py), so they accept and refuse the same things.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.errors import ConfigError
from harness.validation import INT64_MAX, Interval, KeyProblem, Model, parse_toml, read_text, validate, value_text

OPTIMIZERS = ("cma", "de", "dual_annealing", "tpe", "random")
SCALES = ("linear", "log")
_NonEmpty = Annotated[str, Field(min_length=1)]


class ParameterRange(Interval):
    """``[parameters] "dotted.path" = {low, high, scale}``: the interval searched (the path's unit)."""

    scale: Literal[SCALES] = "linear"

    @model_validator(mode="after")
    def _log_needs_positive_low(self):
        if self.scale == "log" and self.low <= 0:
            raise KeyProblem("low", self.low, '> 0 for scale = "log"')
        return self


class Parameter(ParameterRange):
    """One bounded search parameter: a dotted scenario path and its interval."""

    path: str

    def value(self, u: float) -> float:
        """The parameter value at ``u`` in [0, 1] (linear or logarithmic between low and high)."""
        u = min(1.0, max(0.0, float(u)))
        if self.scale == "log":
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))


class Boundary(Interval):
    """[boundary]: where along ``parameter`` (between low and high) the success probability
    crosses ``level``, to +- ``tolerance`` (the parameter's unit)."""

    parameter: _NonEmpty = Field(description="a dotted scenario path")
    level: float = Field(0.5, ge=0.01, le=0.99)
    budget: int = Field(150, ge=4, le=10**6, description="descents")
    tolerance: float = Field(25.0, ge=0.0)
    batch: int = Field(10, ge=1, le=10**4, description="descents per fit")
    initial: int = Field(20, ge=2, le=10**5, description="descents spread over [low, high] first")
    min_descents: int = Field(50, ge=2, le=10**6, description="the interval is asymptotic: never trust it "
                                                               "on fewer descents")


class FalsifyTable(Model):
    """[falsify]"""

    name: _NonEmpty | None = None
    description: str = ""
    scenario: _NonEmpty = Field(description="a scenario name or a scenario file")
    requirements: Annotated[list[_NonEmpty], Field(min_length=1)] = Field(
        description="library names or STL formulas (fsil requirements list)")
    optimizer: Literal[OPTIMIZERS] = "cma"
    budget: int = Field(100, ge=1, le=10**7, description="runs")
    seed: int = Field(0, ge=0, le=INT64_MAX)
    run_seed: Any = Field(1, description='an integer >= 0 (every run flies with that scenario seed) or "per-run"')
    batch: int = Field(0, ge=0, le=10**5, description="0: the optimiser's natural batch")
    run_timeout_s: float = Field(300.0, ge=0.1, le=86400.0, description="s, wall time per run")
    rig: _NonEmpty = Field("loopback", description="where the descents fly: loopback (the reference flight code "
                                                   "in-process), a rig name, or a rig file (relative to this spec) "
                                                   "over your own flight code (docs/campaigns.md)")

    @field_validator("requirements", mode="before")
    @classmethod
    def _one_or_many(cls, reqs):
        return [reqs] if isinstance(reqs, str) else reqs

    @field_validator("requirements")
    @classmethod
    def _known(cls, reqs):
        from harness.requirements import check_requirement_list

        return check_requirement_list(reqs)

    @field_validator("run_seed")
    @classmethod
    def _run_seed(cls, rs):
        if rs != "per-run" and (isinstance(rs, bool) or not isinstance(rs, int) or not 0 <= rs <= INT64_MAX):
            raise KeyProblem("", rs, 'an integer from 0 to 2^63-1 (every run flies with that scenario seed) '
                                     'or "per-run"')
        return rs


class FalsifyFile(Model):
    """A falsification spec file: the top level."""

    falsify: FalsifyTable
    scenario: dict[str, Any] = Field({}, description="dotted.path = value")
    parameters: dict[str, Any] = Field({}, description='"dotted.path" = {low = .., high = .., scale = ..}')
    dispersions: dict[str, Any] = Field({}, description='"dotted.path" = {dist = ...}')
    boundary: Boundary | None = None


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
    rig: str = "loopback"             # what the workers load: a rig name or an absolute rig-file path
    rig_as_written: str = "loopback"  # [falsify] rig in the spec (the digest hashes it)

    @property
    def digest(self) -> str:
        """Hash of what decides the runs and the search (not the description, budget or optimizer)."""
        plan = {"scenario": self.scenario, "requirements": list(self.requirements), "overrides": self.overrides,
                "parameters": [(p.path, p.low, p.high, p.scale) for p in self.parameters],
                "run_seed": self.run_seed, "dispersions": [(d.path, d.dist, d.args) for d in self.dispersions],
                "boundary": None if self.boundary is None else vars(self.boundary)}
        if self.rig_as_written != "loopback":  # another flight code, or the same one on another rig
            plan["rig"] = self.rig_as_written
        return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def overrides_for(self, values: dict) -> dict:
        """The spec's fixed overrides followed by ``values`` (path -> value)."""
        return {**self.overrides, **values}


def load_falsify_spec(path: str | Path) -> FalsifySpec:
    """Load and validate a falsification spec; every path and bound is applied to the scenario
    once before anything flies, so a bad one fails here naming the file and the key."""
    source = str(path)
    text = read_text(path, what="falsification spec")
    return spec_from_dict(parse_toml(text, source, what="falsification spec"), source, text)


def spec_from_dict(doc: dict, src: str = "<memory>", text: str = "") -> FalsifySpec:
    from harness.campaign.spec import apply_overrides, check_flight_params, resolve_scenario
    from harness.campaign.spec import spec_from_dict as campaign_spec

    f = validate(FalsifyFile, doc, src)
    t = f.falsify
    try:
        resolve_scenario(t.scenario)
    except ConfigError as exc:
        raise ConfigError(f"{src}: [falsify] scenario = {value_text(t.scenario)}: {exc}") from None
    # the campaign validator checks the fixed overrides and the dispersions (errors name [scenario]
    # and [dispersions.PATH] as written here)
    camp = {"campaign": {"name": t.name or Path(src).stem, "scenario": t.scenario, "seed": 0, "rig": t.rig},
            "scenario": f.scenario, "dispersions": f.dispersions}
    cs = campaign_spec(camp, source=src)
    nominal = apply_overrides(resolve_scenario(cs.scenario), cs.overrides, f"{src}: [scenario]")
    from harness.campaign.worker import rig_spec

    source_dir = rig_spec(cs.rig).source_dir  # the registry of the flight code that flies

    def applies(path: str, value: float, key: str) -> None:
        check_flight_params(apply_overrides(nominal, {path: value}, f"{src}: {key}"), f"{src}: {key}", source_dir)

    params = []
    for path, table in _flatten_params(f.parameters).items():
        r = validate(ParameterRange, table, src, where=("parameters", path))
        if path in cs.overrides:
            raise ConfigError(f"{src}: [parameters] {path!r} is also fixed in [scenario]; allowed: a path in one "
                              f"of the two")
        for v in (r.low, r.high):
            applies(path, v, f"[parameters.{path}]")
        params.append(Parameter(path=path, low=r.low, high=r.high, scale=r.scale))

    b = f.boundary
    if b is not None:
        for v in (b.low, b.high):
            applies(b.parameter, v, f"[boundary] parameter = {value_text(b.parameter)}")
        if b.parameter in {d.path for d in cs.dispersions} | set(cs.overrides):
            raise ConfigError(f"{src}: [boundary] parameter = {value_text(b.parameter)} is also fixed in [scenario] "
                              f"or dispersed in [dispersions]; allowed: a path in only one of them")
    if not params and b is None:
        raise ConfigError(f"{src}: [parameters] is empty; allowed: at least one \"dotted.path\" = "
                          f"{{low = .., high = ..}} (or a [boundary] table for fsil falsify --boundary)")
    return FalsifySpec(name=cs.name, scenario=cs.scenario, requirements=tuple(t.requirements),
                       parameters=tuple(params), optimizer=t.optimizer, budget=t.budget, seed=t.seed,
                       run_seed=None if t.run_seed == "per-run" else t.run_seed, batch=t.batch,
                       run_timeout_s=t.run_timeout_s, description=t.description, overrides=dict(cs.overrides),
                       dispersions=cs.dispersions, boundary=b, source=src, text=text, rig=cs.rig,
                       rig_as_written=t.rig)


def _flatten_params(d: dict, prefix: str = "") -> dict:
    """``[parameters.nav_error] altitude_m = {..}`` -> ``nav_error.altitude_m``: a table without
    low or high that holds tables is a group of paths; any other value is one parameter's table."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not ({"low", "high"} & set(v)) and any(isinstance(x, dict) for x in v.values()):
            out.update(_flatten_params(v, key + "."))
        else:
            out[key] = v
    return out
