/*
 * fsw_guidance.c - see fsw_guidance.h. libm: sqrtf() only (the ground-track
 * angle uses fsw_guid_atan2_pos(), a series, no trigonometry from libm).
 */
#include "fsw_guidance.h"

#include <math.h>
#include <string.h>

#include "fsw_math.h"
#include "fsw_protocol.h"

#define G0 9.80665f

void fsw_guid_configure(fsw_guid_t *g, const fsw_params_t *p)
{
    fsw_guid_cfg_t *c = &g->cfg;
    double ct = fsw_cos_small(p->GUID_TILT_MAX);

    c->a_plan = (float)p->A_PLAN;
    c->v_max = (float)p->V_DESCENT_MAX;
    c->v_term = (float)p->V_TERMINAL;
    c->h_term = (float)p->H_TERMINAL;
    c->td_cut = (float)p->TD_CUT_ALT;
    c->kv = (float)p->GUID_KV;
    c->kh = (float)p->GUID_KH;
    c->ah_max = (float)p->GUID_AH_MAX;
    c->tan_tilt_max = ct > 1e-3 ? (float)(sqrt(1.0 - ct * ct) / ct) : 1000.0f;
    c->cont_enable = p->CONTINGENCY_ENABLE >= 0.5 ? 1u : 0u;
    c->cont_alt = (float)p->CONTINGENCY_ALT;
    c->a_cont = (float)p->A_PLAN_CONT;
    c->v_max_cont = (float)p->V_DESCENT_MAX_CONT;
    c->cont_margin = (float)p->CONT_H_MARGIN;
    c->thrust_max = (float)p->THRUST_MAX;
    c->throttle_min = (float)p->THROTTLE_MIN;
    c->inv_ve = (float)(1.0 / (p->ISP * (double)G0));
    c->brk_enable = p->BRK_ENABLE >= 0.5 ? 1u : 0u;
    c->brk_start_alt = (float)p->BRK_START_ALT;
    c->brk_start_vh = (float)p->BRK_START_VH;
    c->gate_alt = (float)p->BRK_GATE_ALT;
    c->gate_range = (float)p->BRK_GATE_RANGE;
    c->gate_vh = (float)p->BRK_GATE_VH;
    c->gate_vdown = (float)p->BRK_GATE_VDOWN;
    c->gate_ah = (float)p->BRK_GATE_AH;
    c->gate_aup = (float)p->BRK_GATE_AUP;
    c->jerk = (float)p->BRK_JERK;
    c->tgo_end = (float)p->BRK_TGO_END;
    c->rate_max = (float)p->BRK_RATE_MAX;
    c->apr_vh_max = (float)p->APR_VH_MAX;
    c->apr_ah_plan = (float)p->APR_AH_PLAN;
    c->apr_kp = (float)p->APR_KP;
    c->hold_alt = (float)p->APR_HOLD_ALT;
    c->hold_dist = (float)p->APR_HOLD_DIST;
    c->hold_tmax = (float)p->APR_HOLD_TMAX;
    memset(c->pad_, 0, sizeof c->pad_);
}

void fsw_guid_reset(fsw_guid_t *g, const fsw_params_t *p)
{
    memset(g, 0, sizeof *g);
    fsw_guid_configure(g, p);
    g->mass = (float)p->MASS0;
    g->phase = FSW_MODE_BRAKING;    /* the first cycle decides: braking, or straight to approach */
    g->engine_on = 1;
    g->thrust_dir[0] = 1.0f;
}

float fsw_guid_v_down(const fsw_guid_cfg_t *c, uint8_t phase, float alt, float *a_ff)
{
    float a = c->a_plan, vmax = c->v_max, hb = c->h_term, dh, vs;

    *a_ff = 0.0f;
    if (phase == FSW_MODE_TERMINAL || phase == FSW_MODE_TOUCHDOWN) {
        return c->v_term;
    }
    if (phase == FSW_MODE_CONTINGENCY) {
        a = c->a_cont;
        vmax = c->v_max_cont;
        hb = c->h_term + c->cont_margin;
    }
    dh = alt - hb;
    if (dh <= 0.0f) {
        return c->v_term;
    }
    vs = sqrtf(2.0f * a * dh) + c->v_term;
    if (vs >= vmax) {
        return vmax;
    }
    *a_ff = a;   /* d/dt of the schedule while following it: constant deceleration */
    return vs;
}

