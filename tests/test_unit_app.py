"""The application shell (fsw_app.c) in corner cases, through cffi: ``fsw_init`` with a HAL that
has no transmit function (or no HAL at all) must run the GNC cycle without sending or crashing,
and count nothing as sent."""
from __future__ import annotations

import math

import pytest

from cfsw import PARAMS, Q_UP


def sensors_msg(ffi, lib, seq, t_us, dt_us=20000):
    m = ffi.new("fsw_msg_t *")
    m.hdr.version = lib.FSW_PROTO_VERSION
    m.hdr.msg_type = lib.FSW_MSG_SENSORS
    m.hdr.seq = seq
    m.hdr.t_us = t_us
    s = m.body.sensors
    s.imu_dv_body = [0.0, 0.0, 1.62 * dt_us * 1e-6]
    s.imu_dt_us = dt_us
    s.flags = lib.FSW_SENS_IMU_VALID
    return m


def run_cycles(ffi, lib, ctx, n=3):
    ctx.params.NAV_R0_X = 1737400.0 + 500.0
    ctx.params.NAV_Q0_W, ctx.params.NAV_Q0_X, ctx.params.NAV_Q0_Y, ctx.params.NAV_Q0_Z = Q_UP
    lib.fsw_commit(ctx)
    for k in range(n):
        lib.fsw_handle_msg(ctx, sensors_msg(ffi, lib, k, k * 20000))


def test_init_without_a_transmit_function_runs_and_sends_nothing(fc):
    ffi, lib = fc
    for hal in (ffi.NULL, ffi.new("fsw_hal_t *")):        # no HAL; a HAL with tx = NULL, now_us = NULL
        ctx = ffi.new("fsw_ctx_t *")
        lib.fsw_init(ctx, hal)
        assert ctx.tx_frames == 0 and ctx.tx_seq == 0 and ctx.committed == 0
        assert ctx.guid.phase == 0 and ctx.guid.engine_on == 0
        assert ctx.params.GUID_KV == PARAMS["GUID_KV"]["default"]      # defaults loaded
        run_cycles(ffi, lib, ctx)
        assert ctx.cycles == 3 and ctx.committed == 1 and ctx.tx_frames == 0
        assert ctx.last_cmd.mode == 5 and ctx.last_cmd.flags & lib.FSW_CMD_ENGINE_ON   # contingency (500 m, no LRF), burning
        assert 0.2 <= ctx.last_cmd.throttle <= 1.0
        assert ctx.overruns == 0


def test_init_with_a_transmit_function_sends_hello_then_one_command_per_sensors(fc):
    ffi, lib = fc
    sent = []

    @ffi.callback("void(void *, const uint8_t *, size_t)")
    def tx(user, data, n):
        sent.append(bytes(ffi.buffer(data, n)))

    hal = ffi.new("fsw_hal_t *")
    hal.tx = tx
    ctx = ffi.new("fsw_ctx_t *")
    lib.fsw_init(ctx, hal)
    assert ctx.tx_frames == 1 and len(sent) == 1 and ctx.tx_seq == 1      # HELLO at boot
    run_cycles(ffi, lib, ctx, n=2)
    # each SENSORS: one COMMAND and (TLM_DECIMATION 1) one TELEMETRY
    assert ctx.tx_frames == 1 + 2 * 2 == len(sent) and ctx.tx_seq == 5


def test_telemetry_reports_the_navigation_state_and_saturating_counters(fc):
    ffi, lib = fc
    ctx = ffi.new("fsw_ctx_t *")
    lib.fsw_init(ctx, ffi.NULL)
    run_cycles(ffi, lib, ctx, n=2)
    nav = ctx.nav
    nav.q = [0.5, -0.5, 0.5, 0.5]
    nav.lrf_innovation = -3.25
    nav.lrf_status = 2
    nav.lrf_rejects = 70_000                 # saturates at 65,535
    ctx.parser.crc_errors, ctx.parser.framing_errors = 65_534, 1_000_000
    ctx.parser.length_errors, ctx.parser.unknown_msgs = 7, 65_536
    ctx.parser.frames_ok = 65_536 + 12       # wraps (a sequence counter)
    ctx.overruns = 99_999
    t = ffi.new("fsw_telemetry_t *")
    lib.fsw_fill_telemetry(ctx, t)
    assert list(t.est_r_mci) == list(nav.r)
    assert list(t.est_v_mci) == pytest.approx(list(nav.v), rel=1e-7)
    assert list(t.est_q_mci_body) == [0.5, -0.5, 0.5, 0.5]
    assert t.est_alt == pytest.approx(lib.fsw_nav_alt(ffi.addressof(ctx, "nav")), abs=1e-3)
    assert t.lrf_innovation == -3.25 and t.lrf_status == 2 and t.phase == ctx.guid.phase == 5
    assert (t.lrf_rejects, t.rx_crc_errors, t.rx_framing_errors, t.rx_length_errors, t.rx_unknown_msgs) == \
        (65_535, 65_534, 65_535, 7, 65_535)
    assert t.rx_frames_ok == 12 and t.cycle_overruns == 65_535


