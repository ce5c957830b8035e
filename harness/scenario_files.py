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
    [pass]         outcomes, v_vertical_max, v_horizontal_max, tilt_max_deg, max_position_error_m,
                   min_propellant_kg
    [variants.<name>]  description, flight_params (merged), remove_faults (fault ids), expect (outcomes)

Every unknown key or bad value raises ``ConfigError`` naming the file, the key and what is allowed.
"""
from __future__ import annotations

import functools
import inspect
import math
import tomllib
import warnings
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.faults import make_fault
from harness.scenario import (DISPERSED_FIELDS, Dispersion, Envelope, NavError, PassCriteria, Scenario)

SCENARIO_DIR = Path(__file__).resolve().parent / "data" / "scenarios"
OUTCOMES = ("landed", "hard-landing", "crashed", "timeout", "link-failure")
KINDS = ("nominal", "historical", "test")

_SECTIONS = ("scenario", "initial", "nav_error", "dispersion", "terrain", "lrf", "imu", "flight_params",
             "faults", "pass", "variants")
_SCENARIO_KEYS = {"name": str, "description": str, "mission": str, "kind": KINDS, "lander": str,
                  "propellant_kg": "propellant", "t_max_s": (1e-3, 1e6), "flight_rate_hz": (0.1, 1e4),
                  "plant_substeps": "int", "seed": "seed", "required_params": "param_names",
                  "lost_command": ("hold", "engine-off", "fail")}
_INITIAL_KEYS = {"altitude_m": (0.0, 1e7), "downrange_m": (-1e7, 1e7), "crossrange_m": (-1e7, 1e7),
                 "v_east_mps": (-1e4, 1e4), "v_north_mps": (-1e4, 1e4), "v_up_mps": (-1e4, 1e4),
                 "tilt_deg": (0.0, 180.0)}
_NAV_KEYS = {"altitude_m": (-1e6, 1e6), "v_up_mps": (-1e4, 1e4), "v_east_mps": (-1e4, 1e4)}
_PASS_KEYS = {"outcomes": "outcomes", "v_vertical_max": (0.0, 1e4), "v_horizontal_max": (0.0, 1e4),
              "tilt_max_deg": (0.0, 180.0), "max_position_error_m": (0.0, 1e7), "min_propellant_kg": (0.0, 1e6)}
_VARIANT_KEYS = ("description", "flight_params", "remove_faults", "expect")
_IMU_PRESETS = ("ideal", "navigation_grade", "tactical_grade")


def _terrains():
    from harness import terrain as t
    return {"flat": t.flat, "crater_rim_step": t.crater_rim_step, "crater": t.crater}


def _keys(table, allowed, where: str, src: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{src}: [{where}] must be a table; got {table!r}")
    for k in table:
        if k not in allowed:
            raise ConfigError(f"{src}: unknown key {k!r} in [{where}]; allowed keys: {', '.join(allowed)}")


def _value(v, rule, key: str, src: str):
    """Check one value against its rule; returns the value to use."""
    def bad(allowed):
        raise ConfigError(f"{src}: {key} = {v!r}; allowed: {allowed}")
    if rule is str:
        if not isinstance(v, str):
            bad("a string")
        return v
    if isinstance(rule, tuple) and rule and isinstance(rule[0], str):
        if v not in rule:
            bad(", ".join(rule))
        return v
    if isinstance(rule, tuple):
        lo, hi = rule
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or not lo <= v <= hi:
            bad(f"a number {lo:g} <= {key.split()[-1].split('.')[-1]} <= {hi:g}")
        return float(v)
    if rule == "int":
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
            bad("an integer 1 .. 1000")
        return v
    if rule == "seed":
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            bad("an integer >= 0")
        return v
    if rule == "propellant":
        if isinstance(v, str):
            return v      # a named load: checked against the lander file below
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1e6:
            bad("kg (0 .. 1e6) or the name of a [propellant_loads] entry of the lander file")
        return float(v)
    if rule == "param_names":
        from harness.params import load_param_table
        known = load_param_table()
        if not isinstance(v, list) or any(not isinstance(x, str) or x not in known for x in v):
            bad(f"a list of flight-code parameter names from firmware_stub/fsw_params.def ({', '.join(known)})")
        return tuple(v)
    if rule == "outcomes":
        vals = [v] if isinstance(v, str) else v
        if not isinstance(vals, list) or not vals or any(x not in OUTCOMES for x in vals):
            bad(f"a list of outcomes from {', '.join(OUTCOMES)}")
        return tuple(vals)
    raise AssertionError(rule)


def _section(doc, name, rules, src):
    table = doc.get(name, {})
    _keys(table, rules, name, src)
    return {k: _value(v, rules[k], f"[{name}] {k}", src) for k, v in table.items()}


def _terrain(table, src):
    if not table:
        return None
    terrains = _terrains()
    _keys(table, ["type"] + sorted({p for f in terrains.values() for p in inspect.signature(f).parameters
                                    if p != "site"}), "terrain", src)
    kind = table.get("type")
    if kind not in terrains:
        raise ConfigError(f"{src}: [terrain] type = {kind!r}; allowed: {', '.join(terrains)}")
    fn = terrains[kind]
    params = {p: q for p, q in inspect.signature(fn).parameters.items() if p != "site"}
    kw = {}
    for k, v in table.items():
        if k == "type":
            continue
        if k not in params:
            raise ConfigError(f"{src}: unknown key {k!r} in [terrain] for type {kind!r}; allowed keys: type, "
                              f"{', '.join(params)}")
        if isinstance(v, list):
            v = tuple(v)
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise ConfigError(f"{src}: [terrain] {k} = {v!r}; allowed: a number")
        kw[k] = v
    if kind == "flat":
        return None if not kw else functools.partial(fn, **kw)
    return functools.partial(fn, **kw)


def _imu(table, src):
    from sensor_models.imu import ImuConfig
    table = dict(table)
    preset = table.pop("preset", None)
    if preset is None:
        base = ImuConfig()
    elif preset in _IMU_PRESETS:
        base = getattr(ImuConfig, preset)()
    else:
        raise ConfigError(f"{src}: [imu] preset = {preset!r}; allowed: {', '.join(_IMU_PRESETS)}")
    ImuConfig.from_dict(table, f"{src}: [imu]")   # validates keys and values
    conv = {k: (tuple(v) if isinstance(v, list) else v) for k, v in table.items()}
    try:
        return base.replace(**conv)
    except ConfigError as e:
        raise ConfigError(f"{src}: [imu] {e}") from None


def _lrf(table, src):
    from sensor_models.lrf import LrfConfig
    return LrfConfig.from_dict(dict(table), f"{src}: [lrf]")


def _flight_params(table, src, where="flight_params"):
    from harness.params import check_params, load_param_table
    if not isinstance(table, dict):
        raise ConfigError(f"{src}: [{where}] must be a table of NAME = value")
    for k, v in table.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{src}: [{where}] {k} = {v!r}; allowed: a number")
    check_params(table, load_param_table(), f"{src}: [{where}]")
    return {k: float(v) for k, v in table.items()}


def _dispersion(table, src):
    if not table:
        return None
    _keys(table, ("distribution",) + DISPERSED_FIELDS, "dispersion", src)
    dist = table.get("distribution", "normal")
    if dist not in ("normal", "uniform"):
        raise ConfigError(f"{src}: [dispersion] distribution = {dist!r}; allowed: normal, uniform")
    sig = []
    for k in DISPERSED_FIELDS:
        if k in table:
            sig.append((k, _value(table[k], (0.0, 1e7), f"[dispersion] {k}", src)))
    return Dispersion(dist, tuple(sig))


def resolve_path(path_or_name) -> Path:
    """A scenario file: an existing path, or a library name (harness/data/scenarios/<name>.toml)."""
    p = Path(path_or_name)
    if p.suffix == ".toml" and p.exists():
        return p
    for cand in (SCENARIO_DIR / p.name, SCENARIO_DIR / f"{p.name}.toml"):
        if cand.suffix == ".toml" and cand.exists():
            return cand
    raise ConfigError(f"{path_or_name}: no such scenario file; library: {', '.join(library_names())}")


def library_names() -> list[str]:
    """Names of the library scenarios (file name = ``[scenario] name``)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def read_scenario_file(path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


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
    doc = read_scenario_file(path)
    _keys(doc, _SECTIONS, "top level", src)
    head = _section(doc, "scenario", _SCENARIO_KEYS, src)
    if "name" not in head:
        raise ConfigError(f"{src}: [scenario] name is missing; allowed: a string")
    init = _section(doc, "initial", _INITIAL_KEYS, src)
    nav = _section(doc, "nav_error", _NAV_KEYS, src)
    pas = _section(doc, "pass", _PASS_KEYS, src)
    lander = head.get("lander", "reference")
    from harness.lander import load_lander
    spec_l = load_lander(lander)
    prop = head.get("propellant_kg", "terminal_descent")
    if isinstance(prop, str):
        names = [k for k, _ in spec_l.propellant_loads_kg]
        if prop not in names:
            raise ConfigError(f"{src}: [scenario] propellant_kg = {prop!r}; allowed: kg or one of "
                              f"{', '.join(names)} (lander {lander!r})")
    faults_doc = doc.get("faults", [])
    if not isinstance(faults_doc, list):
        raise ConfigError(f"{src}: faults must be an array of tables ([[faults]])")
    faults = tuple(make_fault(f, f"{src}: [[faults]] #{i + 1}") for i, f in enumerate(faults_doc))
    fparams = _flight_params(doc.get("flight_params", {}), src)
    env = Envelope(**{k: pas[k] for k in ("v_vertical_max", "v_horizontal_max", "tilt_max_deg") if k in pas})
    crit = PassCriteria(**{k: pas[k] for k in ("outcomes", "max_position_error_m", "min_propellant_kg")
                           if k in pas})
    sc = Scenario(
        name=head["name"], description=head.get("description", ""), lander=lander, propellant_kg=prop,
        terrain=_terrain(doc.get("terrain", {}), src), lrf=_lrf(doc.get("lrf", {}), src),
        imu=_imu(doc.get("imu", {}), src), nav_error=NavError(**nav), flight_params=fparams, faults=faults,
        envelope=env, pass_criteria=crit, dispersion=_dispersion(doc.get("dispersion", {}), src),
        mission=head.get("mission", ""), source=src,
        **{k: head[k] for k in ("t_max_s", "flight_rate_hz", "plant_substeps", "seed", "required_params",
                                "lost_command") if k in head},
        **init)
    var_doc = doc.get("variants", {})
    if not isinstance(var_doc, dict):
        raise ConfigError(f"{src}: [variants] must be a table of [variants.<name>] tables")
    for vname, vt in var_doc.items():   # validate every variant, whichever is asked for
        _keys(vt, _VARIANT_KEYS, f"variants.{vname}", src)
        _flight_params(vt.get("flight_params", {}), src, f"variants.{vname}.flight_params")
        ids = [f.id for f in faults if f.id]
        rm = vt.get("remove_faults", [])
        if not isinstance(rm, list) or any(x not in ids for x in rm):
            raise ConfigError(f"{src}: [variants.{vname}] remove_faults = {rm!r}; allowed: fault ids "
                              f"({', '.join(ids) or 'none defined'})")
        if "expect" in vt:
            _value(vt["expect"], "outcomes", f"[variants.{vname}] expect", src)
    if variant is None:
        return sc
    if variant not in var_doc:
        raise ConfigError(f"{src}: variant {variant!r} not defined; allowed: {', '.join(var_doc) or 'none'}")
    vt = var_doc[variant]
    rm = set(vt.get("remove_faults", []))
    return sc.with_(
        name=f"{sc.name}-{variant}", variant=variant,
        description=vt.get("description", sc.description),
        flight_params=_flight_params(vt.get("flight_params", {}), src),
        faults=tuple(f for f in faults if not (f.id and f.id in rm)),
        expect=_value(vt["expect"], "outcomes", "expect", src) if "expect" in vt else ())


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