float fsw_guid_atan2_pos(float s, float c)
{
    float t, t2, r, n;

    if (s < 0.0f) {
        s = -s;
    }
    n = sqrtf(s * s + c * c);
    if (n <= 0.0f) {
        return 0.0f;
    }
    s /= n;
    c /= n;
    if (c <= -0.9999f) {
        return 3.14159265f;
    }
    /* tan(a/2) = s / (1 + c), then tan(a/4), tan(a/8) by t / (1 + sqrt(1 + t^2)): |t| <= tan(pi/8) */
    t = s / (1.0f + c);
    t = t / (1.0f + sqrtf(1.0f + t * t));
    t = t / (1.0f + sqrtf(1.0f + t * t));
    t2 = t * t;
    r = t * (1.0f - t2 * (1.0f / 3.0f - t2 * (1.0f / 5.0f - t2 * (1.0f / 7.0f - t2 * (1.0f / 9.0f - t2 * (1.0f / 11.0f - t2 / 13.0f))))));
    return 8.0f * r;
}

/* Horizontal (perpendicular to up) part of the vector to the site, its length, and the radial part. */
static float site_horizontal(const fsw_guid_in_t *in, float dh[3], float *dv)
{
    int i;
    *dv = fsw_dot3f(in->to_site, in->up);
    for (i = 0; i < 3; i++) {
        dh[i] = in->to_site[i] - *dv * in->up[i];
    }
    return fsw_norm3f(dh);
}

/* Turn the unit vector d toward the unit vector target by at most the angle m (rad, small). */
static void slew_toward(float d[3], const float target[3], float m)
{
    float c = fsw_dot3f(d, target), p[3], pn, cm, sm, m2;
    int i;

    m2 = m * m;
    cm = 1.0f - m2 / 2.0f * (1.0f - m2 / 12.0f);   /* cos m */
    if (c >= cm || c < -0.99f) {
        memcpy(d, target, 3 * sizeof(float));
        return;
    }
    sm = m * (1.0f - m2 / 6.0f * (1.0f - m2 / 20.0f));   /* sin m */
    for (i = 0; i < 3; i++) {
        p[i] = target[i] - c * d[i];
    }
    pn = fsw_norm3f(p);
    for (i = 0; i < 3; i++) {
        d[i] = cm * d[i] + sm * p[i] / pn;
    }
    pn = fsw_norm3f(d);
    for (i = 0; i < 3; i++) {
        d[i] /= pn;
    }
}

/*
 * Braking phase: explicit (E-) guidance to the high gate with the Apollo
 * quadratic acceleration profile and the jerk-condition time-to-go (see
 * fsw_guidance.h). Returns 1 with the thrust command written, or 0 after
 * handing over to approach (the caller then runs the approach law).
 */
static int fsw_guid_braking(fsw_guid_t *g, const fsw_guid_in_t *in)
{
    const fsw_guid_cfg_t *c = &g->cfg;
    float dh[3], dv, dist, ed[3], ec[3], r, theta, xgo, vu, vd, vc, dx, dz, T, f, fp;
    float vfd, vfu, afd, afu, ad, au, ac, td, tu, tc, F[3], fmag, dir[3];
    int i, k;

    dist = site_horizontal(in, dh, &dv);
    if (dist < 1.0f || in->alt < 0.5f * c->gate_alt) {
        g->phase = FSW_MODE_APPROACH;
        return 0;
    }
    r = in->radius > 0.0f ? in->radius : in->alt + 1737400.0f;
    for (i = 0; i < 3; i++) {
        ed[i] = dh[i] / dist;
    }
    fsw_cross3f(in->up, ed, ec);
    /* Ground-track angle to the site; the along-track distance at the current radius (polar coordinates). */
    theta = fsw_guid_atan2_pos(dist, r + dv);
    xgo = r * theta;
    vu = fsw_dot3f(in->v, in->up);
    vd = fsw_dot3f(in->v, ed);
    vc = fsw_dot3f(in->v, ec);

    vfd = c->gate_vh;
    vfu = -c->gate_vdown;
    afd = -c->gate_ah;
    afu = c->gate_aup;
    dx = xgo - c->gate_range;
    dz = c->gate_alt - in->alt;

    /* Time-to-go: Newton on J T^3 - 6 a_f T^2 + 6 (3 v_f + v) T - 24 dx = 0, from the last T - dt. */
    if (g->tgo > 0.0f) {
        T = g->tgo - in->dt;
    } else {
        T = (vd + vfd) > 1.0f ? 2.0f * dx / (vd + vfd) : 2.0f * c->tgo_end;
    }
    if (T < 0.1f) {
        T = 0.1f;
    }
    for (k = 0; k < 4; k++) {
        f = ((c->jerk * T - 6.0f * afd) * T + 6.0f * (3.0f * vfd + vd)) * T - 24.0f * dx;
        fp = (3.0f * c->jerk * T - 12.0f * afd) * T + 6.0f * (3.0f * vfd + vd);
        if (!(fp > 1e-6f)) {
            break;
        }
        T -= f / fp;
        if (T < 0.1f) {
            T = 0.1f;
        }
    }
    if (!(T <= 1.0e4f)) {
        T = 1.0e4f;   /* also catches NaN */
    }
    g->tgo = T;
    g->x_go = xgo;
    g->site_dist = dist;
    if (T <= c->tgo_end) {
        g->phase = FSW_MODE_APPROACH;
        return 0;
    }

    /* Kinematic acceleration command: a = 12 dp / T^2 - 6 (v_f + v) / T + a_f, per axis. */
    ad = 12.0f * dx / (T * T) - 6.0f * (vfd + vd) / T + afd;
    au = 12.0f * dz / (T * T) - 6.0f * (vfu + vu) / T + afu;
    ac = -6.0f * vc / T;
    /* Thrust acceleration: minus gravity, centrifugal and Coriolis of the track frame. */
    tu = au + in->g - (vd * vd + vc * vc) / r;
    td = ad + vu * vd / r;
    tc = ac + vu * vc / r;
    for (i = 0; i < 3; i++) {
        g->a_cmd[i] = au * in->up[i] + ad * ed[i] + ac * ec[i];
        F[i] = g->mass * (tu * in->up[i] + td * ed[i] + tc * ec[i]);
    }
    fmag = fsw_norm3f(F);
    if (fmag > 1e-6f) {
        for (i = 0; i < 3; i++) {
            dir[i] = F[i] / fmag;
        }
    } else {
        memcpy(dir, in->up, sizeof dir);
    }
    if (g->started == 2u && c->rate_max > 0.0f && in->dt > 0.0f) {
        slew_toward(g->thrust_dir, dir, fsw_minf(c->rate_max * in->dt, 0.5f));
    } else {
        memcpy(g->thrust_dir, dir, sizeof dir);   /* first braking cycle: the attitude loop slews */
    }
    g->started = 2u;
    g->v_ref = vfu;
    g->throttle = fsw_clampf(fmag / c->thrust_max, c->throttle_min, 1.0f);
    return 1;
}

