/*
 * fsw_app.c - protocol handling and the GNC cycle. See fsw_app.h.
 */
#include "fsw_app.h"

#include <string.h>

#include "fsw_math.h"

static uint64_t now_us(const fsw_ctx_t *ctx)
{
    return ctx->hal.now_us != NULL ? ctx->hal.now_us(ctx->hal.user) : 0u;
}

static uint16_t sat16(uint32_t v)
{
    return v > 0xFFFFu ? 0xFFFFu : (uint16_t)v;
}

/* Stamp version/seq and send one message. t_us must already be set. */
static void send_msg(fsw_ctx_t *ctx, fsw_msg_t *msg)
{
    uint8_t frame[FSW_MAX_FRAME];
    size_t n;

    msg->hdr.version = (uint8_t)FSW_PROTO_VERSION;
    msg->hdr.seq = ctx->tx_seq;
    n = fsw_msg_encode_frame(msg, frame, sizeof frame);
    if (n > 0u && ctx->hal.tx != NULL) {
        ctx->hal.tx(ctx->hal.user, frame, n);
        ctx->tx_seq = (uint16_t)(ctx->tx_seq + 1u);
        ctx->tx_frames++;
    }
}

static uint64_t reply_time(const fsw_ctx_t *ctx)
{
    return ctx->have_t ? ctx->last_t_us : now_us(ctx);
}

static void send_hello(fsw_ctx_t *ctx)
{
    fsw_msg_t m;
    const char name[] = FSW_FIRMWARE_NAME;
    size_t i;

    memset(&m, 0, sizeof m);
    m.hdr.msg_type = FSW_MSG_HELLO;
    m.hdr.t_us = reply_time(ctx);
    m.body.hello.protocol_version = (uint16_t)FSW_PROTO_VERSION;
    m.body.hello.reserved = 0;
    m.body.hello.firmware_id = (uint32_t)(FSW_FIRMWARE_ID);
    for (i = 0; i < sizeof m.body.hello.firmware_name && i + 1u < sizeof name; i++) {
        m.body.hello.firmware_name[i] = name[i];
    }
    send_msg(ctx, &m);
}

static void eng_configure(fsw_eng_t *e, const fsw_params_t *p)
{
    fsw_eng_cfg_t *c = &e->cfg;

    c->tau = (float)p->ENGINE_TAU;
    c->slew = (float)p->ENGINE_SLEW;
    c->f_min = (float)p->MON_F_MIN;
    c->est_tau = (float)p->THR_EST_TAU;
    c->est_min = (float)p->THR_EST_MIN;
    c->est_max = (float)p->THR_EST_MAX;
    c->pulse_v_tol = (float)p->PULSE_V_TOL;
    c->pulse_off_max = (float)p->PULSE_OFF_MAX;
    c->pulse_on_min = (float)p->PULSE_ON_MIN;
    c->pulse_a_min = (float)p->PULSE_A_MIN;
    c->est_enable = p->THR_EST_ENABLE >= 0.5 ? 1u : 0u;
    c->pulse_enable = p->PULSE_ENABLE >= 0.5 ? 1u : 0u;
    c->pad_[0] = 0;
    c->pad_[1] = 0;
}

static void eng_reset(fsw_eng_t *e, const fsw_params_t *p)
{
    memset(e, 0, sizeof *e);
    eng_configure(e, p);
    e->scale = 1.0f;
}

static void configure_all(fsw_ctx_t *ctx)
{
    fsw_nav_configure(&ctx->nav, &ctx->params);
    fsw_guid_configure(&ctx->guid, &ctx->params);
    fsw_att_configure(&ctx->att, &ctx->params);
    eng_configure(&ctx->eng, &ctx->params);
}

void fsw_commit(fsw_ctx_t *ctx)
{
    fsw_nav_reset(&ctx->nav, &ctx->params);
    fsw_guid_reset(&ctx->guid, &ctx->params);
    fsw_att_configure(&ctx->att, &ctx->params);
    eng_reset(&ctx->eng, &ctx->params);
    ctx->committed = 1;
    ctx->cycles = 0;
}

