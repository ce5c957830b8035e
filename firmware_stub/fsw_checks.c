/*
 * fsw_checks.c - second line of defence. See fsw_checks.h and docs/flight-code.md.
 *
 * libm: sqrt()/sqrtf() only; isfinite() is a classification macro.
 */
#include "fsw_checks.h"

#include <math.h>
#include <string.h>

#include "fsw_math.h"

#define CHK_QUAT_TOL   1.0e-3   /* | |q| - 1 | accepted in CONFIG and in the state */
#define CHK_G_SURF_MIN 1.0      /* m/s^2: GM / CHK_BODY_RADIUS^2 of a Moon-sized body (Moon 1.62) */
#define CHK_G_SURF_MAX 2.5
#define CHK_ACCUM_REL  1.0e-4f  /* relative part of the accumulator consistency tolerance */

void fsw_chk_configure(fsw_chk_cfg_t *c, const fsw_params_t *p)
{
    c->body_radius = p->CHK_BODY_RADIUS;
    c->site_tol = p->CHK_SITE_TOL;
    c->alt_max = p->CHK_ALT_MAX;
    c->v_max = (float)p->CHK_V_MAX;
    c->acc_margin = (float)p->CHK_ACC_MARGIN;
    c->acc_extra = (float)p->CHK_ACC_EXTRA;
    c->rate_max = (float)p->CHK_RATE_MAX;
    c->dt_tol = (float)p->CHK_DT_TOL;
    c->dt_max = (float)p->CHK_DT_MAX;
    c->accum_tol = (float)p->CHK_ACCUM_TOL;
    c->rcs_tmax[0] = (float)p->RCS_TMAX_X;
    c->rcs_tmax[1] = (float)p->RCS_TMAX_Y;
    c->rcs_tmax[2] = (float)p->RCS_TMAX_Z;
    c->resync_n = (uint16_t)(p->CHK_RESYNC_N + 0.5);
    c->safe_n = (uint16_t)(p->CHK_SAFE_N + 0.5);
    c->gap_steps_max = (uint16_t)(p->CHK_GAP_STEPS_MAX + 0.5);
    c->enable = p->CHK_ENABLE >= 0.5 ? 1u : 0u;
    c->pad_ = 0;
}

void fsw_chk_sens_reset(fsw_sens_mon_t *m)
{
    memset(m, 0, sizeof *m);
}

static double norm3d(double x, double y, double z)
{
    return sqrt(x * x + y * y + z * z);
}

uint16_t fsw_chk_config(const fsw_params_t *p)
{
    size_t i, n = fsw_param_count();
    double r = p->CHK_BODY_RADIUS, rs, rn, qn, gs;

    for (i = 0; i < n; i++) {
        const fsw_param_info_t *info = fsw_param_at(i);
        double v = 0.0;
        if (info != NULL && (fsw_param_get(p, info->id, &v) != FSW_PARAM_OK || !isfinite(v))) {
            return info->id;
        }
    }
    gs = p->GM / (r * r);
    if (!(gs >= CHK_G_SURF_MIN && gs <= CHK_G_SURF_MAX)) {
        return (uint16_t)FSW_PID_GM;
    }
    rs = norm3d(p->SITE_R_X, p->SITE_R_Y, p->SITE_R_Z);
    if (!(rs >= r - p->CHK_SITE_TOL && rs <= r + p->CHK_SITE_TOL)) {
        return (uint16_t)FSW_PID_SITE_R_X;
    }
    rn = norm3d(p->NAV_R0_X, p->NAV_R0_Y, p->NAV_R0_Z);
    if (!(rn >= r - p->CHK_SITE_TOL && rn <= r + p->CHK_ALT_MAX)) {
        return (uint16_t)FSW_PID_NAV_R0_X;
    }
    if (!(norm3d(p->NAV_V0_X, p->NAV_V0_Y, p->NAV_V0_Z) <= p->CHK_V_MAX)) {
        return (uint16_t)FSW_PID_NAV_V0_X;
    }
    qn = sqrt(p->NAV_Q0_W * p->NAV_Q0_W + p->NAV_Q0_X * p->NAV_Q0_X + p->NAV_Q0_Y * p->NAV_Q0_Y +
              p->NAV_Q0_Z * p->NAV_Q0_Z);
    if (!(qn >= 1.0 - CHK_QUAT_TOL && qn <= 1.0 + CHK_QUAT_TOL)) {
        return (uint16_t)FSW_PID_NAV_Q0_W;
    }
    if (!(p->MASS0 > 0.0)) {
        return (uint16_t)FSW_PID_MASS0;
    }
    return 0u;
}

