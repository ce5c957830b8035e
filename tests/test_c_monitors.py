"""The C flight code's engine and sensor monitors through cffi, on a small self-contained plant:

* the accelerometer plausibility monitor (ACC_MON_*, Luna-25): engine clearly burning but the
  accelerometers read ~0 for ACC_MON_N cycles -> declared failed, navigation on the thrust
  model (commanded throttle through the engine lag, body +z, over the estimated mass) and
  the gyros; reported in COMMAND.flags bit 1 (FSW_CMD_ACCEL_FAILED);
* the thrust-scale estimate (THR_EST_*, Chandrayaan-2): measured / modelled specific force,
  low-pass, bounded; guidance's commands are divided by it;
* the over-thrust pulse mode (PULSE_*): engine-off intervals while the minimum thrust is more
  than the descent needs; reported in COMMAND.flags bit 2 (FSW_CMD_PULSE_OFF, ENGINE_ON clear).

All three are off by default (the as-flown behaviour). The plant is tests/miniplant.py's, as in
tests/test_c_flightcode.py, with the engine's slew limit and its knobs for the faults: a thrust
scale and accelerometers that read zero.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from cfsw import PARAMS, boot_configured
from miniplant import MiniPlant

APPROACH, TERMINAL, TOUCHDOWN, CONTINGENCY = 2, 3, 4, 5
CMD_ENGINE_ON, CMD_ACCEL_FAILED, CMD_PULSE_OFF = 0x01, 0x02, 0x04


class Plant(MiniPlant):
    """The reference lander's engine: 0.15 s lag and a 1.0/s throttle slew limit."""

    SLEW = 1.0
    SUBSTEPS = 2


def fly(ffi, lib, plant, config=None, t_max=300.0, lrf_latency=0.1):
    """Fly the loopback flight code against ``plant``; return (landing dict or None, log)."""
    from harness.protocol import Sensors, encode_frame

    lb, exchange, seq = boot_configured(ffi, lib, plant, config)
    cmd = (0.0, (0.0, 0.0, 0.0), True)
    log = []
    next_lrf, k_lrf = 0.0, 0
    while plant.landed is None and plant.t < t_max:
        throttle, torque, on = cmd
        dv, dth = plant.advance(throttle, torque, on)
        flags, rng, samp_t = 2, 0.0, 0
        if plant.t + 1e-9 >= next_lrf:                       # 10 Hz LRF
            next_lrf += 0.1
            while k_lrf + 1 < len(plant.lrf_hist) and plant.lrf_hist[k_lrf + 1][0] <= plant.t - lrf_latency + 1e-9:
                k_lrf += 1
            st, r, _ = plant.lrf_hist[k_lrf]
            if st <= plant.t - lrf_latency + 1e-9 and math.isfinite(r):
                samp_t, rng = round(st * 1e6), r
                flags |= 1 | 4
        frames = exchange(encode_frame(Sensors(tuple(map(float, dv)), tuple(map(float, dth)), 20000,
                                               float(rng), samp_t, flags), seq, round(plant.t * 1e6)))
        seq = (seq + 1) & 0xFFFF
        c, tl = frames[0].msg, frames[1].msg
        cmd = (c.throttle, c.torque_body, bool(c.flags & CMD_ENGINE_ON))
        log.append(dict(t=plant.t, h=plant.height(), est=tl.est_alt, phase=tl.phase, flags=c.flags,
                        thr=c.throttle, vr=plant.vr(), m=plant.m))
    assert int(lb.tx_overflow) == 0
    return plant.landed, log


def assert_soft(landed):
    assert landed is not None, "did not land"
    assert abs(landed["v_vert"]) <= 2.0 and landed["v_horiz"] <= 0.5, landed


def first(log, pred):
    return next((x for x in log if pred(x)), None)


# ================================================ accelerometer plausibility monitor (Luna-25)
LOW = dict(h0=800.0, v0=(-30.0, 0.5, -0.3))        # a short terminal descent (~55 s)