static void update_phase(fsw_guid_t *g, const fsw_guid_in_t *in)
{
    const fsw_guid_cfg_t *c = &g->cfg;

    if (g->phase == FSW_MODE_IDLE || g->phase == FSW_MODE_TOUCHDOWN) {
        return;
    }
    if (!g->started) {
        /* Braking only from a powered-descent start: high, fast, and with a site to aim at. */
        float vr = fsw_dot3f(in->v, in->up), vh2 = fsw_dot3f(in->v, in->v) - vr * vr, dh[3], dv;
        g->started = 1u;
        if (g->phase == FSW_MODE_BRAKING &&
            (!c->brk_enable || in->alt <= c->brk_start_alt || vh2 <= c->brk_start_vh * c->brk_start_vh ||
             site_horizontal(in, dh, &dv) < 1.0f)) {
            g->phase = FSW_MODE_APPROACH;
        }
    }
    if (g->phase == FSW_MODE_APPROACH && c->cont_enable && !in->lrf_locked && in->alt <= c->cont_alt) {
        g->phase = FSW_MODE_CONTINGENCY;
    }
    if ((g->phase == FSW_MODE_APPROACH || g->phase == FSW_MODE_CONTINGENCY) && in->alt <= c->h_term) {
        g->phase = FSW_MODE_TERMINAL;
    }
    if (in->alt <= c->td_cut) {
        g->phase = FSW_MODE_TOUCHDOWN;
    }
}

