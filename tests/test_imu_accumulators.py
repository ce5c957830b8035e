"""IMU delta-v / delta-angle accumulators (protocol v2 SENSORS): running f64 sums of every
increment the IMU reports, so a flight code that loses SENSORS frames loses no increment."""
from __future__ import annotations

import numpy as np
import pytest

from harness import protocol as p
from harness.runner import fly
from harness.scenario_files import terminal_descent
from sensor_models.imu import Imu, ImuConfig

from test_handshake import Rewriting


def _imu(**kw) -> Imu:
    cfg = ImuConfig.navigation_grade().replace(dv_lsb_mps=1e-3, dtheta_lsb_rad=1e-5, **kw)
    return Imu(cfg, np.random.default_rng(7))


def test_accumulators_are_the_sum_of_the_reported_quantised_increments():
    imu = _imu()
    dv_sum, dth_sum, true_v = np.zeros(3), np.zeros(3), np.zeros(3)
    rng = np.random.default_rng(1)
    for k in range(500):
        f, w = rng.normal(0, 3, 3), rng.normal(0, 0.1, 3)
        for _ in range(8):
            imu.accumulate(tuple(f), tuple(w), 0.0025)
        true_v += f * 0.02
        r = imu.read()
        dv_sum += r.dv_body
        dth_sum += r.dtheta_body
        assert all(abs(x / 1e-3 - round(x / 1e-3)) < 1e-6 for x in r.dv_body)  # quantised increments
        assert r.dv_accum_body == tuple(dv_sum) and r.dtheta_accum_body == tuple(dth_sum)
    # the counters keep the quantisation residual: the sum stays within an LSB (+ bias, noise) of the truth
    assert np.all(np.abs(np.array(r.dv_accum_body) - true_v) < 1e-3 + 500 * 0.02 * 2e-3)


def test_a_reading_altered_after_read_is_what_the_accumulators_count():
    imu = _imu()
    imu.accumulate((0.0, 0.0, 1.62), (0.0, 0.0, 0.0), 0.02)
    first = imu.read()
    imu.accumulate((0.0, 0.0, 1.62), (0.0, 0.0, 0.0), 0.02)
    r = imu.read()
    spiked = imu.report(r._replace(dv_body=(5.0, 0.0, 0.0)))
    assert spiked.dv_accum_body == (first.dv_accum_body[0] + 5.0, first.dv_accum_body[1], first.dv_accum_body[2])
    imu.accumulate((0.0, 0.0, 1.62), (0.0, 0.0, 0.0), 0.02)
    nxt = imu.read()
    assert nxt.dv_accum_body[0] == spiked.dv_accum_body[0] + nxt.dv_body[0]


def test_runner_sends_the_accumulators_and_the_first_frame_is_empty():
    """What the runner sends: the first SENSORS (t_us 0) has no interval: imu_dt_us 0, zero
    increments and accumulators, IMU_VALID clear. Afterwards each frame's accumulators minus the
    previous frame's are its own increments (to f32 rounding of the increment field), so a
    flight code differencing them across lost frames recovers every lost increment."""
    sent = []

    def inbound(fr):
        if fr.msg_type == p.MsgType.SENSORS:
            sent.append(fr)
            if 200 <= len(sent) < 210:  # ten SENSORS lost on the way up
                return None
        return fr

    res = fly(terminal_descent(), Rewriting(inbound=inbound), lost_command="hold")
    assert res.link_stats["lost_commands"] == 10  # (the reference nav of today uses only the increments)
    first = sent[0]
    assert first.t_us == 0 and first.seq == sent[1].seq - 1
    m = first.msg
    assert m.imu_dt_us == 0 and m.imu_dv_body == (0.0,) * 3 and m.imu_dtheta_body == (0.0,) * 3
    assert m.imu_dv_accum_body == (0.0,) * 3 and m.imu_dtheta_accum_body == (0.0,) * 3
    assert not m.flags & p.SENSORS_IMU_VALID
    acc = np.array([f.msg.imu_dv_accum_body for f in sent])
    inc = np.array([f.msg.imu_dv_body for f in sent])
    assert np.allclose(np.diff(acc, axis=0), inc[1:], rtol=1e-6, atol=1e-9)
    # across the lost frames: the difference of the accumulators the flight code did get
    assert np.allclose(acc[210] - acc[199], inc[200:211].sum(axis=0), rtol=1e-6, atol=1e-8)
    assert np.all(np.diff([f.seq for f in sent]) == 1)  # consecutive SENSORS differ by 1