static int finite3f(const float a[3])
{
    return isfinite(a[0]) && isfinite(a[1]) && isfinite(a[2]);
}

static int finite3d(const double a[3])
{
    return isfinite(a[0]) && isfinite(a[1]) && isfinite(a[2]);
}

/* |a - b| <= tol * b for unsigned microsecond counts (b > 0). */
static int dt_close(uint64_t a, uint64_t b, float tol)
{
    double d = (double)a - (double)b;
    return fabs(d) <= (double)tol * (double)b;
}

/* The interval rule of the unchecked code: the IMU's own dt, else the header clock, bounded to 1 s. */
static void legacy_use(const fsw_sens_mon_t *m, const fsw_msg_t *msg, fsw_sens_use_t *u)
{
    const fsw_sensors_t *s = &msg->body.sensors;
    float dt = 0.0f;
    if (s->imu_dt_us > 0u) {
        dt = (float)s->imu_dt_us * 1e-6f;
    } else if (m->have_ref && msg->hdr.t_us > m->ref_t_us) {
        dt = (float)(msg->hdr.t_us - m->ref_t_us) * 1e-6f;
    }
    u->dt = fsw_clampf(dt, 0.0f, 1.0f);
    memcpy(u->dv, s->imu_dv_body, sizeof u->dv);
    memcpy(u->dtheta, s->imu_dtheta_body, sizeof u->dtheta);
}

/* All six accumulators exactly zero: not provided (or no interval yet, as in the first frame). */
static int all_zero(const fsw_sensors_t *s)
{
    int i;
    for (i = 0; i < 3; i++) {
        if (s->imu_dv_accum_body[i] != 0.0 || s->imu_dtheta_accum_body[i] != 0.0) {
            return 0;
        }
    }
    return 1;
}

static void accept(fsw_sens_mon_t *m, const fsw_msg_t *msg, uint16_t gap)
{
    const fsw_sensors_t *s = &msg->body.sensors;
    m->ref_t_us = msg->hdr.t_us;
    m->ref_seq = msg->hdr.seq;
    m->ref_acc_ok = 0u;
    if ((s->flags & FSW_SENS_IMU_VALID) && finite3d(s->imu_dv_accum_body) && finite3d(s->imu_dtheta_accum_body) &&
        !all_zero(s)) {
        memcpy(m->ref_dv_acc, s->imu_dv_accum_body, sizeof m->ref_dv_acc);
        memcpy(m->ref_dth_acc, s->imu_dtheta_accum_body, sizeof m->ref_dth_acc);
        m->ref_acc_ok = 1u;
    }
    if ((s->flags & FSW_SENS_IMU_VALID) && s->imu_dt_us > 0u) {
        m->ref_dt_us = s->imu_dt_us;
    }
    m->have_ref = 1u;
    /* frames skipped by sequence number that were received (and refused) are not lost */
    m->gaps += gap > m->reject_run ? (uint32_t)(gap - m->reject_run) : 0u;
    m->reject_run = 0;
}

/* Physically possible increments over dt (s > 0). */
static uint32_t physical(const float dv[3], const float dth[3], float dt, float a_max, float rate_max)
{
    uint32_t bad = 0u;
    if (!(fsw_norm3f(dv) <= a_max * dt)) {
        bad |= FSW_FAULT_SENS_ACCEL;
    }
    if (!(fsw_norm3f(dth) <= rate_max * dt)) {
        bad |= FSW_FAULT_SENS_RATE;
    }
    return bad;
}

/* Per-frame checks that need no previous frame (also the re-anchor condition). */
static uint32_t self_consistent(const fsw_chk_cfg_t *c, const fsw_sensors_t *s, float a_max)
{
    float dt;
    if (!(s->flags & FSW_SENS_IMU_VALID)) {
        return 0u;
    }
    if (!finite3f(s->imu_dv_body) || !finite3f(s->imu_dtheta_body)) {
        return FSW_FAULT_SENS_NONFINITE;
    }
    if (s->imu_dt_us == 0u) {
        /* no interval: only zero increments make sense */
        return (s->imu_dv_body[0] == 0.0f && s->imu_dv_body[1] == 0.0f && s->imu_dv_body[2] == 0.0f &&
                s->imu_dtheta_body[0] == 0.0f && s->imu_dtheta_body[1] == 0.0f && s->imu_dtheta_body[2] == 0.0f)
                   ? 0u : FSW_FAULT_SENS_DT;
    }
    dt = (float)s->imu_dt_us * 1e-6f;
    if (!(dt <= c->dt_max)) {
        return FSW_FAULT_SENS_DT;
    }
    return physical(s->imu_dv_body, s->imu_dtheta_body, dt, a_max, c->rate_max);
}

