"""The pytest plugin as a user meets it: a failing closed-loop test leaves a plot with the
verdict, the artefact folder is named in the output, JUnit XML carries rig and firmware."""
import xml.etree.ElementTree as ET

pytest_plugins = ["pytester"]

TESTS = '''
from harness.assertions import assert_touchdown
from harness.scenario_files import load_scenario, terminal_descent

def test_lands(fly):
    assert_touchdown(fly(terminal_descent(t_max_s=200)))

def test_m2_as_flown_lands(fly):          # fails: the as-flown M2 crashes
    assert_touchdown(fly(load_scenario("ispace-m2", "as_flown")))
'''


def test_failing_descent_leaves_plot_artifacts_and_junit_properties(pytester):
    pytester.makepyfile(test_descents=TESTS)
    art = pytester.path / "art"
    xml = pytester.path / "junit.xml"
    res = pytester.runpytest_subprocess("--rig", "loopback", "--fsil-artifacts", str(art),
                                        f"--junitxml={xml}", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    # the assertion message states the numbers; the artefact folder is named in the report
    assert "outside the envelope: vertical speed 60." in out
    assert "fsil artefacts" in out and "test_m2_as_flown_lands" in out
    failed = next(art.glob("*test_m2_as_flown_lands*")) / "ispace-m2-as_flown"
    passed = next(art.glob("*test_lands*")) / "nominal-terminal-descent"
    assert (failed / "descent.png").stat().st_size > 10_000   # plot only for the failure
    assert not (passed / "descent.png").exists()
    for d in (failed, passed):
        assert (d / "telemetry.csv").exists() and (d / "link.log").exists() and (d / "summary.txt").exists()
    props = {(p.get("name"), p.get("value")) for p in ET.parse(xml).iter("property")}
    assert ("fsil_rig", "loopback") in props
    assert any(n == "fsil_firmware" and v.startswith("fsil-ref 0x") for n, v in props)


def test_an_unknown_rig_is_a_clear_error(pytester):
    pytester.makepyfile(test_one=TESTS)
    res = pytester.runpytest_subprocess("--rig", "no-such-rig", "-p", "no:cacheprovider", "-k", "test_lands")
    assert "unknown rig 'no-such-rig'; known: " in res.stdout.str()


def test_a_broken_rig_file_fails_each_test_with_its_message_not_a_traceback(pytester, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[rig]\nname = "b"\nkind = "warp-drive"\n')
    pytester.makepyfile(test_one=TESTS)
    res = pytester.runpytest_subprocess("--rig", str(bad), "-p", "no:cacheprovider", "-k", "test_lands")
    out = res.stdout.str()
    assert f"--rig {bad}: {bad}: [rig] kind = 'warp-drive' is invalid" in out, out
    assert "harness/rigs.py" not in out and "raise ConfigError" not in out  # no traceback of the harness


def test_a_test_requiring_a_capability_is_deselected_on_a_rig_without_it(pytester):
    """`requires("reference-fsw")` on a team's rig: the test does not apply there, so it is
    deselected (named in the summary with the capability), not skipped; on a rig that has the
    capability it runs."""
    pytester.makepyfile(test_caps='''
import pytest

@pytest.mark.requires("reference-fsw")
def test_reference_behaviour(rig):
    assert "reference-fsw" in rig.capabilities

def test_any_flight_code(rig):
    pass
''')
    example = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "simple_lander" / "rig.toml")
    res = pytester.runpytest("--rig", "loopback", "--rig", example, "-p", "no:cacheprovider", "-rs")
    res.assert_outcomes(passed=3, deselected=1)
    out = res.stdout.str()
    assert "not applicable, deselected: test_caps.py::test_reference_behaviour[" in out
    assert "lacks capability reference-fsw" in out and "SKIPPED" not in out