def test_command_is_sanitised_when_the_control_laws_produce_nan(fc):
    """Last line of defence: NaN gains (a corrupted configuration) must not reach the
    actuators: every torque axis 0, throttle THROTTLE_MIN while the engine is on."""
    ffi, lib = fc
    ctx = ffi.new("fsw_ctx_t *")
    lib.fsw_init(ctx, ffi.NULL)
    ctx.params.CHK_ENABLE = 0.0   # the sanitiser alone (the state invariants would re-seed first)
    run_cycles(ffi, lib, ctx, n=1)
    assert all(math.isfinite(x) for x in ctx.last_cmd.torque_body)
    ctx.att.kd = math.nan                    # -kd w: NaN on every axis
    ctx.guid.cfg.thrust_max = math.nan       # throttle = |F| / thrust_max: NaN
    lib.fsw_handle_msg(ctx, sensors_msg(ffi, lib, 1, 20000))
    cmd = ctx.last_cmd
    assert cmd.flags & lib.FSW_CMD_ENGINE_ON
    assert list(cmd.torque_body) == [0.0, 0.0, 0.0]
    assert cmd.throttle == pytest.approx(PARAMS["THROTTLE_MIN"]["default"])


def test_lrf_latency_is_the_frame_time_minus_the_sample_time(fc):
    """An LRF sample taken 0.2 s before the SENSORS time stamp is compared with the height
    predicted for then, h - v_r * 0.2: descending at ~20 m/s its innovation is ~4 m smaller
    than a fresh sample's; a sample stamped after the frame counts as fresh."""
    ffi, lib = fc
    innovation = {}
    for age_us in (200_000, 0, -50_000):
        ctx = ffi.new("fsw_ctx_t *")
        lib.fsw_init(ctx, ffi.NULL)
        ctx.params.NAV_V0_X = -20.0                 # descending at 20 m/s along +x = up
        run_cycles(ffi, lib, ctx, n=1)
        t_us = 400_000
        m = sensors_msg(ffi, lib, 1, t_us, dt_us=0)
        m.body.sensors.flags = lib.FSW_SENS_LRF_VALID | lib.FSW_SENS_LRF_NEW
        m.body.sensors.lrf_range = 500.0
        m.body.sensors.lrf_sample_t_us = t_us - age_us
        lib.fsw_handle_msg(ctx, m)
        innovation[age_us] = ctx.nav.lrf_innovation
    assert innovation[200_000] - innovation[0] == pytest.approx(-20.0 * 0.2, abs=0.3)
    assert innovation[-50_000] == innovation[0]


def test_an_interval_longer_than_one_second_is_propagated_as_one_second(fc):
    """With the SENSORS plausibility checks off (CHK_ENABLE = 0; with them on such a frame is
    refused, tests/test_c_defence.py), a 1.3 s interval is integrated as 1 s at most."""
    ffi, lib = fc
    ctx = ffi.new("fsw_ctx_t *")
    lib.fsw_init(ctx, ffi.NULL)
    ctx.params.CHK_ENABLE = 0.0
    run_cycles(ffi, lib, ctx, n=1)
    v0 = ctx.nav.v[0]
    g = lib.fsw_nav_gravity(ffi.addressof(ctx, "nav"))
    m = sensors_msg(ffi, lib, 1, 1_320_000, dt_us=1_300_000)
    m.body.sensors.imu_dv_body = [0.0, 0.0, 0.0]             # free fall, upright (+x up)
    lib.fsw_handle_msg(ctx, m)
    assert ctx.nav.v[0] - v0 == pytest.approx(-g * 1.0, rel=1e-3)