void fsw_guid_step(fsw_guid_t *g, const fsw_guid_in_t *in)
{
    const fsw_guid_cfg_t *c = &g->cfg;
    float vr, vh[3], vh_ref[3] = { 0.0f, 0.0f, 0.0f }, ah[3], a_ff, vdown, a_up, fv, fh_max, fh, ahn, fmag, f[3];
    float dh[3], dv, dist, ah_ff = 0.0f, vhn;
    int i;

    update_phase(g, in);
    if (g->phase == FSW_MODE_IDLE || g->phase == FSW_MODE_TOUCHDOWN) {
        g->engine_on = 0;
        g->throttle = 0.0f;
        memcpy(g->thrust_dir, in->up, sizeof g->thrust_dir);
        memset(g->a_cmd, 0, sizeof g->a_cmd);
        return;
    }
    g->engine_on = 1;
    if (g->phase == FSW_MODE_BRAKING && fsw_guid_braking(g, in)) {
        return;
    }
    if (g->phase == FSW_MODE_APPROACH && c->cont_enable && !in->lrf_locked && in->alt <= c->cont_alt) {
        g->phase = FSW_MODE_CONTINGENCY;   /* hand-over from braking below CONTINGENCY_ALT */
    }

    /* Site targeting: horizontal velocity reference toward the site (approach and contingency). */
    dist = site_horizontal(in, dh, &dv);
    g->site_dist = dist;
    if ((g->phase == FSW_MODE_APPROACH || g->phase == FSW_MODE_CONTINGENCY) && c->apr_vh_max > 0.0f && dist > 1e-3f) {
        float vs = sqrtf(2.0f * c->apr_ah_plan * dist), vl = c->apr_kp * dist;
        float vmag = fsw_minf(fsw_minf(c->apr_vh_max, vs), vl);
        for (i = 0; i < 3; i++) {
            vh_ref[i] = dh[i] * (vmag / dist);
        }
        if (vs < c->apr_vh_max && vs < vl && fsw_dot3f(in->v, dh) > 0.0f) {
            ah_ff = -c->apr_ah_plan;   /* on the deceleration branch: its planned deceleration, feed-forward */
        }
    }

    /* Vertical channel: follow the descent-rate schedule. */
    vr = fsw_dot3f(in->v, in->up);
    vdown = fsw_guid_v_down(c, g->phase, in->alt, &a_ff);
    /* Approach hover hold: stop the descent at APR_HOLD_ALT until the site is within APR_HOLD_DIST
     * and the horizontal speed is down to the reference there (not merely passing through). */
    for (i = 0; i < 3; i++) {
        vh[i] = in->v[i] - vr * in->up[i];
    }
    vhn = fsw_norm3f(vh);
    if (g->phase == FSW_MODE_APPROACH && !g->hold_done) {
        if (c->hold_alt <= 0.0f || c->apr_vh_max <= 0.0f || g->hold_t >= c->hold_tmax || dist <= 1e-3f ||
            (dist <= c->hold_dist && vhn <= fsw_maxf(c->apr_kp * c->hold_dist, 0.5f))) {
            g->hold_done = 1u;
        } else {
            float dh_hold = in->alt - c->hold_alt;
            float vhold = dh_hold > 0.0f ? sqrtf(2.0f * c->a_plan * dh_hold) : 0.0f;
            if (vhold < vdown) {
                vdown = vhold;
                a_ff = dh_hold > 0.0f ? c->a_plan : 0.0f;
            }
            if (dh_hold <= 1.0f) {
                g->hold_t += in->dt;
            }
        }
    }
    g->v_ref = -vdown;
    a_up = a_ff + c->kv * (g->v_ref - vr);

    /* Horizontal channel: follow the reference (zero: null the horizontal velocity). */
    for (i = 0; i < 3; i++) {
        ah[i] = c->kh * (vh_ref[i] - vh[i]) + (ah_ff != 0.0f ? ah_ff * dh[i] / dist : 0.0f);
    }
    ahn = fsw_norm3f(ah);
    if (ahn > c->ah_max && ahn > 0.0f) {
        for (i = 0; i < 3; i++) {
            ah[i] *= c->ah_max / ahn;
        }
        ahn = c->ah_max;
    }
    for (i = 0; i < 3; i++) {
        g->a_cmd[i] = a_up * in->up[i] + ah[i];
    }

    /* Thrust F = m (a_cmd - g_vec), vertical first, then what is left for horizontal. */
    /* The engine cannot go below THROTTLE_MIN while burning: floor the vertical force there,
     * so the minimum thrust is still available for horizontal control. */
    fv = fsw_clampf(g->mass * (a_up + in->g), c->throttle_min * c->thrust_max, c->thrust_max);
    fh = g->mass * ahn;
    fh_max = fsw_minf(fv * c->tan_tilt_max, sqrtf(fsw_maxf(c->thrust_max * c->thrust_max - fv * fv, 0.0f)));
    if (fh > fh_max) {
        fh = fh_max;
    }
    for (i = 0; i < 3; i++) {
        f[i] = fv * in->up[i] + (ahn > 0.0f ? ah[i] * (fh / ahn) : 0.0f);
    }
    fmag = fsw_norm3f(f);
    if (fmag > 1e-6f) {
        for (i = 0; i < 3; i++) {
            g->thrust_dir[i] = f[i] / fmag;
        }
    } else {
        memcpy(g->thrust_dir, in->up, sizeof g->thrust_dir);
    }
    g->throttle = fsw_clampf(fmag / c->thrust_max, c->throttle_min, 1.0f);
}

void fsw_guid_burn(fsw_guid_t *g, float throttle, float dt)
{
    if (g->engine_on && dt > 0.0f) {
        g->mass -= throttle * g->cfg.thrust_max * g->cfg.inv_ve * dt;
        if (g->mass < 1.0f) {
            g->mass = 1.0f;
        }
    }
}
