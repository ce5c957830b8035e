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