static void per_interval_use(const fsw_sensors_t *s, fsw_sens_use_t *u)
{
    memcpy(u->dv, s->imu_dv_body, sizeof u->dv);
    memcpy(u->dtheta, s->imu_dtheta_body, sizeof u->dtheta);
    u->dt = (float)s->imu_dt_us * 1e-6f;
    u->imu_ok = 1u;
}

uint32_t fsw_chk_sensors(const fsw_chk_cfg_t *c, fsw_sens_mon_t *m, const fsw_msg_t *msg, float a_max,
                         fsw_sens_use_t *u)
{
    const fsw_sensors_t *s = &msg->body.sensors;
    const int imu = (s->flags & FSW_SENS_IMU_VALID) != 0;
    uint32_t bad = 0u;
    uint16_t gap = 0;
    uint64_t span = 0;
    int i;

    memset(u, 0, sizeof *u);
    u->substeps = 1;
    if (!c->enable) {
        legacy_use(m, msg, u);
        u->imu_ok = (uint8_t)(imu ? 1 : 0);
        accept(m, msg, 0);
        return 0u;
    }

    if (!m->have_ref) {
        /* First frame after COMMIT: nothing to compare with but itself. */
        bad = self_consistent(c, s, a_max);
        if (bad == 0u) {
            if (imu) {
                per_interval_use(s, u);
            }
            accept(m, msg, 0);
            return 0u;
        }
    } else {
        gap = (uint16_t)(msg->hdr.seq - m->ref_seq - 1u);
        if (!(msg->hdr.t_us > m->ref_t_us)) {
            bad |= FSW_FAULT_SENS_TIME;
        }
        if (gap >= 0x8000u) {
            bad |= FSW_FAULT_SENS_SEQ;   /* behind the reference: old, duplicate or reordered */
        }
        if (bad == 0u) {
            span = msg->hdr.t_us - m->ref_t_us;
            bad = self_consistent(c, s, a_max);
        }
        if (bad == 0u && imu) {
            uint64_t expect = (uint64_t)s->imu_dt_us * ((uint64_t)gap + 1u);
            if (s->imu_dt_us == 0u || !dt_close(span, expect, c->dt_tol) ||
                (m->ref_dt_us > 0u && !dt_close(s->imu_dt_us, m->ref_dt_us, c->dt_tol))) {
                bad |= FSW_FAULT_SENS_DT;
            }
        }
        if (bad == 0u && imu && m->ref_acc_ok && !all_zero(s)) {
            double dva[3], dtha[3];
            if (!finite3d(s->imu_dv_accum_body) || !finite3d(s->imu_dtheta_accum_body)) {
                bad |= FSW_FAULT_SENS_NONFINITE;
            } else {
                for (i = 0; i < 3; i++) {
                    dva[i] = s->imu_dv_accum_body[i] - m->ref_dv_acc[i];
                    dtha[i] = s->imu_dtheta_accum_body[i] - m->ref_dth_acc[i];
                }
                if (gap == 0u) {
                    /* the increment and the accumulators must tell the same story */
                    for (i = 0; i < 3; i++) {
                        float tv = c->accum_tol + CHK_ACCUM_REL * fabsf(s->imu_dv_body[i]);
                        float tt = c->accum_tol + CHK_ACCUM_REL * fabsf(s->imu_dtheta_body[i]);
                        if (!(fabs(dva[i] - (double)s->imu_dv_body[i]) <= (double)tv) ||
                            !(fabs(dtha[i] - (double)s->imu_dtheta_body[i]) <= (double)tt)) {
                            bad |= FSW_FAULT_SENS_ACCUM;
                        }
                    }
                } else {
                    /* frames lost: the accumulators span them */
                    float dt = (float)span * 1e-6f;
                    for (i = 0; i < 3; i++) {
                        u->dv[i] = (float)dva[i];
                        u->dtheta[i] = (float)dtha[i];
                    }
                    bad |= physical(u->dv, u->dtheta, dt, a_max, c->rate_max);
                    if (bad == 0u) {
                        u->dt = dt;
                        u->imu_ok = 1u;
                        u->gap = gap;
                        u->substeps = (uint16_t)((uint32_t)gap + 1u < c->gap_steps_max ? (uint32_t)gap + 1u
                                                                                          : c->gap_steps_max);
                        if (u->substeps < 1u) {
                            u->substeps = 1u;
                        }
                        accept(m, msg, gap);
                        return 0u;
                    }
                }
            }
        }
        if (bad == 0u) {
            if (imu) {
                per_interval_use(s, u);   /* no gap, or a gap the accumulators cannot span: as before */
            } else {
                float dt = s->imu_dt_us > 0u ? (float)s->imu_dt_us * 1e-6f : (float)span * 1e-6f;
                u->dt = fsw_clampf(dt, 0.0f, c->dt_max);
            }
            u->gap = gap;
            accept(m, msg, gap);
            return 0u;
        }
    }

    /* Refused: the reference stays, so nothing the accumulators carry is lost. */
    m->rejected++;
    m->reject_run++;
    if (m->reject_run >= c->resync_n && (bad & (FSW_FAULT_SENS_TIME | FSW_FAULT_SENS_SEQ | FSW_FAULT_SENS_DT |
                                                FSW_FAULT_SENS_ACCUM)) &&
        self_consistent(c, s, a_max) == 0u && (!imu || s->imu_dt_us > 0u)) {
        /* A run of refusals on the time base or accumulators alone (a new clock, a reset IMU):
         * re-anchor on this frame, which is plausible by itself, and integrate its own increment. */
        m->rejected--;
        m->resyncs++;
        if (imu) {
            per_interval_use(s, u);
        } else {
            u->dt = fsw_clampf((float)s->imu_dt_us * 1e-6f, 0.0f, c->dt_max);
        }
        u->resync = 1u;
        accept(m, msg, 0);
        return 0u;
    }
    return bad;
}

