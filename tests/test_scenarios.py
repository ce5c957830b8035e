"""Scenario TOML files: schema validation, loading, variants, dispersion, the nominal library
scenarios, and ``fsil run`` / ``fsil scenarios`` on library names and paths."""
from __future__ import annotations

import pytest

from harness import faults as F
from harness.errors import ConfigError
from harness.scenario import FIXED, Scenario
from harness.scenario_files import (DEPRECATED_NAMES, SCENARIO_DIR, library_names, load_scenario,
                                     read_scenario_file, scenario_by_name, variants)

MINIMAL = """
[scenario]
name = "mini"
[initial]
altitude_m = 1000.0
v_up_mps = -20.0
"""


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_library_file_loads_with_every_variant():
    names = library_names()
    assert {"nominal-terminal-descent", "nominal-powered-descent", "hakuto-r-m1", "ispace-m2", "im1", "im2",
            "beresheet", "chandrayaan2", "luna25", "slim"} <= set(names)
    for n in names:
        sc = load_scenario(n)
        assert isinstance(sc, Scenario) and sc.source.endswith(".toml")
        for v in variants(n):
            assert load_scenario(f"{n}:{v}").variant == v


def test_load_by_name_and_path():
    a = load_scenario("slim")
    c = load_scenario(SCENARIO_DIR / "slim.toml")
    assert a == c
    assert isinstance(a.faults[0], F.ThrustLoss) and a.faults[0].trigger == F.below_altitude(50.0)


def test_variant_merges_flight_params_and_removes_faults():
    base = load_scenario("beresheet")
    fixed = load_scenario("beresheet", "fixed")
    assert [f.id for f in base.faults] == ["imu-glitch", "reset-engine-off"]
    assert [f.id for f in fixed.faults] == ["imu-glitch"]
    assert fixed.flight_params["LRF_GATE_POLICY"] == 1.0 and base.flight_params["LRF_GATE_POLICY"] == 0.0
    assert fixed.expect == ("landed",) and fixed.name == "beresheet-fixed"


def test_minimal_file_and_defaults(tmp_path):
    sc = load_scenario(write(tmp_path, MINIMAL))
    assert sc.name == "mini" and sc.altitude_m == 1000.0 and sc.v_up_mps == -20.0
    assert sc.lander == "reference" and sc.faults == () and sc.pass_criteria.outcomes == ("landed",)


def test_one_name_each_file_name_is_scenario_name():
    """A library scenario has one name: its file is <name>.toml and [scenario] name says the same."""
    for path in sorted(SCENARIO_DIR.glob("*.toml")):
        assert read_scenario_file(path)["scenario"]["name"] == path.stem, path
    assert library_names() == sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
    assert not set(DEPRECATED_NAMES) & set(library_names())


def test_deprecated_names_warn_and_load_their_successor():
    with pytest.warns(FutureWarning, match="'m2-late-lrf' is deprecated; use 'ispace-m2'"):
        assert scenario_by_name("m2-late-lrf") == load_scenario("ispace-m2")
    with pytest.warns(FutureWarning, match="use 'hakuto-r-m1:fixed'"):
        assert scenario_by_name("hakuto-r-m1-crater-rim:fixed").name == "hakuto-r-m1-fixed"
    with pytest.warns(FutureWarning):
        assert scenario_by_name("m2-late-lrf-fixed").variant == "fixed"
    for old, new in DEPRECATED_NAMES.items():   # every successor exists
        assert new.split(":")[0] in library_names(), (old, new)


def test_scenario_by_name_rejects_an_unknown_name_listing_the_library():
    with pytest.raises(ConfigError, match="unknown scenario 'terminal-lrf-latency'; library: .*ispace-m2"):
        scenario_by_name("terminal-lrf-latency")


def test_named_parameter_set_fixed_is_the_m2_fix():
    """``harness.scenario.FIXED`` (campaigns name it) is the fix of ispace-m2.toml, not a second copy
    that could drift from it."""
    m2 = load_scenario("ispace-m2")
    fixed = load_scenario("ispace-m2", "fixed")
    assert fixed.flight_params == {**m2.flight_params, **FIXED}


