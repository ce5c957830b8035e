"""Golden-run regression (harness/golden.py): every library scenario flown on loopback must stay
inside the per-signal bands of its reference in tests/golden/. An intended change is accepted
with ``fsil golden accept [SCENARIO...] --reason "..."`` (recorded in tests/golden/CHANGELOG.md)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness import golden
from harness.cli import main

NAMES = golden.golden_names()


@pytest.mark.parametrize("name", NAMES)
def test_scenario_matches_its_golden_reference(name, artifacts_dir):
    devs, text = golden.check(name, artifacts=artifacts_dir)
    assert not devs, text + "\n(intended? fsil golden accept " + name + " --reason \"...\")"


def test_every_golden_scenario_has_a_reference_and_no_reference_is_orphaned():
    stored = {p.stem.replace("--", ":") for p in golden.GOLDEN_DIR.glob("*.npz")}
    assert stored == set(NAMES)


@pytest.fixture(scope="module")
def ref():
    return golden.load_reference("nominal-terminal-descent")


def _copy(ref):
    return dataclasses.replace(ref, header=dict(ref.header),
                               continuous={k: v.copy() for k, v in ref.continuous.items()},
                               changes={k: (a.copy(), v.copy()) for k, (a, v) in ref.changes.items()})


def test_compare_names_the_signal_the_first_exit_and_the_worst_excursion(ref):
    cur = _copy(ref)
    assert golden.compare(ref, cur) == []
    i0 = 100
    cur.continuous["v_up_mps"][i0:] += np.linspace(0.06, 0.3, ref.t_s.size - i0)   # first exit at sample i0
    devs = golden.compare(ref, cur)
    assert [d.signal for d in devs] == ["v_up_mps"]
    d = devs[0]
    assert d.first_t_s == pytest.approx(ref.t_s[i0]) and d.current - d.reference == pytest.approx(0.06, abs=1e-9)
    assert d.worst_diff == pytest.approx(0.3) and d.worst_t_s == pytest.approx(ref.t_s[-1])
    assert "v_up_mps: left its band" in d.line() and f"t={ref.t_s[i0]:.2f} s" in d.line()


def test_compare_holds_inside_the_band_and_flags_just_outside(ref):
    atol = golden.CONTINUOUS["mass_kg"][0]
    cur = _copy(ref)
    cur.continuous["mass_kg"] += 0.9 * atol
    assert golden.compare(ref, cur) == []
    cur.continuous["mass_kg"] += 0.3 * atol
    assert [d.signal for d in golden.compare(ref, cur)] == ["mass_kg"]


def test_compare_phase_changes_exactly_and_outcome(ref):
    cur = _copy(ref)
    at, val = cur.changes["mode"]
    at[1] += 1                                   # hand-over one cycle later
    cur.header["outcome"] = "hard-landing"
    devs = {d.signal: d for d in golden.compare(ref, cur)}
    assert set(devs) == {"mode", "outcome"}
    assert "change point 1 differs" in devs["mode"].detail


def test_compare_touchdown_numbers_and_nan_estimates(ref):
    cur = _copy(ref)
    cur.header["touchdown"] = dict(ref.header["touchdown"], v_vertical=ref.header["touchdown"]["v_vertical"] + 0.05)
    cur.continuous["est_alt_m"][5] = np.nan
    devs = {d.signal for d in golden.compare(ref, cur)}
    assert devs == {"touchdown.v_vertical", "est_alt_m"}


def test_reduce_decode_round_trip_within_a_quantum():
    res = golden.fly_scenario("beresheet")
    red = golden.reduce_result(res)
    dec = golden.decode(red)
    idx = dec.sample_index
    for sig in golden.CONTINUOUS:
        x = res.telemetry[sig][idx]
        ok = np.isnan(x) == np.isnan(dec.continuous[sig])
        assert ok.all()
        fin = ~np.isnan(x)
        assert np.abs(dec.continuous[sig][fin] - x[fin]).max() <= golden._quantum(sig) / 2 + 1e-9
    at, val = dec.changes["mode"]
    assert np.array_equal(res.telemetry["mode"][at], val)
    assert sum(v.nbytes for v in red.values()) < 40_000


def test_accept_writes_the_reference_and_records_reason_date_commit_and_what_moved(tmp_path):
    golden.accept(["beresheet"], "first", folder=tmp_path, log=lambda s: None)
    assert golden.reference_path("beresheet", tmp_path).exists()
    # a doctored reference: accept again reports which signals moved
    p = golden.reference_path("beresheet", tmp_path)
    with np.load(p) as z:
        red = {k: z[k] for k in z.files}
    red["q_altitude_m"] = red["q_altitude_m"].copy()
    red["q_altitude_m"][10] += 500
    golden.write_reference(red, p)
    moved = dict(golden.accept(["beresheet"], "GUID_KV retuned", folder=tmp_path, log=lambda s: None))
    assert "altitude_m" in moved["beresheet"]
    log = (tmp_path / "CHANGELOG.md").read_text()
    assert log.count("## ") == 2 and "Reason: GUID_KV retuned" in log and "commit " in log
    assert "`beresheet`: crashed; altitude_m" in log
    assert golden.compare(golden.load_reference("beresheet", tmp_path),
                          golden.decode(golden.reduce_result(golden.fly_scenario("beresheet")))) == []


def test_accept_refuses_without_reason_or_with_unknown_name_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(golden.GoldenError, match="--reason"):
        golden.accept(["beresheet"], "  ", folder=tmp_path)
    with pytest.raises(golden.GoldenError, match="not a golden scenario: nope"):
        golden.accept(["nope"], "x", folder=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert main(["golden", "check", "nope"]) == 2
    assert "not a golden scenario: nope" in capsys.readouterr().err


def test_missing_or_corrupt_reference_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(golden.GoldenError, match="fsil golden accept beresheet"):
        golden.load_reference("beresheet", tmp_path)
    golden.reference_path("beresheet", tmp_path).write_bytes(b"not an npz")
    with pytest.raises(golden.GoldenError, match="unreadable golden reference"):
        golden.load_reference("beresheet", tmp_path)