void fsw_init(fsw_ctx_t *ctx, const fsw_hal_t *hal)
{
    memset(ctx, 0, sizeof *ctx);
    if (hal != NULL) {
        ctx->hal = *hal;
    }
    fsw_parser_init(&ctx->parser);
    fsw_params_defaults(&ctx->params);
    fsw_nav_reset(&ctx->nav, &ctx->params);
    fsw_guid_reset(&ctx->guid, &ctx->params);
    ctx->guid.phase = FSW_MODE_IDLE;
    ctx->guid.engine_on = 0;
    fsw_att_configure(&ctx->att, &ctx->params);
    eng_reset(&ctx->eng, &ctx->params);
    send_hello(ctx);
}

/*
 * CONFIG (docs/protocol.md, "Handshake"). param_id 0 with flags COMMIT is COMMIT: initialise
 * navigation and guidance from the parameters and answer COMMITTED (3), or COMMIT_REFUSED (4)
 * with ack.value = the first offending parameter id (0: the configuration as a whole).
 * Any other param_id sets one parameter (0 accepted, 1 unknown id, 2 out of range; 1 and 2
 * leave the value in force unchanged); the COMMIT bit on such a frame is ignored: a parameter
 * CONFIG never commits. param_id 0 without COMMIT is reserved: UNKNOWN_ID.
 */
static void handle_config(fsw_ctx_t *ctx, const fsw_msg_t *msg)
{
    const fsw_config_t *c = &msg->body.config;
    fsw_msg_t a;
    double in_force = 0.0;

    memset(&a, 0, sizeof a);
    if (c->param_id == (uint16_t)FSW_COMMIT_PARAM_ID) {
        if (c->flags & FSW_CONFIG_COMMIT) {
            fsw_commit(ctx);
            a.body.config_ack.status = FSW_ACK_COMMITTED;
        } else {
            a.body.config_ack.status = FSW_ACK_UNKNOWN_ID;
        }
    } else {
        int rc = fsw_param_set(&ctx->params, c->param_id, c->value, &in_force);
        if (rc == FSW_PARAM_OK) {
            configure_all(ctx);   /* new values reach the GNC at once; state only on COMMIT */
        }
        a.body.config_ack.status = (uint16_t)rc;
    }
    a.hdr.msg_type = FSW_MSG_CONFIG_ACK;
    a.hdr.t_us = reply_time(ctx);
    a.body.config_ack.param_id = c->param_id;
    a.body.config_ack.value = in_force;
    send_msg(ctx, &a);
}

void fsw_fill_telemetry(const fsw_ctx_t *ctx, fsw_telemetry_t *t)
{
    const fsw_nav_t *nav = &ctx->nav;
    const fsw_parser_t *p = &ctx->parser;
    int i;

    memset(t, 0, sizeof *t);
    for (i = 0; i < 3; i++) {
        t->est_r_mci[i] = nav->r[i];
        t->est_v_mci[i] = (float)nav->v[i];
    }
    for (i = 0; i < 4; i++) {
        t->est_q_mci_body[i] = nav->q[i];
    }
    t->est_alt = (float)fsw_nav_alt(nav);
    t->lrf_innovation = nav->lrf_innovation;
    t->phase = ctx->guid.phase;
    t->lrf_status = nav->lrf_status;
    t->lrf_rejects = sat16(nav->lrf_rejects);
    t->rx_crc_errors = sat16(p->crc_errors);
    t->rx_framing_errors = sat16(p->framing_errors);
    t->rx_length_errors = sat16(p->length_errors);
    t->rx_unknown_msgs = sat16(p->unknown_msgs);
    t->rx_frames_ok = (uint16_t)(p->frames_ok & 0xFFFFu);
    t->cycle_overruns = sat16(ctx->overruns);
}

/* Finite and within physical bounds (|x| < 1e3 m/s or rad per interval): else treated as invalid. */
static int finite_bounded(float x, float bound)
{
    return x > -bound && x < bound;   /* NaN fails every comparison; +-inf fail the bound */
}

static int imu_plausible(const fsw_sensors_t *s)
{
    int i;
    for (i = 0; i < 3; i++) {
        if (!finite_bounded(s->imu_dv_body[i], 1.0e3f) || !finite_bounded(s->imu_dtheta_body[i], 1.0e3f)) {
            return 0;
        }
    }
    return 1;
}

/* Last line of defence: the COMMAND always carries finite, bounded values. */
static void sanitize_command(fsw_command_t *cmd, float throttle_min)
{
    int i;
    if (!finite_bounded(cmd->throttle, 2.0f)) {
        cmd->throttle = (cmd->flags & FSW_CMD_ENGINE_ON) ? throttle_min : 0.0f;
    }
    cmd->throttle = fsw_clampf(cmd->throttle, 0.0f, 1.0f);
    for (i = 0; i < 3; i++) {
        if (!finite_bounded(cmd->torque_body[i], 1.0e30f)) {
            cmd->torque_body[i] = 0.0f;
        }
    }
}

