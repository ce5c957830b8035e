"""Campaigns over a team's own flight code: ``[campaign] rig`` names a rig file (relative to the
spec) whose flight code is the team's source tree, and every run flies it, booted afresh, on the
workers; the same tree on another rig gives the same bits; a rerun flies the campaign's rig; a
database cannot be resumed with another rig; a rig over one physical board flies one run at a time.
"""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harness.campaign import load_spec, rerun, results, run_campaign
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
METRICS = ("outcome", "v_vertical", "v_horizontal", "tilt_deg", "propellant_kg", "touchdown_t_s")

SPEC = """
[campaign]
name = "own-{tag}"
scenario = "nominal-terminal-descent"
seed = 11
runs_per_point = 4
rig = "{rig}"
keep_telemetry = "all"
[dispersions]
"v_up_mps" = {{ dist = "uniform", low = -33.0, high = -27.0 }}
"""


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """The reference source tree copied as a team's own, with a stiffer vertical-velocity loop
    (its own registry default GUID_KV 0.5 -> 0.9 1/s), and two rig files over it."""
    d = tmp_path_factory.mktemp("team")
    src = d / "our_fsw"
    shutil.copytree(REPO / "firmware_stub", src, ignore=shutil.ignore_patterns("targets", "*.md"))
    reg = src / "fsw_params.def"
    text = reg.read_text()
    assert "FSW_PARAM(40, GUID_KV,         0.5," in text
    reg.write_text(text.replace("FSW_PARAM(40, GUID_KV,         0.5,", "FSW_PARAM(40, GUID_KV,         0.9,"))
    (d / "ours-inproc.toml").write_text('[rig]\nname = "ours-inproc"\nkind = "loopback"\n'
                                        '[flight_code]\nsource_dir = "our_fsw"\n')
    (d / "ours-pty.toml").write_text('[rig]\nname = "ours-pty"\nkind = "host-pty"\n'
                                     '[flight_code]\nsource_dir = "our_fsw"\n')
    return d


def _spec(folder: Path, tag: str, rig: str) -> Path:
    p = folder / f"{tag}.toml"
    p.write_text(SPEC.format(tag=tag, rig=rig))
    return p


def _digests(db: Path) -> dict:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT run_id, telemetry_sha256 FROM runs"))


def test_a_campaign_flies_the_teams_own_flight_code_on_its_rig_and_the_same_bits_on_another(team, tmp_path):
    ours = run_campaign(_spec(team, "inproc", "ours-inproc.toml"), tmp_path / "inproc.sqlite", workers=2,
                        progress=False)
    assert (ours.table["status"] == "done").all(), ours.table["error"]
    ref = run_campaign(_spec(team, "ref", "loopback"), tmp_path / "ref.sqlite", workers=2, progress=False)
    # the same dispersed runs (same seed, same plan), another flight code: another descent
    assert np.array_equal(ours.table["run_id"], ref.table["run_id"])
    assert all(o == "landed" for o in ours.table["outcome"]), ours.table["outcome"]
    assert not np.array_equal(ours.table["touchdown_t_s"], ref.table["touchdown_t_s"])
    assert _digests(tmp_path / "inproc.sqlite") != _digests(tmp_path / "ref.sqlite")

    # the team's tree as a host program on a pseudo-terminal: bit for bit the in-process runs
    pty = run_campaign(_spec(team, "pty", "ours-pty.toml"), tmp_path / "pty.sqlite", workers=2, progress=False)
    assert (pty.table["status"] == "done").all(), pty.table["error"]
    for col in METRICS:
        assert np.array_equal(pty.table[col], ours.table[col]), col
    assert _digests(tmp_path / "pty.sqlite") == _digests(tmp_path / "inproc.sqlite")

    # a rerun flies the campaign's own rig again (the reference code would not reproduce it)
    r = rerun(tmp_path / "inproc.sqlite", 2, tmp_path / "again")
    assert r.reproduced, r.differences
    assert (tmp_path / "again" / "rig.json").read_text().count('"ours-inproc"') == 1

    # the same database with another rig is another campaign: refused, nothing flown
    with pytest.raises(ConfigError):
        run_campaign(_spec(team, "inproc", "loopback"), tmp_path / "inproc.sqlite", workers=1, progress=False)
    assert results(tmp_path / "inproc.sqlite").size == 4


def test_the_flight_params_of_a_campaign_are_checked_against_its_flight_codes_registry(team, tmp_path):
    # a parameter only the team's registry has is accepted on its rig, refused on the reference code
    src = team / "our_fsw"
    reg = src / "fsw_params.def"
    base = reg.read_text()
    extra = team / "extra_fsw"
    if not extra.exists():
        shutil.copytree(src, extra)
        (extra / "fsw_params.def").write_text(base + 'FSW_PARAM(90, OUR_GAIN,        1.0,       0.0,    10.0,  "-",     '
                                                     '"a parameter of our own")\n')
        (team / "extra.toml").write_text('[rig]\nkind = "loopback"\n[flight_code]\nsource_dir = "extra_fsw"\n')
    text = SPEC.format(tag="x", rig="extra.toml") + "[scenario.flight_params]\nOUR_GAIN = 2.0\n"
    spec = load_spec(team / "x.toml", text=text)
    assert spec.rig == str((team / "extra.toml").resolve())
    with pytest.raises(ConfigError) as err:
        load_spec(team / "y.toml", text=text.replace('rig = "extra.toml"', 'rig = "loopback"'))
    assert "OUR_GAIN" in str(err.value)


def test_a_rig_over_one_board_flies_one_run_at_a_time(tmp_path):
    spec = _spec(tmp_path, "board", "usb-mcu")
    with pytest.raises(ConfigError) as err:
        run_campaign(spec, tmp_path / "b.sqlite", workers=2, progress=False)
    assert "[campaign] rig = 'usb-mcu'" in str(err.value) and "--workers 1" in str(err.value)
    with pytest.raises(ConfigError) as err:
        run_campaign(spec, tmp_path / "b.sqlite", scheduler="tcp://127.0.0.1:1", progress=False)
    assert "Dask cluster" in str(err.value)
    assert not (tmp_path / "b.sqlite").exists()  # refused before anything was written


def test_a_falsification_search_flies_the_teams_own_flight_code(team, tmp_path):
    from harness.falsify import falsify, load_falsify_spec

    base = (REPO / "harness" / "data" / "falsify" / "m2_gate_fix_late_lrf.toml").read_text()
    assert 'run_timeout_s = 120\n' in base
    for tag, rig in (("ref", "loopback"), ("ours", "ours-inproc.toml")):
        (team / f"fz-{tag}.toml").write_text(base.replace('run_timeout_s = 120\n', f'run_timeout_s = 120\nrig = "{rig}"\n'))
    ours_spec = load_falsify_spec(team / "fz-ours.toml")
    assert ours_spec.rig == str((team / "ours-inproc.toml").resolve())
    assert ours_spec.digest != load_falsify_spec(team / "fz-ref.toml").digest
    runs = {}
    for tag in ("ref", "ours"):
        out = falsify(team / f"fz-{tag}.toml", tmp_path / f"{tag}.sqlite", optimizer="random", budget=3, workers=1,
                      progress=False, write_case=False)
        assert all(e.status == "done" for e in out.evaluations), [e.error for e in out.evaluations]
        runs[tag] = out.evaluations
    # the same candidate descents (same optimiser, seed, parameters), flown by two flight codes
    assert [e.params for e in runs["ref"]] == [e.params for e in runs["ours"]]
    assert [e.robustness for e in runs["ref"]] != [e.robustness for e in runs["ours"]]
