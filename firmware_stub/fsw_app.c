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

static void configure_all(fsw_ctx_t *ctx)
{
    fsw_nav_configure(&ctx->nav, &ctx->params);
    fsw_guid_configure(&ctx->guid, &ctx->params);
    fsw_att_configure(&ctx->att, &ctx->params);
    fsw_eng_configure(&ctx->eng, &ctx->params);
    fsw_chk_configure(&ctx->chk, &ctx->params);
}

void fsw_commit(fsw_ctx_t *ctx)
{
    fsw_nav_reset(&ctx->nav, &ctx->params);
    fsw_guid_reset(&ctx->guid, &ctx->params);
    fsw_att_configure(&ctx->att, &ctx->params);
    fsw_eng_reset(&ctx->eng, &ctx->params);
    fsw_chk_configure(&ctx->chk, &ctx->params);
    fsw_chk_sens_reset(&ctx->smon);
    ctx->fault_flags = 0;
    ctx->reseeds = 0;
    ctx->bad_run = 0;
    ctx->have_good = 0;
    ctx->safe = 0;
    ctx->committed = 1;
    ctx->cycles = 0;
}

uint16_t fsw_commit_checked(fsw_ctx_t *ctx)
{
    uint16_t bad;

    fsw_chk_configure(&ctx->chk, &ctx->params);
    bad = ctx->chk.enable ? fsw_chk_config(&ctx->params) : 0u;
    if (bad != 0u) {
        ctx->committed = 0;   /* refused: no GNC on an implausible configuration */
        ctx->guid.phase = FSW_MODE_IDLE;
        ctx->guid.engine_on = 0;
        return bad;
    }
    fsw_commit(ctx);
    return 0u;
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
    fsw_eng_reset(&ctx->eng, &ctx->params);
    fsw_chk_configure(&ctx->chk, &ctx->params);
    fsw_chk_sens_reset(&ctx->smon);
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
            uint16_t bad = fsw_commit_checked(ctx);
            a.body.config_ack.status = bad == 0u ? FSW_ACK_COMMITTED : FSW_ACK_COMMIT_REFUSED;
            in_force = (double)bad;
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
    t->sensors_gaps = sat16(ctx->smon.gaps);
    t->sensors_rejected = sat16(ctx->smon.rejected);
    t->fault_flags = ctx->fault_flags;
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

/* Largest plausible specific force, m/s^2: CHK_ACC_MARGIN x THRUST_MAX / estimated mass + CHK_ACC_EXTRA. */
static float accel_bound(const fsw_ctx_t *ctx)
{
    float m = ctx->guid.mass > 1.0f ? ctx->guid.mass : 1.0f;
    return ctx->chk.acc_margin * (float)ctx->params.THRUST_MAX / m + ctx->chk.acc_extra;
}

/* Navigation over one accepted interval: the IMU increments (in use->substeps equal steps when
 * they span lost frames), or dead reckoning on the commanded thrust without IMU. */
static void nav_interval(fsw_ctx_t *ctx, const fsw_sens_use_t *use, float f_unit)
{
    float dt = use->dt, dv_fb[3], dv_use[3], zero[3] = { 0.0f, 0.0f, 0.0f };
    int i;

    if (use->imu_ok) {
        /* Accelerometer plausibility (ACC_MON_*): dv_use is the measurement, or the model once failed. */
        if (!fsw_nav_accel_check(&ctx->nav, use->dv, ctx->eng.f_model, dt, dv_use) && ctx->nav.acc_suspect == 0u) {
            fsw_eng_estimate_scale(&ctx->eng, use->dv[2], f_unit, dt);
        }
        if (use->substeps <= 1u) {
            fsw_nav_propagate(&ctx->nav, dv_use, use->dtheta, dt);
        } else {
            /* Lost frames: the accumulated increment spread evenly over the span. */
            float inv = 1.0f / (float)use->substeps, dvk[3], dthk[3];
            uint16_t k;
            for (i = 0; i < 3; i++) {
                dvk[i] = dv_use[i] * inv;
                dthk[i] = use->dtheta[i] * inv;
            }
            for (k = 0; k < use->substeps; k++) {
                fsw_nav_propagate(&ctx->nav, dvk, dthk, dt * inv);
            }
        }
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
}

/*
 * Safe mode (phase SAFE, latched): no site, no schedule. Thrust along the local vertical of the
 * navigation estimate (re-seeded from the last good state whenever it fails its invariants),
 * throttle for a slow descent at V_TERMINAL (hover-ish: weight plus GUID_KV x the rate error,
 * within [THROTTLE_MIN, 1]), the attitude loop keeps body +z upright; engine cut at TD_CUT_ALT.
 */
static void safe_command(fsw_ctx_t *ctx, float dt, fsw_command_t *cmd)
{
    const fsw_guid_cfg_t *gc = &ctx->guid.cfg;
    fsw_att_out_t aout;
    float up[3], g = fsw_nav_gravity(&ctx->nav), vr = fsw_nav_vr(&ctx->nav), a_up, thr;
    int i;

    ctx->guid.phase = FSW_MODE_SAFE;
    fsw_nav_up(&ctx->nav, up);
    if (!(fsw_nav_alt(&ctx->nav) > (double)gc->td_cut)) {
        ctx->guid.engine_on = 0;
    }
    if (!ctx->guid.engine_on) {
        memset(cmd->torque_body, 0, sizeof cmd->torque_body);
        cmd->throttle = 0.0f;
        cmd->flags = FSW_CMD_SAFE_MODE;
        return;
    }
    a_up = g + gc->kv * (-gc->v_term - vr);
    thr = gc->thrust_max > 0.0f ? ctx->guid.mass * a_up / gc->thrust_max : 1.0f;
    thr = fsw_clampf(thr, gc->throttle_min, 1.0f);
    for (i = 0; i < 3; i++) {
        ctx->guid.thrust_dir[i] = up[i];
    }
    ctx->guid.throttle = thr;
    fsw_att_step(&ctx->att, ctx->nav.q, ctx->nav.w_body, up, thr, &aout);
    for (i = 0; i < 3; i++) {
        cmd->torque_body[i] = aout.torque_body[i];
    }
    ctx->last_cos_err = aout.cos_err;
    cmd->throttle = aout.throttle;
    cmd->flags = FSW_CMD_ENGINE_ON | FSW_CMD_SAFE_MODE;
    fsw_guid_burn(&ctx->guid, aout.throttle, dt);
}

/* Re-seed navigation and guidance from the last cycle whose invariants held. */
static void reseed(fsw_ctx_t *ctx)
{
    if (ctx->have_good) {
        ctx->nav = ctx->nav_good;
        ctx->guid = ctx->guid_good;
        ctx->reseeds++;
        ctx->fault_flags |= FSW_FAULT_RESEED;
    }
}

/* One GNC cycle on a SENSORS frame; fills the COMMAND body. */
static void gnc_cycle(fsw_ctx_t *ctx, const fsw_msg_t *msg, fsw_command_t *cmd)
{
    const fsw_sensors_t *s = &msg->body.sensors;
    fsw_guid_in_t gin;
    fsw_att_out_t aout;
    fsw_sens_use_t use;
    float dt, thr_avg, f_unit;
    double alt;
    uint32_t rej, inv;
    int i;

    /* SENSORS against the last accepted frame (interval, lost frames, plausibility). */
    rej = fsw_chk_sensors(&ctx->chk, &ctx->smon, msg, accel_bound(ctx), &use);
    if (rej != 0u) {
        /* Refused: state held, the last COMMAND repeated (its status bits refreshed). */
        ctx->fault_flags |= rej;
        *cmd = ctx->last_cmd;
        cmd->flags = (uint8_t)((cmd->flags & (FSW_CMD_ENGINE_ON | FSW_CMD_ACCEL_FAILED | FSW_CMD_PULSE_OFF |
                                              FSW_CMD_SAFE_MODE)) | FSW_CMD_SENSORS_REJECTED);
        cmd->mode = ctx->guid.phase;
        sanitize_command(cmd, ctx->guid.cfg.throttle_min);
        return;
    }
    if (use.gap > 0u) {
        ctx->fault_flags |= FSW_FAULT_SENS_GAP;
    }
    if (use.resync) {
        ctx->fault_flags |= FSW_FAULT_SENS_RESYNC;
    }
    if (!ctx->chk.enable) {
        use.imu_ok = (uint8_t)(use.imu_ok && imu_plausible(s));   /* the unchecked code's only bound */
    }
    dt = use.dt;

    /* Engine model over the interval the IMU just measured (the last COMMAND was in force). */
    thr_avg = fsw_eng_advance(&ctx->eng, &ctx->last_cmd, ctx->guid.cfg.throttle_min, dt);
    f_unit = ctx->guid.mass > 0.0f ? thr_avg * (float)ctx->params.THRUST_MAX / ctx->guid.mass : 0.0f;
    ctx->eng.f_model = f_unit * ctx->eng.scale;

    nav_interval(ctx, &use, f_unit);

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

    if (ctx->chk.enable && ctx->safe) {
        if (fsw_chk_state(&ctx->chk, &ctx->nav, &ctx->guid) & (FSW_FAULT_INVARIANTS & ~FSW_FAULT_GUID_STATE)) {
            reseed(ctx);
            ctx->guid.phase = FSW_MODE_SAFE;
        }
        safe_command(ctx, dt, cmd);
        cmd->mode = FSW_MODE_SAFE;
        sanitize_command(cmd, ctx->guid.cfg.throttle_min);
        return;
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
        if (fsw_eng_pulse(&ctx->eng, &ctx->guid, &gin, dt)) {
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

    /* State invariants: a violation re-seeds from the last good cycle and repeats its command;
     * CHK_SAFE_N in a row (or one with no good cycle to return to) latch the safe mode. */
    if (ctx->chk.enable) {
        inv = fsw_chk_state(&ctx->chk, &ctx->nav, &ctx->guid) | fsw_chk_command(&ctx->chk, cmd);
        if (inv != 0u) {
            ctx->fault_flags |= inv;
            ctx->bad_run++;
            if (!ctx->have_good || ctx->bad_run >= ctx->chk.safe_n) {
                reseed(ctx);
                ctx->safe = 1;
                ctx->fault_flags |= FSW_FAULT_SAFE;
                safe_command(ctx, dt, cmd);
                cmd->mode = FSW_MODE_SAFE;
            } else {
                reseed(ctx);
                *cmd = ctx->last_cmd;
                cmd->mode = ctx->guid.phase;
            }
        } else {
            ctx->bad_run = 0;
            ctx->nav_good = ctx->nav;
            ctx->guid_good = ctx->guid;
            ctx->have_good = 1;
        }
    }
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