/*
 * Engine model: advance the modelled actual throttle over the interval just flown with the
 * command that was in force during it (engine on: clamp(throttle, THROTTLE_MIN, 1), else 0;
 * first-order lag ENGINE_TAU, rate limit ENGINE_SLEW, implicit Euler). Returns the mean
 * modelled throttle over the interval (trapezoid).
 */
static float eng_advance(fsw_eng_t *e, const fsw_command_t *last, float throttle_min, float dt)
{
    const fsw_eng_cfg_t *c = &e->cfg;
    float u = 0.0f, f0 = e->thr_model, d;

    if (last->flags & FSW_CMD_ENGINE_ON) {
        u = fsw_clampf(last->throttle, throttle_min, 1.0f);
    }
    if (!(dt > 0.0f)) {
        return f0;
    }
    d = c->tau > 0.0f ? (u - f0) * dt / (c->tau + dt) : u - f0;
    if (c->slew > 0.0f) {
        d = fsw_clampf(d, -c->slew * dt, c->slew * dt);
    }
    e->thr_model = f0 + d;
    return 0.5f * (f0 + e->thr_model);
}

/*
 * Thrust-scale estimate: measured specific force along body +z over the modelled one at
 * scale 1 (f_unit), low-pass THR_EST_TAU, bounded to [THR_EST_MIN, THR_EST_MAX]. Only while
 * the engine clearly burns (f_unit > MON_F_MIN).
 */
static void eng_estimate_scale(fsw_eng_t *e, float dv_z, float f_unit, float dt)
{
    const fsw_eng_cfg_t *c = &e->cfg;
    float k, a;

    if (!c->est_enable || !(dt > 0.0f) || !(f_unit > c->f_min) || !(f_unit > 0.0f)) {
        return;
    }
    k = fsw_clampf(dv_z / dt / f_unit, c->est_min, c->est_max);
    a = fsw_minf(dt / c->est_tau, 1.0f);
    e->scale = fsw_clampf(e->scale + a * (k - e->scale), c->est_min, c->est_max);
}

/*
 * Over-thrust pulse mode (PULSE_ENABLE): in approach, terminal and contingency, when the
 * minimum thrust (THROTTLE_MIN x the scaled THRUST_MAX) is (nearly) the weight or more, i.e.
 * leaves less than PULSE_A_MIN of net downward acceleration, guidance asks for less vertical
 * force than that, and the lander descends slower than the schedule by more than PULSE_V_TOL
 * (hovering or climbing), the engine is cut; it is relit when the vertical speed, predicted
 * past the thrust build-up, is PULSE_V_TOL faster than the schedule (a symmetric band: fewer
 * relights) or after PULSE_OFF_MAX. Two cuts are at least PULSE_ON_MIN of burning apart.
 * Returns 1 while the engine is to be held off.
 */
static uint8_t eng_pulse(fsw_eng_t *e, const fsw_guid_t *g, const fsw_guid_in_t *in, float dt)
{
    const fsw_eng_cfg_t *c = &e->cfg;
    float vr, need, floor_f;

    if (!c->pulse_enable || !g->engine_on ||
        !(g->phase == FSW_MODE_APPROACH || g->phase == FSW_MODE_TERMINAL || g->phase == FSW_MODE_CONTINGENCY)) {
        e->pulse_off = 0;
        e->pulse_t = 0.0f;
        return 0;
    }
    e->pulse_t += dt;
    vr = fsw_dot3f(in->v, in->up);
    if (e->pulse_off) {
        /* Relight early by the speed gained while the thrust builds up again (about half of
         * gravity over the spool-up time ENGINE_TAU + THROTTLE_MIN / ENGINE_SLEW). */
        float t_up = c->tau + (c->slew > 0.0f ? g->cfg.throttle_min / c->slew : 0.0f);
        if (vr - 0.5f * in->g * t_up <= g->v_ref - c->pulse_v_tol || e->pulse_t >= c->pulse_off_max) {
            e->pulse_off = 0;       /* relight */
            e->pulse_t = 0.0f;
        }
    } else {
        need = g->mass * (fsw_dot3f(g->a_cmd, in->up) + in->g);
        floor_f = g->cfg.throttle_min * g->cfg.thrust_max;
        if (floor_f > g->mass * (in->g - c->pulse_a_min) && need < floor_f && vr > g->v_ref + c->pulse_v_tol &&
            e->pulse_t >= c->pulse_on_min) {
            e->pulse_off = 1;
            e->pulse_t = 0.0f;
            e->pulses++;
        }
    }
    return e->pulse_off;
}

