"""examples/simple_lander, the foreign flight program, flown through its program rig: it survives
lost SENSORS frames through the IMU accumulators of protocol v2, and it answers the handshake as
any team's code should (status 1 for the reference code's tuning, COMMITTED on COMMIT)."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.faults import LinkDrop, LrfNoOutput
from harness.link import replay_link_log
from harness.rigs import load_rig, open_rig
from harness.scenario import FIXED, NavError
from harness.scenario_files import load_scenario, terminal_descent

RIG = Path(__file__).resolve().parents[1] / "examples" / "simple_lander" / "rig.toml"


@pytest.fixture(scope="module")
def example():
    spec = load_rig(RIG)
    if spec.requirements() or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip(f"cannot build the example here: {spec.requirements()}")
    return spec


def test_lost_sensors_frames_lose_no_imu_information(example, tmp_path):
    """5 % of SENSORS frames lost and no LRF for 40 s: a navigation that integrated only the frames
    it received would lose 5 % of the braking delta-v (about 4 m/s and 80 m of altitude by t = 40 s);
    the example differences the IMU accumulators and stays within metres of the truth."""
    sc = terminal_descent(name="example-lost-frames", nav_error=NavError(), t_max_s=40.0,
                          faults=(LrfNoOutput(), LinkDrop(prob=0.05, direction="up", message="SENSORS")))
    with open_rig(example) as up:
        res = up.fly(sc, artifacts=tmp_path, cycle_timeout_s=0.05, stall_cycles=20)
    assert res.error is None, res.error
    assert res.link_stats["lost_commands"] > 60, res.link_stats  # the frames were really lost
    tm = res.telemetry
    err = np.abs(tm["est_alt_m"] - tm["truth_alt_site_m"])
    assert np.isfinite(err[-1]) and np.nanmax(err) < 10.0, np.nanmax(err)
    # and the program counted the gaps in its TELEMETRY (sensors_gaps) as the harness lost them
    # (frames lost before the first one it received or after the last one it cannot know of:
    # count those between the first SENSORS it answered and the SENSORS of its last TELEMETRY's
    # cycle, the one with that t_us)
    log = replay_link_log(tmp_path / "link.log")
    last = [f for f in log["F>H"] if type(f.msg).__name__ == "Telemetry"][-1]
    sensors = [f for f in log["H>F"] if type(f.msg).__name__ == "Sensors"]
    (its_seq,) = {f.seq for f in sensors if f.t_us == last.t_us}
    answered = {f.msg.sensors_seq for f in log["F>H"] if type(f.msg).__name__ == "Command"}
    lost_before_last = {f.seq for f in sensors if min(answered) < f.seq < its_seq} - answered
    assert len(lost_before_last) > 60
    assert last.msg.sensors_gaps == len(lost_before_last)


def test_the_reference_tuning_is_refused_and_m2_fixed_still_lands(example):
    with open_rig(example) as up:
        res = up.fly(load_scenario("ispace-m2", "fixed"))
    assert res.outcome == "landed", res.verdict()
    text = res.verdict()
    for name in FIXED:  # optional parameters the example does not use: refused, not applied, listed
        assert f"{name} (id" in text and "UNKNOWN_ID" in text