def test_params_default_to_the_as_flown_behaviour():
    for name in ("ACC_MON_ENABLE", "THR_EST_ENABLE", "PULSE_ENABLE"):
        assert PARAMS[name]["default"] == 0.0, name
    ids = [r["id"] for r in PARAMS.values()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_zero_accelerometers_trusted_as_flown_diverge(fc):
    ffi, lib = fc
    landed, log = fly(ffi, lib, Plant(accel_zero=lambda t: True, **LOW), t_max=60.0)
    assert not any(x["flags"] & CMD_ACCEL_FAILED for x in log)
    # navigation integrates free fall: the estimate runs away below the truth
    assert min(x["est"] - x["h"] for x in log) < -100.0
    assert landed is None or abs(landed["v_vert"]) > 10.0


def test_zero_accelerometers_declared_failed_after_n_cycles_and_the_lander_lands(fc):
    ffi, lib = fc
    n = 25
    landed, log = fly(ffi, lib, Plant(accel_zero=lambda t: True, **LOW), config=dict(ACC_MON_ENABLE=1, ACC_MON_N=n))
    i = next(k for k, x in enumerate(log) if x["flags"] & CMD_ACCEL_FAILED)
    # the engine spools up (0.15 s lag) past MON_F_MIN (0.5 m/s^2) within a few cycles, then N cycles
    assert n <= i + 1 <= n + 10, i
    assert all(x["flags"] & CMD_ACCEL_FAILED for x in log[i:])           # latched
    assert_soft(landed)
    assert max(abs(x["est"] - x["h"]) for x in log) < 10.0               # the estimate stays honest
    assert abs(log[-1]["est"] - log[-1]["h"]) < 1.5


def test_monitors_leave_a_nominal_descent_alone(fc):
    """Healthy IMU and engine, every monitor on: no accelerometer alarm, no engine-off interval
    (minimum thrust, 800 N, is well below the weight), lands as without them."""
    ffi, lib = fc
    landed, log = fly(ffi, lib, Plant(**LOW), config=dict(ACC_MON_ENABLE=1, THR_EST_ENABLE=1, PULSE_ENABLE=1))
    assert_soft(landed)
    assert not any(x["flags"] & (CMD_PULSE_OFF | CMD_ACCEL_FAILED) for x in log)


def test_accelerometer_monitor_raises_no_false_alarm(fc):
    """Thrust at half (SLIM-like: measured = 0.5 x model) and accelerometer dropouts one cycle
    shorter than ACC_MON_N never declare the accelerometers failed."""
    ffi, lib = fc
    cfg = dict(ACC_MON_ENABLE=1, ACC_MON_N=25)
    _, log = fly(ffi, lib, Plant(thrust_scale=0.5, mass=450.0, h0=300.0, v0=(-10.0, 0.0, 0.0)), config=cfg,
                 t_max=20.0)
    assert not any(x["flags"] & CMD_ACCEL_FAILED for x in log)
    # 24 zero cycles out of every 40: never 25 in a row
    _, log = fly(ffi, lib, Plant(accel_zero=lambda t: (round(t / 0.02) % 40) < 24, **LOW), config=cfg, t_max=20.0)
    assert not any(x["flags"] & CMD_ACCEL_FAILED for x in log)
    # ... while 25 in a row do
    _, log = fly(ffi, lib, Plant(accel_zero=lambda t: 5.0 < t <= 5.5 + 1e-9, **LOW), config=cfg, t_max=7.0)
    assert any(x["flags"] & CMD_ACCEL_FAILED for x in log)


def test_accelerometer_monitor_compares_only_while_the_engine_clearly_burns(fc):
    """A zero reading is right when there is no thrust: with MON_F_MIN above any modelled thrust /
    mass the monitor never compares, so zero accelerometers are not flagged."""
    ffi, lib = fc
    _, log = fly(ffi, lib, Plant(accel_zero=lambda t: True, **LOW), config=dict(ACC_MON_ENABLE=1, MON_F_MIN=50.0),
                 t_max=5.0)
    assert not any(x["flags"] & CMD_ACCEL_FAILED for x in log)


# ================================================ thrust-scale estimate (Chandrayaan-2)
HEAVY = dict(h0=150.0, v0=(-10.0, 0.0, 0.0), mass=950.0)   # minimum thrust below the weight even at 1.3 x


def test_thrust_scale_estimate_divides_the_commands(fc):
    """30 % more thrust than commanded, minimum thrust still below the weight. As flown the
    over-thrust balances the schedule's braking feed-forward and the lander hovers above the
    terminal gate with the throttle above its minimum (the descent stalls: Chandrayaan-2's
    over-braking in small); with the estimate it tracks V_TERMINAL (1 m/s) and commands
    ~ m g / (1.3 THRUST_MAX)."""
    ffi, lib = fc
    landed, log = fly(ffi, lib, Plant(thrust_scale=1.3, **HEAVY), t_max=50.0)
    assert landed is None
    late = [x for x in log if x["t"] > 35.0]
    assert max(abs(x["vr"]) for x in late) < 0.1 and min(x["h"] for x in late) > 30.0     # hovering
    assert min(x["thr"] for x in late) > 0.25                                             # not at THROTTLE_MIN
    landed, log = fly(ffi, lib, Plant(thrust_scale=1.3, **HEAVY), config=dict(THR_EST_ENABLE=1))
    assert_soft(landed)
    term = [x for x in log if x["phase"] == TERMINAL and x["h"] < 20.0]
    assert np.mean([x["vr"] for x in term]) == pytest.approx(-1.0, abs=0.05)
    m = np.mean([x["m"] for x in term])
    assert np.mean([x["thr"] for x in term]) == pytest.approx(m * 1.62 / (1.3 * 4000.0), rel=0.03)


def test_thrust_scale_estimate_is_bounded(fc):
    """2 x thrust is outside the default [THR_EST_MIN, THR_EST_MAX] = [0.5, 1.5]: the estimate
    stops at 1.5 and the descent stalls again; with THR_EST_MAX 2.5 it is followed and lands."""
    ffi, lib = fc
    start = dict(HEAVY, mass=1500.0, thrust_scale=2.0)
    landed, log = fly(ffi, lib, Plant(**start), config=dict(THR_EST_ENABLE=1), t_max=40.0)
    assert landed is None and max(abs(x["vr"]) for x in log if x["t"] > 30.0) < 0.3
    landed, log = fly(ffi, lib, Plant(**start), config=dict(THR_EST_ENABLE=1, THR_EST_MAX=2.5))
    assert_soft(landed)


# ================================================ pulse mode: minimum thrust above the weight
def test_pulse_mode_descends_when_minimum_thrust_exceeds_the_weight(fc):
    """1.5 x thrust on a 600 kg lander: minimum thrust 1,200 N > weight 972 N. Without engine-off
    intervals the lander cannot descend (it climbs away); with them it lands."""
    ffi, lib = fc
    start = dict(h0=150.0, v0=(-5.0, 0.0, 0.0), mass=600.0, thrust_scale=1.5)
    assert 0.2 * 4000.0 * 1.5 > 600.0 * 1.62
    landed, log = fly(ffi, lib, Plant(**start), config=dict(THR_EST_ENABLE=1), t_max=40.0)
    assert landed is None and log[-1]["vr"] > 0.5                         # climbing at minimum throttle
    assert all(x["thr"] == pytest.approx(0.2) for x in log if x["t"] > 20.0)
    assert not any(x["flags"] & CMD_PULSE_OFF for x in log)
    landed, log = fly(ffi, lib, Plant(**start), config=dict(THR_EST_ENABLE=1, PULSE_ENABLE=1), t_max=200.0)
    assert_soft(landed)
    off = np.array([bool(x["flags"] & CMD_PULSE_OFF) for x in log])
    assert not any(x["flags"] & CMD_ENGINE_ON for x in log if x["flags"] & CMD_PULSE_OFF)
    starts = np.flatnonzero(np.diff(off.astype(int)) == 1) + 1
    ends = np.flatnonzero(np.diff(off.astype(int)) == -1) + 1
    assert len(starts) >= 3 and len(ends) >= len(starts) - 1
    lengths = (ends[:len(starts)] - starts[:len(ends)]) * 0.02
    assert np.all(lengths <= 2.0 + 0.03)                                  # PULSE_OFF_MAX
    gaps = (starts[1:] - ends[:len(starts) - 1]) * 0.02
    assert np.all(gaps >= 1.0 - 0.03)                                     # PULSE_ON_MIN of burning between cuts
    assert all(log[i]["phase"] in (APPROACH, TERMINAL, CONTINGENCY) for i in starts)
    # in the terminal phase the speed stays in the band around V_TERMINAL (1 m/s) +- PULSE_V_TOL (+ lag)
    term = [x["vr"] for x in log if x["phase"] == TERMINAL]
    assert -1.6 < min(term) and max(term) < -0.5