/* One GNC cycle on a SENSORS frame; fills the COMMAND body. */
static void gnc_cycle(fsw_ctx_t *ctx, const fsw_msg_t *msg, fsw_command_t *cmd)
{
    const fsw_sensors_t *s = &msg->body.sensors;
    fsw_guid_in_t gin;
    fsw_att_out_t aout;
    float dt, dv_fb[3], dv_use[3], zero[3] = { 0.0f, 0.0f, 0.0f }, thr_avg, f_unit;
    double alt;
    int i;

    /* Interval length: the IMU's own, else the header clock, bounded to 1 s. */
    if (s->imu_dt_us > 0u) {
        dt = (float)s->imu_dt_us * 1e-6f;
    } else if (ctx->have_t && msg->hdr.t_us > ctx->last_t_us) {
        dt = (float)(msg->hdr.t_us - ctx->last_t_us) * 1e-6f;
    } else {
        dt = 0.0f;
    }
    dt = fsw_clampf(dt, 0.0f, 1.0f);

    /* Engine model over the interval the IMU just measured (the last COMMAND was in force). */
    thr_avg = eng_advance(&ctx->eng, &ctx->last_cmd, ctx->guid.cfg.throttle_min, dt);
    f_unit = ctx->guid.mass > 0.0f ? thr_avg * (float)ctx->params.THRUST_MAX / ctx->guid.mass : 0.0f;
    ctx->eng.f_model = f_unit * ctx->eng.scale;

    if ((s->flags & FSW_SENS_IMU_VALID) && imu_plausible(s)) {
        /* Accelerometer plausibility (ACC_MON_*): dv_use is the measurement, or the model once failed. */
        if (!fsw_nav_accel_check(&ctx->nav, s->imu_dv_body, ctx->eng.f_model, dt, dv_use) &&
            ctx->nav.acc_suspect == 0u) {
            eng_estimate_scale(&ctx->eng, s->imu_dv_body[2], f_unit, dt);
        }
        fsw_nav_propagate(&ctx->nav, dv_use, s->imu_dtheta_body, dt);
    } else {
        /* No IMU: dead-reckon on the commanded thrust along body +z, attitude held. */
        dv_fb[0] = 0.0f;
        dv_fb[1] = 0.0f;
        dv_fb[2] = 0.0f;
        if ((ctx->last_cmd.flags & FSW_CMD_ENGINE_ON) && ctx->guid.mass > 0.0f) {
            dv_fb[2] = ctx->last_cmd.throttle * ctx->guid.cfg.thrust_max / ctx->guid.mass * dt;
        }
        fsw_nav_propagate(&ctx->nav, dv_fb, zero, dt);
    }

    /* LRF: only fresh, valid samples are used. */
    if (s->flags & FSW_SENS_LRF_NEW) {
        if ((s->flags & FSW_SENS_LRF_VALID) && finite_bounded(s->lrf_range, 1.0e7f)) {
            float lat = 0.0f;
            if (msg->hdr.t_us > s->lrf_sample_t_us) {
                lat = (float)(msg->hdr.t_us - s->lrf_sample_t_us) * 1e-6f;
            }
            (void)fsw_nav_lrf_update(&ctx->nav, s->lrf_range, lat);
        } else {
            fsw_nav_lrf_invalid(&ctx->nav);
        }
    }

    alt = fsw_nav_alt(&ctx->nav);
    gin.alt = (float)alt;
    fsw_nav_up(&ctx->nav, gin.up);
    for (i = 0; i < 3; i++) {
        gin.v[i] = (float)ctx->nav.v[i];
    }
    /* Vector to the site in double, then float: metre precision 450 km out. */
    gin.to_site[0] = (float)(ctx->params.SITE_R_X - ctx->nav.r[0]);
    gin.to_site[1] = (float)(ctx->params.SITE_R_Y - ctx->nav.r[1]);
    gin.to_site[2] = (float)(ctx->params.SITE_R_Z - ctx->nav.r[2]);
    gin.radius = (float)fsw_nav_radius(&ctx->nav);
    gin.dt = dt;
    gin.g = fsw_nav_gravity(&ctx->nav);
    gin.lrf_locked = ctx->nav.lrf_accepts > 0u ? 1u : 0u;
    if (ctx->eng.cfg.est_enable) {
        /* Thrust-scale estimate: guidance's working THRUST_MAX is the scaled one, so its
         * commands are divided by the scale, its minimum thrust and the mass burn are the real ones. */
        ctx->guid.cfg.thrust_max = (float)ctx->params.THRUST_MAX * ctx->eng.scale;
    }
    fsw_guid_step(&ctx->guid, &gin);

    if (ctx->guid.engine_on) {
        fsw_att_step(&ctx->att, ctx->nav.q, ctx->nav.w_body, ctx->guid.thrust_dir, ctx->guid.throttle, &aout);
        for (i = 0; i < 3; i++) {
            cmd->torque_body[i] = aout.torque_body[i];
        }
        ctx->last_cos_err = aout.cos_err;
        if (eng_pulse(&ctx->eng, &ctx->guid, &gin, dt)) {
            cmd->throttle = 0.0f;               /* engine-off interval: attitude control continues */
            cmd->flags = FSW_CMD_PULSE_OFF;
        } else {
            cmd->throttle = aout.throttle;
            cmd->flags = FSW_CMD_ENGINE_ON;
            fsw_guid_burn(&ctx->guid, aout.throttle, dt);
        }
    } else {
        cmd->throttle = 0.0f;
        cmd->flags = 0;
        ctx->eng.pulse_off = 0;
    }
    if (ctx->nav.acc_failed) {
        cmd->flags = (uint8_t)(cmd->flags | FSW_CMD_ACCEL_FAILED);
    }
    cmd->mode = ctx->guid.phase;
    sanitize_command(cmd, ctx->guid.cfg.throttle_min);
}

