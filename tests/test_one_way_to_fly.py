"""One way to fly a rig (issue 12): the CLI, the demo, the pytest fixture and the campaign worker
all fly through ``open_rig(...)`` + ``Rig.fly``, so a rig file's [timing] and [flight_code]
settings hold on every path; no module of the harness calls ``runner.fly`` but rigs.py."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.campaign.worker import fly_one, npz_load
from harness.link import replay_link_log

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
DECIMATION = 7  # distinctive: no shipped rig or scenario uses it
CYCLE_TIMEOUT_S = 0.37


@pytest.fixture
def distinctive_rig(tmp_path):
    path = tmp_path / "distinctive.toml"
    path.write_text(f'[rig]\nname = "distinctive"\nkind = "loopback"\n'
                    f'[flight_code]\nparams = {{ TLM_DECIMATION = {DECIMATION} }}\n'
                    f'[timing]\ncycle_timeout_s = {CYCLE_TIMEOUT_S}\nstall_cycles = 4\n')
    return path


def _est_alt_update_share(est_alt: np.ndarray) -> float:
    """Share of cycles in which the flight code's reported altitude estimate changed: about 1 when
    TELEMETRY comes every cycle, about 1/DECIMATION when the rig's decimation reached it."""
    a = est_alt[np.isfinite(est_alt)]
    return float(np.count_nonzero(np.diff(a))) / max(1, a.size - 1)


def _assert_flown_with_the_rig(folder: Path):
    settings = json.loads((folder / "rig.json").read_text())
    assert settings["name"] == "distinctive" and settings["cycle_timeout_s"] == CYCLE_TIMEOUT_S
    assert settings["stall_cycles"] == 4
    sent = [f.msg for f in replay_link_log(folder / "link.log")["H>F"] if type(f.msg).__name__ == "Config"]
    assert any(c.param_id == 19 and c.value == DECIMATION for c in sent), "TLM_DECIMATION not sent"
    share = _est_alt_update_share(np.load(folder / "telemetry.npz")["est_alt_m"])
    assert share < 2.0 / DECIMATION, share


def test_fsil_run_flies_through_the_rig(distinctive_rig, tmp_path, capsys):
    cli.main(["run", "nominal-terminal-descent", "--rig", str(distinctive_rig), "--out", str(tmp_path / "runs")])
    assert " on distinctive " in capsys.readouterr().out
    (folder,) = (tmp_path / "runs").iterdir()
    _assert_flown_with_the_rig(folder)


def test_fsil_demo_flies_through_the_rig(distinctive_rig, tmp_path):
    cli.main(["demo", "--rig", str(distinctive_rig), "--out", str(tmp_path / "demo")])
    flights = sorted(p for p in (tmp_path / "demo").iterdir() if p.is_dir())
    assert len(flights) == 3  # the nominal descent, M2 as flown, M2 fixed
    for folder in flights:
        _assert_flown_with_the_rig(folder)


def test_the_pytest_fly_fixture_flies_through_the_rig(distinctive_rig, pytester):
    pytester.makepyfile(test_it="""
        from harness.scenario_files import terminal_descent

        def test_it(fly):
            fly(terminal_descent(t_max_s=20.0))
    """)
    art = pytester.path / "art"
    pytester.runpytest("--rig", str(distinctive_rig), "--fsil-artifacts", str(art), "-p", "no:cacheprovider"
                       ).assert_outcomes(passed=1)
    (folder,) = art.glob("*/nominal-terminal-descent")
    _assert_flown_with_the_rig(folder)


def test_the_campaign_worker_flies_through_the_rig(distinctive_rig):
    task = {"run_id": 1, "scenario": "nominal-terminal-descent", "overrides": {"t_max_s": 20.0}, "seed": 3,
            "keep_telemetry": "all", "rig": str(distinctive_rig)}
    out = fly_one(task)
    assert out["status"] == "done", out.get("error")
    share = _est_alt_update_share(npz_load(out["telemetry"])["est_alt_m"])
    assert share < 2.0 / DECIMATION, share
    # and the default rig (loopback) sends TELEMETRY every cycle: the check above can tell
    plain = fly_one({**task, "rig": "loopback"})
    assert _est_alt_update_share(npz_load(plain["telemetry"])["est_alt_m"]) > 0.9


def _runner_fly_calls(path: Path) -> list[str]:
    """Where ``harness.runner.fly`` is imported or called in ``path`` (file:line)."""
    tree = ast.parse(path.read_text(), str(path))
    runner_names, hits = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "runner":
            for a in node.names:
                if a.name == "fly":
                    hits.append(f"{path.relative_to(REPO)}:{node.lineno} imports runner.fly")
        elif isinstance(node, ast.ImportFrom) and node.module in ("harness", None):
            runner_names |= {a.asname or a.name for a in node.names if a.name == "runner"}
        elif isinstance(node, ast.Import):
            runner_names |= {a.asname or a.name for a in node.names if a.name == "harness.runner"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "fly":
            base = ast.unparse(node.value)
            if base in runner_names or base == "harness.runner":
                hits.append(f"{path.relative_to(REPO)}:{node.lineno} calls {base}.fly")
    return hits


def test_only_rigs_py_calls_runner_fly():
    hits = [h for f in sorted((REPO / "harness").rglob("*.py")) if f.name != "rigs.py" or f.parent.name != "harness"
            for h in _runner_fly_calls(f)]
    assert hits == [], "fly through open_rig(...) + Rig.fly instead:\n" + "\n".join(hits)
    assert _runner_fly_calls(REPO / "harness" / "rigs.py"), "the checker no longer sees Rig.fly's call"


def test_artefact_folders_named_after_scenarios_stay_inside_the_output_folder(tmp_path, pytester):
    """issue 13: a scenario named ../../x wrote its artefacts outside the output folder."""
    scen = tmp_path / "evil.toml"
    text = (REPO / "harness/data/scenarios/nominal-terminal-descent.toml").read_text()
    import re
    scen.write_text(re.sub(r'(?m)^name\s*=\s*".*"$', 'name = "../../escaped"', text, count=1))
    out = tmp_path / "a" / "b" / "runs"
    cli.main(["run", str(scen), "--out", str(out)])
    assert not (tmp_path / "a" / "escaped").exists() and not (out.parent.parent / "escaped").exists()
    assert [p.name for p in out.iterdir()] == ["_.._escaped"]
    pytester.makepyfile(test_evil="""
        from harness.scenario_files import terminal_descent

        def test_it(fly):
            fly(terminal_descent(name="../../../escaped", t_max_s=1.0))
    """)
    art = pytester.path / "deep" / "art"
    pytester.runpytest("--fsil-artifacts", str(art), "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert not (pytester.path / "escaped").exists() and not (pytester.path / "deep" / "escaped").exists()
    assert [p.name for p in art.glob("*/*")] == ["_.._.._escaped"]


def test_a_bad_rig_file_fails_the_pytest_run_naming_file_and_key(tmp_path, pytester):
    """issue 13: a URL as the port path named no file or key, and pytest skipped with exit 0."""
    rig = tmp_path / "url.toml"
    rig.write_text('[rig]\nkind = "usb-mcu"\n[port]\npath = "http://example.com/port"\n')
    pytester.makepyfile(test_it="""
        from harness.scenario_files import terminal_descent

        def test_it(fly):
            fly(terminal_descent(t_max_s=1.0))
    """)
    result = pytester.runpytest("--rig", str(rig), "-p", "no:cacheprovider")
    assert result.ret != 0
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{rig}: [[]port[]] path = 'http://example.com/port' is invalid*"])
