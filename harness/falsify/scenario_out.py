"""Write a resolved Scenario as a scenario TOML file that flies again exactly (``fsil run FILE``).

The file is checked before it is kept: it is loaded back with ``harness.scenario_files`` and its
resolved scenario must equal the one that flew in every field that decides a descent (start
state, propellant, sensors, faults, flight-code parameters, envelope, seed, rates); otherwise
``ConfigError`` names the first field that would not round-trip and nothing is written.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.errors import ConfigError

# Scenario fields that name or describe a run but do not change what flies.
_DESCRIPTIVE = ("name", "description", "source", "mission", "variant", "expect", "dispersion")


def _plain(v):
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v   # TOML has inf and nan; tomllib reads them back as floats


def _trigger(tr) -> str | dict:
    if tr.kind == "start" and not tr.delay_s:
        return "start"
    key = {"start": None, "time": "time_s", "altitude": "altitude_m", "phase": "phase", "event": "event",
           "after": "after"}[tr.kind]
    if key is None:
        return {"time_s": 0.0, "delay_s": tr.delay_s}
    d = {key: tr.value}
    if tr.delay_s:
        d["delay_s"] = tr.delay_s
    return d


def _fault(f) -> dict:
    d = {"type": type(f).type_name}
    for fld in dataclasses.fields(f):
        if not fld.init:
            continue
        v = getattr(f, fld.name)
        if fld.name == "trigger":
            d["trigger"] = _trigger(v)
        elif v is None:
            continue
        elif fld.default is not dataclasses.MISSING and v == fld.default:
            continue   # the class default
        else:
            d[fld.name] = _plain(v)
    return d


def _fields(obj) -> dict:
    """The fields of a config dataclass that differ from its defaults."""
    default = type(obj)()
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if getattr(obj, f.name) is not None and getattr(obj, f.name) != getattr(default, f.name)}


def scenario_document(sc, *, name: str, description: str) -> dict:
    """The TOML document (a dict) of scenario ``sc`` for ``harness.scenario_files.load_scenario``."""
    head = {"name": name, "description": description, "kind": "test", "lander": sc.lander}
    if sc.mission:
        head["mission"] = sc.mission
    if sc.propellant_kg is not None:
        head["propellant_kg"] = sc.propellant_kg
    head.update(t_max_s=float(sc.t_max_s), flight_rate_hz=float(sc.flight_rate_hz),
                plant_substeps=int(sc.plant_substeps), seed=int(sc.seed))
    doc = {"scenario": head,
           "initial": {k: float(getattr(sc, k)) for k in ("altitude_m", "downrange_m", "crossrange_m", "v_east_mps",
                                                          "v_north_mps", "v_up_mps", "tilt_deg")},
           "nav_error": {k: float(v) for k, v in _fields(sc.nav_error).items()}}
    if sc.terrain is not None:
        doc["terrain"] = _terrain_table(sc)
    doc["lrf"] = _fields(sc.lrf)
    doc["imu"] = _fields(sc.imu)
    if sc.flight_params:
        doc["flight_params"] = {k: float(v) for k, v in sc.flight_params.items()}
    if sc.faults:
        doc["faults"] = [_fault(f) for f in sc.faults]
    env, crit = sc.envelope, sc.pass_criteria
    pas = {"outcomes": list(crit.outcomes), "v_vertical_max": env.v_vertical_max,
           "v_horizontal_max": env.v_horizontal_max, "tilt_max_deg": env.tilt_max_deg}
    if crit.max_position_error_m is not None:
        pas["max_position_error_m"] = crit.max_position_error_m
    if crit.min_propellant_kg is not None:
        pas["min_propellant_kg"] = crit.min_propellant_kg
    doc["pass"] = pas
    if getattr(sc, "requirements", ()):
        doc["requirements"] = {"names": list(sc.requirements)}
    return doc


def _terrain_table(sc) -> dict:
    from harness.scenario_files import read_scenario_file

    if sc.source and Path(sc.source).is_file():
        table = read_scenario_file(sc.source).get("terrain")
        if table:
            return dict(table)
    raise ConfigError(f"scenario {sc.name!r}: its terrain was built in Python, not from a scenario file; a "
                      f"scenario file cannot express it (use a base scenario with a [terrain] table)")


def _deciding(sc) -> dict:
    from harness.campaign.worker import scenario_json

    d = json.loads(scenario_json(sc))
    for k in _DESCRIPTIVE:
        d.pop(k, None)
    return d


def write_scenario(sc, path: str | Path, *, name: str, description: str, header: str = "") -> Path:
    """Write ``sc`` to ``path`` as a scenario file, after checking that it loads back to the same
    descent (see the module docstring). ``header``: comment lines put on top."""
    import tomli_w

    from harness.scenario_files import load_scenario

    path = Path(path)
    doc = scenario_document(sc, name=name, description=description)
    text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    text += ("\n" if header else "") + tomli_w.dumps(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.checking.toml")   # load_scenario wants a .toml name
    tmp.write_text(text)
    try:
        back = load_scenario(str(tmp))
        a, b = _deciding(sc), _deciding(back)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if diff:
            raise ConfigError(f"{path}: the scenario would not fly again exactly: field {diff[0]!r} is "
                              f"{a.get(diff[0])!r} in the flown run, {b.get(diff[0])!r} when loaded from the file")
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
