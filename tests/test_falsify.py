"""fsil falsify: spec validation, the optimisers on a known landscape, resume, boundary search,
the falsified case as a scenario file that flies again with the same robustness, and the CLI."""
from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.falsify import InProcessExecutor, check_case, falsify, load_falsify_spec
from harness.falsify.boundary import fit_crossing, locate_boundary

DATA = Path(__file__).resolve().parents[1] / "harness" / "data" / "falsify"

SPEC = """
[falsify]
name = "t"
scenario = "ispace-m2"
requirements = ["touchdown_vertical"]
optimizer = "{opt}"
budget = {budget}
seed = {seed}
[scenario]
flight_params = {{ LRF_GATE_POLICY = 1, CONTINGENCY_ENABLE = 0 }}
[parameters]
"faults.0.acquire_altitude_m" = {{ low = 50.0, high = 3000.0 }}
"nav_error.altitude_m" = {{ low = 700.0, high = 1500.0 }}
"""


def _spec(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


class Landscape:
    """A stand-in executor: the 'descent' is a closed-form robustness of the parameters, so the
    optimisers' plumbing is tested without flying. Failing region: a small disc near a corner."""

    name = "landscape"
    workers = 2

    def __init__(self):
        self.flown = []

    def describe(self):
        return "closed-form landscape"

    def run(self, tasks, timeout_s, fn=None):
        for t in tasks:
            a = (t["overrides"]["faults.0.acquire_altitude_m"] - 50.0) / 2950.0
            n = (t["overrides"]["nav_error.altitude_m"] - 700.0) / 800.0
            rob = math.hypot(a - 0.9, n - 0.9) - 0.06       # < 0 inside a disc of radius 0.06
            self.flown.append(t["run_id"])
            yield {"run_id": t["run_id"], "status": "done", "outcome": "crashed" if rob < 0 else "landed",
                   "objective": rob, "robustness": [["touchdown_vertical", rob, 1.0, "m/s", "f"]],
                   "failure_mode": "", "error": ""}

    def close(self, cancel=False):
        pass


@pytest.mark.parametrize("opt", ["cma", "de", "dual_annealing", "tpe", "random"])
def test_each_optimizer_finds_the_small_failing_region_and_resumes_without_flying(tmp_path, opt):
    spec = _spec(tmp_path, SPEC.format(opt=opt, budget=400, seed=3))
    ex = Landscape()
    out = falsify(spec, tmp_path / "f.sqlite", executor=ex, progress=False, write_case=False)
    assert out.falsified is not None, out.summary()
    e = out.falsified
    assert math.hypot((e.params["faults.0.acquire_altitude_m"] - 50) / 2950 - 0.9,
                      (e.params["nav_error.altitude_m"] - 700) / 800 - 0.9) < 0.06
    assert all(x.objective >= 0 for x in out.evaluations[: e.idx])      # the first violation is reported
    n = len(ex.flown)
    again = falsify(spec, tmp_path / "f.sqlite", executor=ex, progress=False, write_case=False)
    assert len(ex.flown) == n                                           # replayed, nothing flown
    assert again.descents_to_violation == out.descents_to_violation
    assert [x.u for x in again.evaluations] == [x.u for x in out.evaluations]


def test_budget_is_respected_and_not_falsified_is_not_proof(tmp_path):
    spec = _spec(tmp_path, SPEC.format(opt="cma", budget=7, seed=1))
    out = falsify(spec, tmp_path / "f.sqlite", executor=_Never(), progress=False)
    assert out.falsified is None and out.descents == 7
    assert "not falsified within 7 descents" in out.summary() and "no proof" in out.summary()


class _Never(Landscape):
    def run(self, tasks, timeout_s, fn=None):
        for t in tasks:
            yield {"run_id": t["run_id"], "status": "done", "outcome": "landed", "objective": 1.0 + t["run_id"],
                   "robustness": [["touchdown_vertical", 1.0, 1.0, "m/s", "f"]], "failure_mode": "", "error": ""}


def test_resume_refuses_a_changed_problem(tmp_path):
    spec = _spec(tmp_path, SPEC.format(opt="random", budget=3, seed=1))
    falsify(spec, tmp_path / "f.sqlite", executor=_Never(), progress=False)
    changed = _spec(tmp_path, SPEC.format(opt="random", budget=3, seed=1).replace("low = 50.0", "low = 60.0"))
    with pytest.raises(ConfigError, match="different problem"):
        falsify(changed, tmp_path / "f.sqlite", executor=_Never(), progress=False)


@pytest.mark.parametrize("edit, match", [
    (("optimizer = \"cma\"", "optimizer = \"gradient\""),
     "\\[falsify\\] optimizer = 'gradient' is invalid; allowed: cma, de, dual_annealing, tpe, random"),
    (("low = 50.0, high = 3000.0", "low = 3000.0, high = 50.0"),
     "\\[parameters.faults.0.acquire_altitude_m\\] low = 3000.0 is invalid; allowed: below high \\(50\\)"),
    (("seed = 1", "seed = 1\nrun_seed = -1"), "\\[falsify\\] run_seed = -1 is invalid; allowed: an integer from 0"),
    (("seed = 1", "seed = 1\nrun_timeout_s = inf"), "\\[falsify\\] run_timeout_s = inf is not a finite number"),
    (("[\"touchdown_vertical\"]", "[]"), "\\[falsify\\] requirements = \\[\\] is invalid \\(too short\\)"),
    (("high = 1500.0 }", "high = 1500.0, scale = \"exp\" }"),
     "\\[parameters.nav_error.altitude_m\\] scale = 'exp' is invalid; allowed: linear, log"),
    (("\"nav_error.altitude_m\"", "\"nav_error.height\""), "NavError has no field 'height'"),
    (("[\"touchdown_vertical\"]", "[\"always(speed < 2)\"]"), "unknown signal 'speed'"),
    (("budget = 5", "budget = 5\ncolour = 1"), "unknown key 'colour' in \\[falsify\\]"),
])
def test_bad_specs_are_refused_naming_file_and_key(tmp_path, edit, match):
    text = SPEC.format(opt="cma", budget=5, seed=1).replace(*edit)
    p = _spec(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as exc:
        load_falsify_spec(p)
    assert str(p) in str(exc.value)
    assert main(["falsify", str(p), "--db", str(tmp_path / "x.sqlite")]) == 2


def test_fit_crossing_interval_covers_the_true_crossing():
    rng = np.random.default_rng(5)
    x = rng.uniform(300, 1500, 400)
    p = 1 / (1 + np.exp(-(x - 800.0) / 40.0))
    y = rng.random(400) < p
    c, (lo, hi), _ = fit_crossing(x, y, 300.0, 1500.0, 0.5)
    assert lo <= 800.0 <= hi and hi - lo < 60.0
    assert abs(c - 800.0) < 25.0
    # perfectly separated data: the interval is the gap between the last failure and first success
    c, (lo, hi), _ = fit_crossing([400, 500, 600, 900, 1000], [0, 0, 0, 1, 1], 300.0, 1500.0)
    assert lo <= 600.0 and hi >= 900.0 and lo < c < hi


class Logistic(Landscape):
    """Success probability 1 / (1 + exp(-(x - 760) / 45)) along the boundary parameter."""

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(11)

    def run(self, tasks, timeout_s, fn=None):
        for t in tasks:
            x = t["overrides"]["faults.0.acquire_altitude_m"]
            ok = self.rng.random() < 1 / (1 + math.exp(-(x - 760.0) / 45.0))
            self.flown.append(t["run_id"])
            yield {"run_id": t["run_id"], "status": "done", "outcome": "landed" if ok else "crashed",
                   "objective": 0.5 if ok else -3.0, "robustness": [], "failure_mode": "", "error": ""}


def test_boundary_search_locates_a_known_crossing_within_tolerance(tmp_path):
    text = (DATA / "m2_gate_fix_boundary.toml").read_text()
    spec = _spec(tmp_path, text)
    ex = Logistic()
    out = locate_boundary(spec, tmp_path / "b.sqlite", executor=ex, progress=False)
    assert out.converged and out.descents <= 150
    lo, hi = out.interval
    assert lo <= 760.0 <= hi and out.half_width <= 25.0
    assert "located within +-25" in out.summary()
    # every descent drew the campaign dispersions: recorded with the boundary value
    with sqlite3.connect(tmp_path / "b.sqlite") as db:
        params = db.execute("SELECT params_json FROM falsify_evals").fetchall()
    assert len(params) == out.descents and all("nav_error.altitude_m" in p[0] for p in params)


def test_falsified_case_flies_again_with_the_same_robustness(tmp_path):
    """Real descents: M2 gate fix, acquisition altitude free; random search, tiny budget."""
    spec = _spec(tmp_path, SPEC.format(opt="random", budget=4, seed=1).replace(
        '"touchdown_vertical"]', '"touchdown_vertical", "no_point_of_no_return"]'))
    out = falsify(spec, tmp_path / "f.sqlite", executor=InProcessExecutor(), progress=False,
                  out=tmp_path / "case.toml")
    assert out.falsified is not None and out.scenario_file == tmp_path / "case.toml"
    res, rob = check_case(spec, out.scenario_file)
    assert not res.landed
    for (name, value, t_worst, _unit, _f), again in zip(out.falsified.robustness, rob):
        assert again.requirement == name and again.value == value and again.t_worst_s == t_worst
    assert main(["falsify", str(spec), "--check", str(out.scenario_file)]) == 1
    assert main(["run", str(out.scenario_file), "--out", str(tmp_path / "runs")]) == 1


def test_cli_falsifies_on_the_local_process_pool(tmp_path, capsys):
    spec = _spec(tmp_path, SPEC.format(opt="random", budget=3, seed=1))
    assert main(["falsify", str(spec), "--db", str(tmp_path / "a.sqlite"), "--workers", "1", "--no-progress"]) == 1
    assert "FALSIFIED after" in capsys.readouterr().out
    assert (tmp_path / "t-falsified.toml").is_file()


def test_cli_exit_code_when_the_budget_is_survived(tmp_path, capsys, monkeypatch):
    import harness.campaign.executors as executors

    monkeypatch.setattr(executors, "make_executor", lambda **kw: InProcessExecutor())
    survive = SPEC.format(opt="random", budget=1, seed=1).replace("CONTINGENCY_ENABLE = 0", "CONTINGENCY_ENABLE = 1") \
        .replace("low = 50.0, high = 3000.0", "low = 2900.0, high = 3000.0").replace(
        "low = 700.0, high = 1500.0", "low = 700.0, high = 710.0")
    s2 = _spec(tmp_path, survive, "survive.toml")
    assert main(["falsify", str(s2), "--db", str(tmp_path / "b.sqlite"), "--workers", "1", "--no-progress"]) == 0
    assert "not falsified within 1 descents" in capsys.readouterr().out


def test_example_spec_digests_are_stable():
    """A stored search resumes only when the spec's digest is unchanged: loading the examples must
    give the digests their databases were written with."""
    want = {"accel_bias_corner": "ac30b4e6aae81450", "accel_bias_corner_4d": "14bf0d9445e8ecb5",
            "m2_fixed_survives": "82b5c4403e00f11a", "m2_gate_fix_boundary": "9b06581d6abd0421",
            "m2_gate_fix_late_lrf": "c7d032190c538e0d"}
    assert {n: load_falsify_spec(DATA / f"{n}.toml").digest for n in want} == want


def test_example_specs_load():
    for f in sorted(DATA.glob("*.toml")):
        if f.name.startswith("terminal-"):
            continue   # the base scenario of the examples
        s = load_falsify_spec(f)
        assert s.requirements and (s.parameters or s.boundary)
