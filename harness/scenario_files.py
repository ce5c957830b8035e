"""Scenario TOML files: schema, validation, loading, and the scenario library.

``load_scenario(path_or_name, variant=None) -> Scenario``: a path to a TOML file, or the name
of a library scenario (harness/data/scenarios/<name>.toml, whose ``[scenario] name`` is that same
name: one name each); ``name:variant`` selects a variant (``hakuto-r-m1:fixed``). The library is
the only definition of a named scenario; ``scenario_by_name`` is the lookup the CLI and the
campaign specs share. The schema is in docs/scenarios.md; in short:

    [scenario]     name, description, mission, kind, lander, propellant_kg, t_max_s,
                   flight_rate_hz, plant_substeps, seed, required_params (parameter names the
                   flight code must accept), lost_command = "hold"|"engine-off"|"fail" (else the rig's)
    [initial]      altitude_m, downrange_m, crossrange_m, v_east_mps, v_north_mps, v_up_mps, tilt_deg
    [nav_error]    altitude_m, v_up_mps, v_east_mps
    [dispersion]   distribution = "normal"|"uniform", then <field> = sigma for DISPERSED_FIELDS
    [terrain]      type = "flat"|"crater_rim_step"|"crater", then that function's keyword arguments
    [lrf]          LrfConfig fields;  [imu] preset = "ideal"|"navigation_grade"|"tactical_grade" + ImuConfig fields
    [flight_params] NAME = value (firmware_stub/fsw_params.def)
    [[faults]]     type = <harness.faults.FAULT_TYPES key>, trigger, duration_s, id, parameters
    [pass]         outcomes, v_vertical_max, v_horizontal_max, tilt_max_deg, distance_max_m,
                   hard_landing_factor, max_position_error_m, min_propellant_kg
    [variants.<name>]  description, flight_params (merged), remove_faults (fault ids), expect (outcomes)

Every unknown key or bad value raises ``ConfigError`` naming the file, the key and what is allowed.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, create_model, field_validator

from harness.errors import ConfigError
from harness.safetext import printable
from harness.faults import make_fault
from harness.scenario import (DISPERSED_FIELDS, Dispersion, Envelope, NavError, PassCriteria, Scenario)
from harness.validation import INT64_MAX, KeyProblem, Model, check_values, read_toml, validate, value_text

SCENARIO_DIR = Path(__file__).resolve().parent / "data" / "scenarios"
OUTCOMES = ("landed", "off-site", "hard-landing", "crashed", "timeout", "link-failure")
KINDS = ("nominal", "historical", "test")
_IMU_PRESETS = ("ideal", "navigation_grade", "tactical_grade")


# ------------------------------------------------------------------------------------------
# the schema (harness/validation.py: errors name the file, [section] key, the value, the range)


def _outcomes(v, key: str) -> tuple:
    vals = [v] if isinstance(v, str) else v
    if not isinstance(vals, list) or not vals or any(x not in OUTCOMES for x in vals):
        raise KeyProblem(key, v, f"an outcome or a list of outcomes from {', '.join(OUTCOMES)}")
    return tuple(vals)


class _ScenarioTable(Model):
    name: str = Field(min_length=1)
    description: str = ""
    mission: str = ""
    kind: Literal["nominal", "historical", "test"] | None = None
    lander: str = Field("reference", min_length=1, description="a lander name or file")
    propellant_kg: Any = Field("terminal_descent", description="kg (0 .. 1e6) or the name of a [propellant_loads] "
                                                               "entry of the lander file")
    t_max_s: float = Field(400.0, ge=1e-3, le=1e6, description="s")
    flight_rate_hz: float = Field(50.0, ge=0.1, le=1e4, description="Hz")
    plant_substeps: int = Field(1, ge=1, le=1000)
    seed: int = Field(0, ge=0, le=INT64_MAX)
    required_params: list[str] = Field([], description="flight-code parameter names (fsw_params.def) the run "
                                                         "fails without")
    lost_command: Literal["hold", "engine-off", "fail"] | None = None

    @field_validator("required_params")
    @classmethod
    def _required(cls, v):
        from harness.params import load_param_table

        known = load_param_table()
        bad = [x for x in v if x not in known]
        if bad:
            raise KeyProblem("", v, f"a list of flight-code parameter names from firmware_stub/fsw_params.def "
                                    f"({', '.join(known)})")
        return v

    @field_validator("propellant_kg")
    @classmethod
    def _prop(cls, v):
        if isinstance(v, str) and v:
            return v  # a named load: checked against the lander file below
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1e6:
            raise KeyProblem("", v, "kg (0 .. 1e6) or the name of a [propellant_loads] entry of the lander file")
        return float(v)


class _InitialTable(Model):
    altitude_m: float = Field(3000.0, ge=0.0, le=1e7, description="m above the terrain below the start")
    downrange_m: float = Field(0.0, ge=-1e7, le=1e7, description="m east of the site")
    crossrange_m: float = Field(0.0, ge=-1e7, le=1e7, description="m north of the site")
    v_east_mps: float = Field(0.0, ge=-1e4, le=1e4, description="m/s")
    v_north_mps: float = Field(0.0, ge=-1e4, le=1e4, description="m/s")
    v_up_mps: float = Field(-60.0, ge=-1e4, le=1e4, description="m/s")
    tilt_deg: float = Field(0.0, ge=0.0, le=180.0, description="deg")


class _NavErrorTable(Model):
    altitude_m: float = Field(0.0, ge=-1e6, le=1e6, description="m, estimate minus truth")
    v_up_mps: float = Field(0.0, ge=-1e4, le=1e4, description="m/s")
    v_east_mps: float = Field(0.0, ge=-1e4, le=1e4, description="m/s")


class _PassTable(Model):
    outcomes: Any = Field(("landed",), description=f"outcomes from {', '.join(OUTCOMES)}")
    v_vertical_max: float = Field(2.0, ge=0.0, le=1e4, description="m/s")
    v_horizontal_max: float = Field(0.5, ge=0.0, le=1e4, description="m/s")
    tilt_max_deg: float = Field(12.0, ge=0.0, le=180.0, description="deg")
    distance_max_m: float = Field(2000.0, ge=0.0, le=1e7, description="m from the site")
    hard_landing_factor: float = Field(2.0, ge=1.0, le=100.0)
    max_position_error_m: float | None = Field(None, ge=0.0, le=1e7, description="m")
    min_propellant_kg: float | None = Field(None, ge=0.0, le=1e6, description="kg")

    @field_validator("outcomes")
    @classmethod
    def _out(cls, v):
        return _outcomes(v, "")


_DispersionTable = create_model(
    "_DispersionTable", __base__=Model,
    distribution=(Literal["normal", "uniform"], "normal"),
    **{k: (Annotated[float, Field(ge=0.0, le=1e7, description="1-sigma (normal) or half-width (uniform), "
                                                              "field units")] | None, None)
       for k in DISPERSED_FIELDS})


class _VariantTable(Model):
    description: str | None = None
    flight_params: dict[str, float] = Field({}, description="NAME = value (fsw_params.def)")
    remove_faults: list[str] = []
    expect: Any = None

    @field_validator("expect")
    @classmethod
    def _exp(cls, v):
        return None if v is None else _outcomes(v, "")


class _RequirementsTable(Model):
    names: list[Annotated[str, Field(min_length=1)]] = Field(
        [], description="names from harness.requirements.LIBRARY or STL formulas over the telemetry signals")

    @field_validator("names")
    @classmethod
    def _names(cls, v):
        from harness.requirements import check_requirement_list

        return check_requirement_list(v)


class ScenarioFile(Model):
    """A scenario TOML file (docs/scenarios.md). [terrain], [lrf], [imu], [[faults]] and
    [flight_params] are checked by their owners' schemas (terrain, sensor configs, faults, the
    parameter table)."""

    scenario: _ScenarioTable
    initial: _InitialTable = _InitialTable()
    nav_error: _NavErrorTable = _NavErrorTable()
    dispersion: _DispersionTable | None = None
    terrain: dict[str, Any] = {}
    lrf: dict[str, Any] = {}
    imu: dict[str, Any] = {}
    flight_params: dict[str, float] = Field({}, description="NAME = value (fsw_params.def)")
    faults: list[dict[str, Any]] = []
    # "pass" is a Python keyword: the model field is pass_, the file's key is pass
    pass_: _PassTable = Field(_PassTable(), alias="pass")
    variants: dict[str, _VariantTable] = {}
    requirements: _RequirementsTable = _RequirementsTable()


def _imu(table, src):
    from sensor_models._config import build_config, config_table
    from sensor_models.imu import ImuConfig
    table = dict(table)
    preset = table.pop("preset", None)
    if preset is None:
        base = ImuConfig()
    elif preset in _IMU_PRESETS:
        base = getattr(ImuConfig, preset)()
    else:
        raise ConfigError(f"{src}: [imu] preset = {value_text(preset)} is invalid; allowed: {', '.join(_IMU_PRESETS)}")
    return build_config(ImuConfig, config_table(ImuConfig, table, src, ("imu",)), src, ("imu",), base=base)


def _lrf(table, src):
    from sensor_models._config import build_config, config_table
    from sensor_models.lrf import LrfConfig
    return build_config(LrfConfig, config_table(LrfConfig, table, src, ("lrf",)), src, ("lrf",))


def _flight_params(table: dict, src, where="flight_params"):
    from harness.params import check_params, load_param_table
    check_params(table, load_param_table(), f"{src}: [{where}]")
    return {k: float(v) for k, v in table.items()}


def _dispersion(table, src):
    if table is None:
        return None
    got = table.model_dump(exclude_none=True)
    return Dispersion(got.pop("distribution"), tuple((k, got[k]) for k in DISPERSED_FIELDS if k in got))


def resolve_path(path_or_name) -> Path:
    """A scenario file: an existing path, or a library name (harness/data/scenarios/<name>.toml)."""
    p = Path(path_or_name)
    try:
        if p.suffix == ".toml" and p.exists():
            return p
        for cand in (SCENARIO_DIR / p.name, SCENARIO_DIR / f"{p.name}.toml"):
            if cand.suffix == ".toml" and cand.exists():
                return cand
    except (OSError, ValueError):  # a name the file system refuses (too long, a NUL byte): no such file
        pass
    raise ConfigError(f"{printable(str(path_or_name), 200)}: no such scenario file; library: "
                      f"{', '.join(library_names())}")


def library_names() -> list[str]:
    """Names of the library scenarios (file name = ``[scenario] name``)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def read_scenario_file(path) -> dict:
    """The TOML document of a scenario file (ConfigError naming the file when it cannot be read)."""
    return read_toml(Path(path), what="scenario file")


