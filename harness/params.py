"""Flight-code parameters, read from the single source of truth ``firmware_stub/fsw_params.def``."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.filestamp import settled, stamp
from harness.validation import value_text

DEFAULT_SOURCE_DIR = Path(__file__).resolve().parent.parent / "firmware_stub"
_LINE = re.compile(r'^\s*FSW_PARAM\(\s*(\d+)\s*,\s*(\w+)\s*,\s*([^,]+?)\s*,\s*([^,]+?)\s*,\s*([^,]+?)\s*,'
                   r'\s*"([^"]*)"\s*,\s*"([^"]*)"\s*\)')


@dataclass(frozen=True)
class ParamSpec:
    """One flight-code parameter: protocol id, name, default, allowed range, SI unit."""

    id: int
    name: str
    default: float
    min: float
    max: float
    unit: str
    doc: str


def _number(text: str) -> float:
    return float(text.rstrip("fFuUlL")) if not text.startswith("0x") else float(int(text, 16))


_TABLES: dict[tuple, dict[str, ParamSpec]] = {}  # {(path, its stamp): table}


def load_param_table(source_dir: Path | str | None = None) -> dict[str, ParamSpec]:
    """Parse ``fsw_params.def`` of a flight-code source tree into ``{name: ParamSpec}`` (the same
    dict again, not to be changed, while the file is unchanged: ``harness.filestamp``)."""
    path = os.path.join(source_dir or DEFAULT_SOURCE_DIR, "fsw_params.def")
    key = (path, stamp(path))
    table = _TABLES.get(key)
    if table is None:
        table = _parse_param_table(Path(path))
        if settled(key[1]):
            if len(_TABLES) > 8:
                _TABLES.clear()
            _TABLES[key] = table
    return table


def _parse_param_table(path: Path) -> dict[str, ParamSpec]:
    table: dict[str, ParamSpec] = {}
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            pid, name, default, lo, hi, unit, doc = m.groups()
            table[name] = ParamSpec(int(pid), name, _number(default), _number(lo), _number(hi), unit, doc)
    if not table:
        raise ConfigError(f"{path}: no FSW_PARAM(...) lines found")
    wrong = [f"{name} (id {pid})" + (f", not id {table[name].id}" if name in table else "")
             for name, pid in CORE_PARAMS.items() if name not in table or table[name].id != pid]
    if wrong:
        # every consumer (runner, conform, rig and scenario checks) sends CONFIG frames by this table:
        # a core parameter missing from it would silently never be sent
        raise ConfigError(f"{path}: lacks the core parameters {', '.join(wrong)}; the harness sends them to "
                          f"every flight code under these protocol ids (docs/protocol.md, \"Parameters\"). Copy "
                          f"the protocol's id registry {DEFAULT_SOURCE_DIR.name}/fsw_params.def and append "
                          f"parameters of your own with new ids")
    return table


def check_params(values: dict[str, float], table: dict[str, ParamSpec], origin: str) -> None:
    """Raise ConfigError naming ``origin``, the parameter and its allowed range for any bad entry."""
    for name, value in values.items():
        spec = table.get(name)
        if spec is None:
            raise ConfigError(f"{origin}: unknown flight-code parameter {name!r} (the names are those of the id "
                              f"registry fsw_params.def the harness sends CONFIG frames by: the rig's [flight_code] "
                              f"source_dir's, else {DEFAULT_SOURCE_DIR.name}/fsw_params.def; a parameter of your "
                              f"own needs a line there with a new id); known: {', '.join(sorted(table))}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{origin}: flight-code parameter {name} = {value_text(value)} is invalid; allowed: a "
                              f"number in [{spec.min}, {spec.max}] {spec.unit}")
        if not (spec.min <= float(value) <= spec.max):
            raise ConfigError(f"{origin}: flight-code parameter {name} = {value} {spec.unit} is outside "
                              f"the allowed range [{spec.min}, {spec.max}] {spec.unit}")


#: The core parameters (protocol v2, docs/protocol.md "Parameters"): every flight code MUST
#: accept these ids (1-18: initial state, vehicle, site, gravity); a refusal fails the run.
#: Every other id is optional: refused -> not applied, the run goes on and says so.
CORE_PARAMS: dict[str, int] = {
    "NAV_R0_X": 1, "NAV_R0_Y": 2, "NAV_R0_Z": 3, "NAV_V0_X": 4, "NAV_V0_Y": 5, "NAV_V0_Z": 6,
    "NAV_Q0_W": 7, "NAV_Q0_X": 8, "NAV_Q0_Y": 9, "NAV_Q0_Z": 10, "MASS0": 11,
    "SITE_R_X": 12, "SITE_R_Y": 13, "SITE_R_Z": 14, "THRUST_MAX": 15, "ISP": 16, "THROTTLE_MIN": 17, "GM": 18,
}


def is_core(spec: ParamSpec) -> bool:
    """True for a core parameter (by protocol id; the name must agree with the registry)."""
    return CORE_PARAMS.get(spec.name) == spec.id