@pytest.mark.parametrize("text, words", [
    (MINIMAL + "[initial.extra]\n", ["unknown key 'extra'", "[initial]", "altitude_m"]),
    (MINIMAL + "[scenery]\nx = 1\n", ["unknown section [scenery]", "allowed sections", "faults", "variants"]),
    (MINIMAL.replace("altitude_m = 1000.0", "altitude_m = -5.0"), ["altitude_m", "-5.0", "0 <= altitude_m"]),
    (MINIMAL.replace("altitude_m = 1000.0", "altitude_m = \"high\""), ["altitude_m", "'high'", "a number"]),
    (MINIMAL + "[lrf]\nrate = 10\n", ["unknown key 'rate'", "rate_hz"]),
    (MINIMAL + "[lrf]\ndropout_prob = 2.0\n", ["dropout_prob", "2.0", "<= 1"]),
    (MINIMAL + "[imu]\npreset = \"consumer\"\n", ["preset", "navigation_grade", "tactical_grade"]),
    (MINIMAL + "[flight_params]\nLRF_GATE = 1\n", ["LRF_GATE", "unknown flight-code parameter"]),
    (MINIMAL + "[flight_params]\nLRF_GATE_POLICY = 7\n", ["LRF_GATE_POLICY", "outside"]),
    (MINIMAL + "[terrain]\ntype = \"moon\"\n", ["type", "flat", "crater_rim_step"]),
    (MINIMAL + "[terrain]\ntype = \"crater_rim_step\"\nrim = 3\n", ["unknown key 'rim'", "rim_radius_m"]),
    (MINIMAL + "[[faults]]\ntype = \"lrf_bias\"\nbias = 3\n", ["[[faults]] #1", "unknown key 'bias'", "bias_m"]),
    (MINIMAL + "[[faults]]\ntype = \"engine_off\"\ntrigger = { phase = \"coast\" }\n", ["trigger.phase", "terminal"]),
    (MINIMAL + "[pass]\noutcomes = [\"survived\"]\n", ["outcomes", "landed", "hard-landing"]),
    (MINIMAL + "[pass]\nv_vertical = 2\n", ["unknown key 'v_vertical'", "v_vertical_max"]),
    (MINIMAL + "[dispersion]\ndistribution = \"cauchy\"\n", ["distribution", "normal, uniform"]),
    (MINIMAL + "[variants.fixed]\nremove_faults = [\"x\"]\n", ["remove_faults", "fault ids"]),
    (MINIMAL + "[variants.fixed]\nflight_params = { NOPE = 1 }\n", ["variants.fixed.flight_params", "NOPE"]),
    (MINIMAL + "[variants.fixed]\nexpect = \"landed-ish\"\n", ["expect", "landed"]),
    (MINIMAL.replace("[scenario]\n", "[scenario]\npropellant_kg = \"lots\"\n"), ["propellant_kg", "terminal_descent"]),
    (MINIMAL.replace("[scenario]\n", "[scenario]\nkind = \"fiction\"\n"), ["kind", "nominal, historical, test"]),
    ("[scenario\n", ["not valid TOML"]),
])
def test_bad_files_name_the_file_the_key_and_the_allowed_values(tmp_path, text, words):
    p = write(tmp_path, text, "bad.toml")
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert str(p) in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_unknown_variant_and_unknown_name():
    with pytest.raises(ConfigError, match="variant 'best'.*allowed: as_flown, fixed"):
        load_scenario("slim", "best")
    with pytest.raises(ConfigError, match="no such scenario file.*hakuto-r-m1"):
        load_scenario("no-such-scenario")


def test_dispersion_draws_reproducibly():
    sc = load_scenario("nominal-terminal-descent")
    a, b, c = sc.dispersed(1), sc.dispersed(1), sc.dispersed(2)
    assert a == b and a != c and a.seed == 1
    assert a.altitude_m != sc.altitude_m and a.nav_error.altitude_m != sc.nav_error.altitude_m
    assert a.downrange_m == sc.downrange_m            # not dispersed in the file
    assert load_scenario("ispace-m2").dispersed(5).seed == 5  # no dispersion: only the seed