uint32_t fsw_chk_state(const fsw_chk_cfg_t *c, const fsw_nav_t *nav, const fsw_guid_t *g)
{
    uint32_t bad = 0u;
    double rn, vn, qn;
    int i;

    for (i = 0; i < 3; i++) {
        if (!isfinite(nav->r[i]) || !isfinite(nav->v[i])) {
            bad |= FSW_FAULT_NAV_NONFINITE;
        }
    }
    for (i = 0; i < 4; i++) {
        if (!isfinite(nav->q[i])) {
            bad |= FSW_FAULT_NAV_NONFINITE;
        }
    }
    if (!(isfinite(nav->p00) && isfinite(nav->p01) && isfinite(nav->p11))) {
        bad |= FSW_FAULT_NAV_NONFINITE;
    }
    rn = norm3d(nav->r[0], nav->r[1], nav->r[2]);
    if (!(rn >= c->body_radius - c->site_tol && rn <= c->body_radius + c->alt_max)) {
        bad |= FSW_FAULT_NAV_RADIUS;
    }
    vn = norm3d(nav->v[0], nav->v[1], nav->v[2]);
    if (!(vn <= (double)c->v_max)) {
        bad |= FSW_FAULT_NAV_SPEED;
    }
    qn = (double)sqrtf(nav->q[0] * nav->q[0] + nav->q[1] * nav->q[1] + nav->q[2] * nav->q[2] + nav->q[3] * nav->q[3]);
    if (!(qn >= 1.0 - CHK_QUAT_TOL && qn <= 1.0 + CHK_QUAT_TOL)) {
        bad |= FSW_FAULT_NAV_QUAT;
    }
    if (!finite3f(g->thrust_dir) || !isfinite(g->throttle) || !(g->mass > 0.0f) || !isfinite(g->mass) ||
        !finite3f(g->a_cmd) || !isfinite(g->v_ref)) {
        bad |= FSW_FAULT_GUID_STATE;
    } else {
        float n = fsw_norm3f(g->thrust_dir);
        if (g->engine_on && !(n > 0.999f && n < 1.001f)) {
            bad |= FSW_FAULT_GUID_STATE;
        }
    }
    return bad;
}

uint32_t fsw_chk_command(const fsw_chk_cfg_t *c, const fsw_command_t *cmd)
{
    int i;
    if (!(cmd->throttle >= 0.0f && cmd->throttle <= 1.0f)) {
        return FSW_FAULT_CMD_RANGE;
    }
    for (i = 0; i < 3; i++) {
        if (!(fabsf(cmd->torque_body[i]) <= c->rcs_tmax[i] * 1.0001f)) {
            return FSW_FAULT_CMD_RANGE;
        }
    }
    return 0u;
}
