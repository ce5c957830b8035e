"""Property test of every config loader against hostile values: take a shipped file (scenario,
campaign spec, falsification spec, rig, lander), put a wrong value at any key (wrong type, NaN-free
extremes, control characters, nested lists and tables, a 5,000-character name), delete a key or add
an unknown one, and load it. The only exception allowed out is a ConfigError (an FsilError): the
CLI turns it into exit 2 and one line. Before the fixes that came with this test, a list or a table
where a fault type, terrain type, dispersion dist or trigger goes, text as a flight-code parameter
of a spec's [scenario], or a scenario name too long for the file system escaped as TypeError,
ValueError or OSError (tracebacks)."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.campaign.spec import spec_from_dict as campaign_from_dict
from harness.errors import FsilError
from harness.falsify.spec import spec_from_dict as falsify_from_dict
from harness.lander import lander_from_dict
from harness.rigs import rig_from_dict
from harness.scenario_files import scenario_from_dict

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "harness" / "data"
LOADERS = {"scenarios": scenario_from_dict, "campaigns": campaign_from_dict, "falsify": falsify_from_dict}
FILES = [(p, LOADERS[p.parent.name]) for d in LOADERS for p in sorted((DATA / d).glob("*.toml"))]
FILES += [(p, rig_from_dict) for p in sorted((REPO / "rigs").glob("*.toml"))]
FILES += [(DATA / "landers" / "reference.toml", lander_from_dict)]
DOCS = [(p, fn, tomllib.loads(p.read_text())) for p, fn in FILES]

# TOML can write every one of these (no None: TOML has no null; NaN/inf are refused by the reader
# before any loader sees them, tests/test_validation.py)
HOSTILE = st.sampled_from([
    True, 0, -1, 2 ** 63 - 1, -2 ** 63, 1e308, -1e308, 5e-324, -0.0, "", "x", "\x00\x1b[2J", "ünïcødé", "a" * 5000,
    [], [1], [[[]]], [["a"]], {}, {"a": 1}, {"type": "x"}, {"dist": {"a": 1}}, [1.0, 2.0, 3.0], ["a", 1], "inf",
    "nan", 10 ** 18, 7, "start", {"altitude_m": [1]}])


HOT_KEYS = {"type", "dist", "trigger", "flight_params", "scenario", "kind", "duration_s", "sampling", "optimizer",
            "run_seed", "phase", "lander", "propellant"}


def _paths(doc, path=()):
    """Every key path of a TOML document (tables, arrays and leaves)."""
    if path:
        yield path
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from _paths(v, (*path, k))


@st.composite
def mutated(draw):
    path, loader, doc = draw(st.sampled_from(DOCS))
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        keys = list(_paths(doc))
        if not keys:
            break
        # keys whose value picks a type or a table (a fault's type, a dist, a trigger, a parameter
        # set) are where a wrong type got past the schema: drawn as often as all others together
        hot = [k for k in keys if k[-1] in HOT_KEYS or (len(k) > 1 and k[-2] == "flight_params")]
        where = draw(st.sampled_from(hot if hot and draw(st.booleans()) else keys))
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["set", "set", "set", "delete", "unknown"]))
        if action == "set":
            parent[where[-1]] = copy.deepcopy(draw(HOSTILE))
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent["zz_unknown"] = 1
    return path, loader, doc


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_hostile_value_anywhere_in_a_shipped_file_is_a_config_error(case):
    path, loader, doc = case
    try:
        loader(doc, str(path))
    except FsilError:
        pass


@pytest.mark.parametrize("argv", [["run", "a" * 5000], ["run", "a" * 5000 + ".toml"]], ids=["name", "file"])
def test_a_scenario_name_too_long_for_the_file_system_exits_2(argv, capsys, tmp_path):
    """Path.exists() raised OSError (File name too long) out of the scenario lookup."""
    from harness.cli import main

    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert ("no such scenario file" in err or "unknown scenario" in err) and "File name too long" not in err