def test_nominal_terminal_descent_file_lands_and_passes(fly):
    sc = load_scenario("nominal-terminal-descent")
    res = fly(sc)
    assert res.outcome == "landed" and sc.passed(res), res.verdict()


def test_nominal_terminal_descent_dispersed_lands(fly):
    sc = load_scenario("nominal-terminal-descent").dispersed(11)
    res = fly(sc.with_(name="nominal-dispersed-11"))
    assert res.outcome == "landed", res.verdict()


def test_nominal_powered_descent_lands(fly):
    res = fly(load_scenario("nominal-powered-descent"))
    assert res.outcome == "landed", res.verdict()
    td = res.touchdown
    assert td.propellant_kg > 40.0 and td.position_error_m < 200.0, res.verdict()
    assert 550.0 < td.t_s < 750.0


def test_cli_run_flies_a_toml_path_and_writes_a_plot(tmp_path, capsys):
    from harness.cli import main

    p = write(tmp_path, MINIMAL.replace("[scenario]\n", "[scenario]\nt_max_s = 5.0\n"), "cli.toml")
    rc = main(["run", str(p), "--seed", "4", "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert rc == 1 and "mini on loopback" in out and "TIMEOUT" in out
    assert (tmp_path / "runs" / "mini" / "descent.png").exists()
    assert main(["run", "no-such-scenario"]) == 2
    assert "library:" in capsys.readouterr().err


def test_cli_scenarios_list(capsys):
    from harness.cli import main

    assert main(["scenarios", "list"]) == 0
    out = capsys.readouterr().out
    assert "hakuto-r-m1" in out and "variants: as_flown, fixed" in out


# ---------------------------------------------------------------------------------------------
# [requirements]: what the verdict reports and pytest asserts (issue 16)

SLOW_BELOW_50 = "always((alt_agl_m <= 50) implies (v_down_mps <= 3))"


def test_scenario_requirements_are_validated_naming_file_and_key(tmp_path):
    for names, words in (('["touchdown_envelop"]', ["touchdown_envelop", "touchdown_envelope"]),
                         ('["always(speed < 3)"]', ["speed", "v_down_mps"]),
                         ('["throttle_within_limits", "throttle_within_limits"]', ["once"])):
        p = write(tmp_path, MINIMAL + f"[requirements]\nnames = {names}\n")
        with pytest.raises(ConfigError) as ei:
            load_scenario(str(p))
        msg = str(ei.value)
        assert str(p) in msg and "requirements" in msg and all(w in msg for w in words), msg
    p = write(tmp_path, MINIMAL + "[requirements]\nname = ['touchdown_envelope']\n")
    with pytest.raises(ConfigError, match="names"):
        load_scenario(str(p))


def test_verdict_reports_the_robustness_of_the_scenario_requirements(tmp_path, fly):
    from harness.assertions import assert_requirement

    p = write(tmp_path, "[scenario]\nname = 'req'\nt_max_s = 200.0\n[requirements]\n"
                        f"names = ['touchdown_envelope', '{SLOW_BELOW_50}']\n")
    sc = load_scenario(str(p))
    assert sc.requirements == ("touchdown_envelope", SLOW_BELOW_50)
    assert load_scenario("nominal-terminal-descent").requirements == ()
    res = fly(sc)
    verdict = res.verdict()
    env = assert_requirement(res, "touchdown_envelope")       # pytest asserts each by name
    td = res.touchdown
    assert env.value == pytest.approx(min(2.0 - td.v_vertical, 0.5 - td.v_horizontal, 12.0 - td.tilt_deg), abs=0.02)
    assert env.line() in verdict
    with pytest.raises(AssertionError, match="robustness -"):
        assert_requirement(res, SLOW_BELOW_50)               # the descent passes 50 m faster than 3 m/s
    assert f"{SLOW_BELOW_50}: VIOLATED, robustness -" in verdict