def variants(path_or_name) -> list[str]:
    """Names of the variants a scenario file defines (may be empty)."""
    doc = read_scenario_file(resolve_path(path_or_name))
    return list(doc.get("variants", {}))


def load_scenario(path_or_name, variant: str | None = None) -> Scenario:
    """Load and validate one scenario (see the module docstring)."""
    spec = str(path_or_name)
    if variant is None and ":" in spec and not Path(spec).exists():
        spec, variant = spec.rsplit(":", 1)
    path = resolve_path(spec)
    src = str(path)
    return scenario_from_dict(read_scenario_file(path), src, variant)


def scenario_from_dict(doc: dict, src: str = "<memory>", variant: str | None = None) -> Scenario:
    """A Scenario from a parsed scenario file (``src`` names it in errors)."""
    from harness.lander import load_lander
    from harness.terrain import terrain_from_table

    if isinstance(doc, dict) and isinstance(doc.get("faults"), dict):
        raise ConfigError(f"{src}: faults must be an array of tables ([[faults]]); got a single table [faults]")
    check_values(doc, src)
    f = validate(ScenarioFile, doc, src)
    head = f.scenario
    try:
        spec_l = load_lander(head.lander)
    except ConfigError as exc:
        raise ConfigError(f"{src}: [scenario] lander = {value_text(head.lander)}: {exc}") from None
    prop = head.propellant_kg
    if isinstance(prop, str):
        names = [k for k, _ in spec_l.propellant_loads_kg]
        if prop not in names:
            raise ConfigError(f"{src}: [scenario] propellant_kg = {prop!r} is invalid; allowed: kg or one of "
                              f"{', '.join(names)} (lander {head.lander!r})")
    faults = tuple(make_fault(ft, source=src, loc=("faults", i)) for i, ft in enumerate(f.faults))
    fparams = _flight_params(f.flight_params, src)
    pas = f.pass_
    env = Envelope(v_vertical_max=pas.v_vertical_max, v_horizontal_max=pas.v_horizontal_max,
                   tilt_max_deg=pas.tilt_max_deg, distance_max_m=pas.distance_max_m,
                   hard_landing_factor=pas.hard_landing_factor)
    crit = PassCriteria(outcomes=pas.outcomes, max_position_error_m=pas.max_position_error_m,
                        min_propellant_kg=pas.min_propellant_kg)
    head_set = head.model_dump(include={"t_max_s", "flight_rate_hz", "plant_substeps", "seed", "lost_command"}
                               & head.model_fields_set)
    if "required_params" in head.model_fields_set:
        head_set["required_params"] = tuple(head.required_params)
    sc = Scenario(
        name=head.name, description=head.description, lander=head.lander, propellant_kg=prop,
        terrain=terrain_from_table(f.terrain, src), lrf=_lrf(f.lrf, src),
        imu=_imu(f.imu, src), nav_error=NavError(**f.nav_error.model_dump()), flight_params=fparams, faults=faults,
        envelope=env, pass_criteria=crit, dispersion=_dispersion(f.dispersion, src),
        mission=head.mission, source=src, requirements=tuple(f.requirements.names), **head_set,
        **f.initial.model_dump(include=f.initial.model_fields_set))
    ids = [x.id for x in faults if x.id]
    for vname, vt in f.variants.items():   # validate every variant, whichever is asked for
        _flight_params(vt.flight_params, src, f"variants.{vname}.flight_params")
        bad = [x for x in vt.remove_faults if x not in ids]
        if bad:
            raise ConfigError(f"{src}: [variants.{vname}] remove_faults = {vt.remove_faults!r} is invalid "
                              f"({bad[0]!r} is not a fault id); allowed: fault ids ({', '.join(ids) or 'none defined'})")
    if variant is None:
        return sc
    if variant not in f.variants:
        raise ConfigError(f"{src}: variant {variant!r} not defined; allowed: {', '.join(f.variants) or 'none'}")
    vt = f.variants[variant]
    rm = set(vt.remove_faults)
    return sc.with_(
        name=f"{sc.name}-{variant}", variant=variant,
        description=vt.description if vt.description is not None else sc.description,
        flight_params=_flight_params(vt.flight_params, src),
        faults=tuple(x for x in faults if not (x.id and x.id in rm)),
        expect=vt.expect or ())


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _mission_date(mission: str) -> tuple:
    words = mission.replace(",", " ").lower().split()
    year = next((int(w) for w in reversed(words) if w.isdigit()), 9999)
    month = next((_MONTHS.index(w[:3]) for w in reversed(words) if w[:3] in _MONTHS), 12)
    return year, month


