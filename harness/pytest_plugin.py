"""pytest plugin (registered through the ``pytest11`` entry point).

Tests ask for a role, not a device: the ``fly`` fixture flies a scenario on whichever rig
``--rig`` selected (several ``--rig`` options run each test once per rig) and keeps the
artefacts (telemetry, raw link log, summary, and a plot when the test fails) in a folder
named in the test report.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.safetext import safe_component


def pytest_addoption(parser):
    group = parser.getgroup("fsil", "flight-software-in-the-loop")
    group.addoption("--rig", action="append", default=[], metavar="NAME|PATH",
                    help="rig to fly the closed-loop tests on (repeat for several); default: loopback")
    group.addoption("--fsil-artifacts", default="artifacts", metavar="DIR",
                    help="folder for per-test artefacts (telemetry, link logs, plots); default: ./artifacts")


def pytest_configure(config):
    config.addinivalue_line("markers", "rigs(*names): run this test only on these rigs")
    config.addinivalue_line("markers", "requires(*capabilities): run only on rigs with these capabilities "
                                       "(e.g. hardware, deterministic, cortex-m4, reference-fsw); "
                                       "deselected on the others")


def pytest_collection_modifyitems(config, items):
    """Give each rig-parametrised test the rig's pytest-timeout default (unless it sets its own),
    and deselect a test on a rig that lacks a capability it ``requires`` (e.g. ``reference-fsw``
    on a team's own flight code): such a test does not apply there, which is not a skip. The
    terminal summary names each one with the capability."""
    from harness.rigs import load_rig

    specs, keep, dropped = {}, [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "rig_name" not in callspec.params:
            keep.append(item)
            continue
        name = callspec.params["rig_name"]
        try:
            spec = specs.setdefault(name, load_rig(name))
        except Exception:
            keep.append(item)
            continue  # reported when the test runs
        marker = item.get_closest_marker("requires")
        lacking = [c for c in marker.args if c not in spec.capabilities] if marker else []
        if lacking:
            dropped.append((item, f"rig {spec.name} lacks capability {', '.join(lacking)}"))
            continue
        if not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(spec.test_timeout_s))
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=[i for i, _ in dropped])
        items[:] = keep
        config._fsil_not_applicable = [(i.nodeid, why) for i, why in dropped]


def _selected_rigs(config) -> list[str]:
    return config.getoption("--rig") or ["loopback"]


def pytest_generate_tests(metafunc):
    if "rig_name" in metafunc.fixturenames:
        names = _selected_rigs(metafunc.config)
        marker = metafunc.definition.get_closest_marker("rigs")
        if marker:
            names = [n for n in names if n in marker.args] or names
        metafunc.parametrize("rig_name", names, scope="function")


@pytest.fixture
def rig_name(request):
    """Name (or path) of the rig this test runs on; parametrised from ``--rig``."""
    return getattr(request, "param", "loopback")


@pytest.fixture
def rig(request, rig_name):
    """The RigSpec of the rig under test. Skips, naming what is missing, when the rig cannot run
    here (a tool such as qemu-system-arm absent, a board not plugged in), or when the test needs
    a capability the rig lacks (``@pytest.mark.requires("hardware")``)."""
    from harness.errors import FsilError
    from harness.rigs import load_rig

    try:
        spec = load_rig(rig_name)
    except FsilError as exc:  # a bad --rig: its message, not the harness's traceback
        pytest.fail(f"--rig {rig_name}: {exc}", pytrace=False)
    marker = request.node.get_closest_marker("requires")
    if marker:
        lacking = [c for c in marker.args if c not in spec.capabilities]
        if lacking:
            pytest.skip(f"rig {spec.name} lacks capability {', '.join(lacking)}")
    missing = spec.requirements()
    if missing:
        pytest.skip(f"rig {spec.name} cannot run here: missing {'; '.join(missing)}")
    return spec


@pytest.fixture
def artifacts_dir(request) -> Path:
    """This test's artefact folder (created on first use)."""
    base = Path(request.config.getoption("--fsil-artifacts"))
    if not base.is_absolute():
        base = Path(request.config.rootpath) / base
    return base / safe_component(request.node.nodeid, what="test id")


@pytest.fixture
def fly(request, rig, artifacts_dir):
    """``fly(scenario) -> FlightResult``: bring the rig up, fly, take it down, keep artefacts.

    Every flight in a test gets a subfolder named after its scenario. On test failure the
    descent plot with the verdict is written next to the telemetry.
    """
    from harness.rigs import open_rig

    results = []

    def _fly(scenario, **kwargs):
        with open_rig(rig) as up:
            res = up.fly(scenario, artifacts=artifacts_dir / safe_component(scenario.name, what="scenario name"),
                         **kwargs)
        if not results:
            request.node.user_properties.append(("fsil_rig", res.rig))
            request.node.user_properties.append(("fsil_firmware", res.firmware))
        results.append(res)
        return res

    yield _fly
    if getattr(request.node, "_fsil_failed", False):
        from harness.plot import plot_descents

        for res in results:
            if res.artifacts:
                plot_descents([res], res.artifacts / "descent.png",
                              title=f"FAILED {request.node.nodeid}\n{res.outcome}")
    request.node._fsil_folders = sorted({str(r.artifacts) for r in results if r.artifacts})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    folders = getattr(item, "_fsil_folders", None)
    if report.when == "teardown" and folders:
        report.sections.append(("fsil artefacts", "\n".join(folders)))


def pytest_terminal_summary(terminalreporter, config):
    for nodeid, why in getattr(config, "_fsil_not_applicable", ()):
        terminalreporter.write_line(f"fsil: not applicable, deselected: {nodeid} ({why})")
    base = Path(config.getoption("--fsil-artifacts"))
    if not base.is_absolute():
        base = Path(config.rootpath) / base
    if base.exists():
        terminalreporter.write_line(f"fsil artefacts (telemetry, link logs, plots of failures): {base}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item):
    outcome = yield
    if outcome.excinfo is not None:
        item._fsil_failed = True