static void handle_sensors(fsw_ctx_t *ctx, const fsw_msg_t *msg)
{
    fsw_msg_t out;
    uint64_t t0 = now_us(ctx);
    uint32_t dec;

    memset(&out, 0, sizeof out);
    out.hdr.msg_type = FSW_MSG_COMMAND;
    out.hdr.t_us = msg->hdr.t_us;
    out.body.command.sensors_seq = msg->hdr.seq;
    if (ctx->committed) {
        gnc_cycle(ctx, msg, &out.body.command);
    } else {
        out.body.command.mode = FSW_MODE_IDLE;
    }
    ctx->last_t_us = msg->hdr.t_us;
    ctx->have_t = 1;
    ctx->last_cmd = out.body.command;
    ctx->cycles++;

    if (ctx->hal.now_us != NULL) {
        uint64_t el = now_us(ctx) - t0;
        if ((double)el > ctx->params.CYCLE_BUDGET_US) {
            ctx->overruns++;
        }
    }
    send_msg(ctx, &out);

    dec = (uint32_t)(ctx->params.TLM_DECIMATION + 0.5);
    if (dec < 1u) {
        dec = 1u;
    }
    if ((ctx->cycles - 1u) % dec == 0u) {
        memset(&out, 0, sizeof out);
        out.hdr.msg_type = FSW_MSG_TELEMETRY;
        out.hdr.t_us = msg->hdr.t_us;
        fsw_fill_telemetry(ctx, &out.body.telemetry);
        send_msg(ctx, &out);
    }
}

void fsw_handle_msg(fsw_ctx_t *ctx, const fsw_msg_t *msg)
{
    switch (msg->hdr.msg_type) {
    case FSW_MSG_HELLO:
        send_hello(ctx);
        break;
    case FSW_MSG_CONFIG:
        handle_config(ctx, msg);
        break;
    case FSW_MSG_SENSORS:
        handle_sensors(ctx, msg);
        break;
    default:
        /* CONFIG_ACK, COMMAND, TELEMETRY are F -> H only: ignore. */
        break;
    }
}

static void on_msg(void *user, const fsw_msg_t *msg)
{
    fsw_handle_msg((fsw_ctx_t *)user, msg);
}

void fsw_rx_bytes(fsw_ctx_t *ctx, const uint8_t *data, size_t n)
{
    (void)fsw_parser_feed(&ctx->parser, data, n, on_msg, ctx);
}