def historical_scenarios() -> list[Path]:
    """The library files of kind "historical", oldest mission first."""
    out = []
    for p in sorted(SCENARIO_DIR.glob("*.toml")):
        head = read_scenario_file(p).get("scenario", {})
        if head.get("kind") == "historical":
            out.append((_mission_date(head.get("mission", "")), p))
    return [p for _, p in sorted(out)]


# Names -------------------------------------------------------------------------------------------
#: Names that meant a library scenario before the library was its only definition: old -> new.
#: Accepted with a deprecation warning; to be removed.
DEPRECATED_NAMES = {
    "terminal-nominal": "nominal-terminal-descent",          # harness.scenario.terminal_descent()
    "m2-late-lrf": "ispace-m2",                               # harness.scenario.m2_late_lrf()
    "m2-late-lrf-fixed": "ispace-m2:fixed",
    "ispace-m2-late-lrf": "ispace-m2",                        # file names before they were the names
    "beresheet-imu-glitch": "beresheet",
    "chandrayaan2-over-braking": "chandrayaan2",
    "hakuto-r-m1-crater-rim": "hakuto-r-m1",
    "im1-dead-lrf": "im1",
    "im2-noisy-lrf": "im2",
    "luna25-accel-zero": "luna25",
    "slim-half-thrust": "slim",
}


def scenario_by_name(name: str) -> Scenario:
    """A scenario from what a user types: a library name (``ispace-m2``), ``NAME:VARIANT``
    (``ispace-m2:fixed``) or a TOML file path. A deprecated name warns and loads its successor;
    anything else raises ConfigError listing the library."""
    base, sep, variant = str(name).partition(":")
    if base in DEPRECATED_NAMES and not Path(name).exists():
        new = DEPRECATED_NAMES[base]
        new = new if not sep or ":" in new else f"{new}:{variant}"
        warnings.warn(f"scenario name {base!r} is deprecated; use {new!r}", FutureWarning, stacklevel=2)
        name = new
    try:
        return load_scenario(name)
    except ConfigError:
        spec = str(name).rsplit(":", 1)[0] if ":" in str(name) and not Path(name).exists() else str(name)
        if spec.endswith(".toml") or spec in library_names():
            raise   # the file exists (or was meant): its own error names the problem
        raise ConfigError(f"unknown scenario {name!r}; library: {', '.join(library_names())} "
                          f"(NAME:VARIANT selects a variant); or a scenario TOML file path") from None


def terminal_descent(**changes) -> Scenario:
    """The library's ``nominal-terminal-descent`` with some fields changed (``Scenario.with_``)."""
    sc = load_scenario("nominal-terminal-descent")
    return sc.with_(**changes) if changes else sc


__all__ = ["load_scenario", "scenario_by_name", "terminal_descent", "variants", "library_names",
           "historical_scenarios", "resolve_path", "SCENARIO_DIR", "DEPRECATED_NAMES"]


# The table of historical scenarios: as flown vs fixed ---------------------------------------------
def short_verdict(res) -> str:
    """One table cell: outcome, touchdown speeds and the decisive diagnosis."""
    parts = [res.outcome.upper()]
    td = res.touchdown
    if td:
        parts[0] += f" {td.v_vertical:.1f} m/s down, {td.v_horizontal:.1f} m/s horiz."
    else:
        tm = res.telemetry
        if tm["t_s"].size:
            parts[0] += f" (no touchdown in {res.sim_time_s:.0f} s; lowest {tm['altitude_m'].min():.0f} m, " \
                        f"ends {tm['altitude_m'][-1]:.0f} m up)"
    fv = res.first_valid_lrf()
    if fv is None:
        parts.append("no valid LRF sample")
    elif fv["altitude_m"] < 0.9 * res.scenario.altitude_m:
        parts.append(f"first valid LRF at {fv['altitude_m']:.0f} m")
    ig = res.lrf_ignored()
    if ig:
        parts.append(f"LRF rejected t={ig['from_t_s']:.1f}-{ig['to_t_s']:.1f} s ({ig['samples']} samples)")
    ee = res.max_estimate_error()
    if ee and abs(ee["error_m"]) > 20.0 and not res.landed and abs(res.scenario.nav_error.altitude_m) < 1000.0:
        parts.append(f"estimate error {ee['error_m']:+.0f} m at t={ee['t_s']:.1f} s")
    tm = res.telemetry
    ground = (tm["est_alt_m"] < 50.0) & (tm["altitude_m"] > 500.0)
    if ground.any():
        i = int(np.argmax(ground))
        parts.append(f"estimate {tm['est_alt_m'][i]:.0f} m while {tm['altitude_m'][i]:.0f} m up at "
                     f"t={tm['t_s'][i]:.1f} s")
    pnr = res.point_of_no_return()
    if pnr:
        parts.append(f"point of no return t={pnr['t_s']:.1f} s at {pnr['altitude_m']:.0f} m")
    return "; ".join(parts)


def historical_table(rig: str = "loopback", out=None) -> tuple[str, list]:
    """Fly every historical scenario as flown and fixed on ``rig``; return a Markdown table
    (mission, scenario, as-flown verdict, fixed verdict, the fix) and the results."""
    from harness.rigs import open_rig

    rows, results = [], []
    for path in historical_scenarios():
        cells = {}
        for variant in ("as_flown", "fixed"):
            sc = load_scenario(path, variant)
            with open_rig(rig) as up:
                res = up.fly(sc, artifacts=(Path(out) / sc.name) if out else None)
            results.append(res)
            ok = res.outcome in sc.expect
            cells[variant] = (short_verdict(res) + ("" if ok else f" **(expected {'/'.join(sc.expect)})**"), sc)
        fixed_sc = cells["fixed"][1]
        rows.append((fixed_sc.mission, f"`{path.stem}`", cells["as_flown"][0], cells["fixed"][0],
                     fixed_sc.description))
    head = ("mission", "scenario file", "as flown", "fixed", "fix (variant `fixed`)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines), results
