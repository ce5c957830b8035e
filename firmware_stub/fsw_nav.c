/*
 * fsw_nav.c - strapdown navigation and LRF altitude filter. See fsw_nav.h.
 *
 * libm: sqrt() (double) for |r| and sqrtf(); both are correctly rounded
 * IEEE 754 operations.
 */
#include "fsw_nav.h"

#include <math.h>
#include <string.h>

#include "fsw_math.h"
#include "fsw_protocol.h"

void fsw_nav_configure(fsw_nav_t *nav, const fsw_params_t *p)
{
    static const float body_minus_z[3] = { 0.0f, 0.0f, -1.0f };   /* boresight when none is given */
    fsw_nav_cfg_t *c = &nav->cfg;
    double rs2 = p->SITE_R_X * p->SITE_R_X + p->SITE_R_Y * p->SITE_R_Y + p->SITE_R_Z * p->SITE_R_Z;

    c->gm = p->GM;
    c->site_radius = sqrt(rs2);
    c->acc_psd = (float)p->NAV_ACC_PSD;
    c->lrf_sigma = (float)p->LRF_SIGMA;
    c->lrf_sigma_rel = (float)p->LRF_SIGMA_REL;
    c->gate_nsigma = (float)p->LRF_GATE_NSIGMA;
    c->gate_min = (float)p->LRF_GATE_MIN;
    c->reacq_tol = (float)p->LRF_REACQ_TOL;
    c->reacq_n = (uint16_t)(p->LRF_REACQ_N + 0.5);
    c->gate_policy = (uint8_t)(p->LRF_GATE_POLICY + 0.5);
    c->bore_body[0] = (float)p->LRF_BORE_X;
    c->bore_body[1] = (float)p->LRF_BORE_Y;
    c->bore_body[2] = (float)p->LRF_BORE_Z;
    fsw_unitf(c->bore_body, 3, 1e-6f, body_minus_z);
    c->lrf_pos_body[0] = (float)p->LRF_POS_X;
    c->lrf_pos_body[1] = (float)p->LRF_POS_Y;
    c->lrf_pos_body[2] = (float)p->LRF_POS_Z;
    c->cos_max_offnadir = (float)fsw_cos_small(p->LRF_MAX_OFFNADIR);
    c->mon_f_min = (float)p->MON_F_MIN;
    c->acc_ratio = (float)p->ACC_MON_RATIO;
    c->acc_fail_psd = (float)p->ACC_FAIL_PSD;
    c->acc_mon_enable = p->ACC_MON_ENABLE >= 0.5 ? 1u : 0u;
    c->acc_n = (uint16_t)(p->ACC_MON_N + 0.5);
    c->pad_[0] = 0;
    c->pad_[1] = 0;
}

void fsw_nav_reset(fsw_nav_t *nav, const fsw_params_t *p)
{
    memset(nav, 0, sizeof *nav);
    fsw_nav_configure(nav, p);
    nav->r[0] = p->NAV_R0_X;
    nav->r[1] = p->NAV_R0_Y;
    nav->r[2] = p->NAV_R0_Z;
    nav->v[0] = p->NAV_V0_X;
    nav->v[1] = p->NAV_V0_Y;
    nav->v[2] = p->NAV_V0_Z;
    nav->q[0] = (float)p->NAV_Q0_W;
    nav->q[1] = (float)p->NAV_Q0_X;
    nav->q[2] = (float)p->NAV_Q0_Y;
    nav->q[3] = (float)p->NAV_Q0_Z;
    fsw_qnormf(nav->q);
    nav->p00 = (float)(p->NAV_SIGMA_H0 * p->NAV_SIGMA_H0);
    nav->p01 = 0.0f;
    nav->p11 = (float)(p->NAV_SIGMA_VR0 * p->NAV_SIGMA_VR0);
    nav->lrf_status = FSW_LRF_NO_SAMPLE;
}

double fsw_nav_radius(const fsw_nav_t *nav)
{
    return sqrt(nav->r[0] * nav->r[0] + nav->r[1] * nav->r[1] + nav->r[2] * nav->r[2]);
}

double fsw_nav_alt(const fsw_nav_t *nav)
{
    return fsw_nav_radius(nav) - nav->cfg.site_radius;
}

void fsw_nav_up(const fsw_nav_t *nav, float up[3])
{
    double rn = fsw_nav_radius(nav);
    if (rn > 0.0) {
        up[0] = (float)(nav->r[0] / rn);
        up[1] = (float)(nav->r[1] / rn);
        up[2] = (float)(nav->r[2] / rn);
    } else {
        up[0] = 1.0f;
        up[1] = 0.0f;
        up[2] = 0.0f;
    }
}

float fsw_nav_vr(const fsw_nav_t *nav)
{
    double rn = fsw_nav_radius(nav);
    if (rn <= 0.0) {
        return 0.0f;
    }
    return (float)((nav->v[0] * nav->r[0] + nav->v[1] * nav->r[1] + nav->v[2] * nav->r[2]) / rn);
}

float fsw_nav_gravity(const fsw_nav_t *nav)
{
    double rn = fsw_nav_radius(nav);
    return rn > 0.0 ? (float)(nav->cfg.gm / (rn * rn)) : 0.0f;
}

void fsw_nav_propagate(fsw_nav_t *nav, const float dv_body[3], const float dtheta_body[3], float dt)
{
    float dq[4], qn[4], th2, half[3], dvc[3], cr[3], dv_mci[3];
    double rn, g_over_r, vnew[3];
    float q = nav->acc_failed ? nav->cfg.acc_fail_psd : nav->cfg.acc_psd;
    int i;

    if (!(dt > 0.0f)) {
        return;
    }

    /* Sculling-lite: dv expressed at mid-interval attitude, dv + 1/2 dtheta x dv. */
    fsw_cross3f(dtheta_body, dv_body, cr);
    for (i = 0; i < 3; i++) {
        dvc[i] = dv_body[i] + 0.5f * cr[i];
    }
    fsw_qrotf(nav->q, dvc, dv_mci);

    /* Attitude: q <- q (x) exp(dtheta/2), series form (no sin/cos), then normalise. */
    th2 = fsw_dot3f(dtheta_body, dtheta_body);
    for (i = 0; i < 3; i++) {
        half[i] = 0.5f * dtheta_body[i] * (1.0f - th2 / 24.0f);
    }
    dq[0] = 1.0f - th2 / 8.0f;
    dq[1] = half[0];
    dq[2] = half[1];
    dq[3] = half[2];
    fsw_qmulf(nav->q, dq, qn);
    fsw_qnormf(qn);
    memcpy(nav->q, qn, sizeof qn);
    for (i = 0; i < 3; i++) {
        nav->w_body[i] = dtheta_body[i] / dt;
    }

    /* Translation: point-mass gravity at the start of the interval, trapezoidal position. */
    rn = fsw_nav_radius(nav);
    g_over_r = rn > 0.0 ? -nav->cfg.gm / (rn * rn * rn) : 0.0;
    for (i = 0; i < 3; i++) {
        vnew[i] = nav->v[i] + (double)dv_mci[i] + g_over_r * nav->r[i] * (double)dt;
    }
    for (i = 0; i < 3; i++) {
        nav->r[i] += 0.5 * (nav->v[i] + vnew[i]) * (double)dt;
        nav->v[i] = vnew[i];
    }

    /* Covariance of (h, vr): F = [1 dt; 0 1], white acceleration noise. */
    {
        float p00 = nav->p00, p01 = nav->p01, p11 = nav->p11;
        float dt2 = dt * dt;
        nav->p00 = p00 + 2.0f * dt * p01 + dt2 * p11 + q * dt2 * dt / 3.0f;
        nav->p01 = p01 + dt * p11 + q * dt2 / 2.0f;
        nav->p11 = p11 + q * dt;
    }
}

uint8_t fsw_nav_accel_check(fsw_nav_t *nav, const float dv_body[3], float f_model, float dt, float dv_use[3])
{
    const fsw_nav_cfg_t *c = &nav->cfg;
    float fz[3], dvm[3], fmeas;
    int i;

    for (i = 0; i < 3; i++) {
        dv_use[i] = dv_body[i];
    }
    if (!c->acc_mon_enable || !(dt > 0.0f)) {
        return nav->acc_failed;
    }
    fz[0] = 0.0f;
    fz[1] = 0.0f;
    fz[2] = f_model * dt;
    if (nav->acc_failed) {
        memcpy(dv_use, fz, sizeof fz);
        return nav->acc_failed;
    }
    fmeas = fsw_norm3f(dv_body) / dt;
    if (f_model > c->mon_f_min && fmeas < c->acc_ratio * f_model) {
        nav->acc_suspect++;
        if (nav->acc_suspect >= c->acc_n) {
            /* Declared failed: the suspect cycles were integrated as free fall; add what the
             * thrust model says they gave, and propagate this interval on the model too. */
            nav->acc_failed = 1u;
            for (i = 0; i < 3; i++) {
                nav->v[i] += (double)nav->acc_pending[i];
                nav->acc_pending[i] = 0.0f;
            }
            memcpy(dv_use, fz, sizeof fz);
            return nav->acc_failed;
        }
        fsw_qrotf(nav->q, fz, dvm);
        for (i = 0; i < 3; i++) {
            nav->acc_pending[i] += dvm[i];
        }
    } else {
        nav->acc_suspect = 0;
        memset(nav->acc_pending, 0, sizeof nav->acc_pending);
    }
    return nav->acc_failed;
}

static void shift_radial(fsw_nav_t *nav, double dh, double dvr)
{
    float up[3];
    int i;
    fsw_nav_up(nav, up);
    for (i = 0; i < 3; i++) {
        nav->r[i] += dh * (double)up[i];
        nav->v[i] += dvr * (double)up[i];
    }
}

void fsw_nav_lrf_invalid(fsw_nav_t *nav)
{
    if (!nav->latched_out) {
        nav->lrf_status = FSW_LRF_INVALID;
    }
}

uint8_t fsw_nav_lrf_update(fsw_nav_t *nav, float range, float latency_s)
{
    const fsw_nav_cfg_t *c = &nav->cfg;
    float up[3], b_mci[3], p_mci[3], cosn, z, h, vr, pred, y, rr, s, gate, hp0, hp1, k0, k1, lat;

    if (!(range > 0.0f) || !(range < 1.0e7f)) {
        fsw_nav_lrf_invalid(nav);
        return nav->lrf_status;
    }
    lat = latency_s > 0.0f ? latency_s : 0.0f;

    /* Measured height: slant range times cos(angle between boresight and nadir). */
    fsw_nav_up(nav, up);
    fsw_qrotf(nav->q, c->bore_body, b_mci);
    cosn = -fsw_dot3f(b_mci, up);
    if (cosn < c->cos_max_offnadir || cosn <= 0.0f) {
        fsw_nav_lrf_invalid(nav);   /* geometry unusable: treated as invalid */
        return nav->lrf_status;
    }
    /* Height of the centre of mass: LRF height minus the lever arm's vertical component. */
    fsw_qrotf(nav->q, c->lrf_pos_body, p_mci);
    z = range * cosn - fsw_dot3f(p_mci, up);
    /* Curvature: the ground under a slanted beam is lower by (range sin)^2 / (2 R) than the
     * tangent plane (tens of metres at 15 km and 40 deg off nadir; 0.3 m at 3 km and 20 deg). */
    if (c->site_radius > 1.0) {
        z -= range * range * (1.0f - cosn * cosn) / (2.0f * (float)c->site_radius);
    }

    /* Predicted height at the sample time: h(t) - vr * latency. H = [1, -lat]. */
    h = (float)fsw_nav_alt(nav);
    vr = fsw_nav_vr(nav);
    pred = h - vr * lat;
    y = z - pred;
    nav->lrf_innovation = y;
    nav->lrf_meas_alt = z;

    if (nav->latched_out) {
        nav->lrf_status = FSW_LRF_LATCHED_OUT;
        return nav->lrf_status;
    }

    rr = c->lrf_sigma + c->lrf_sigma_rel * range;
    rr = rr * rr;
    hp0 = nav->p00 - lat * nav->p01;           /* H P, first column */
    hp1 = nav->p01 - lat * nav->p11;           /* H P, second column */
    s = hp0 - lat * hp1 + rr;                  /* H P H' + R */
    gate = fsw_maxf(c->gate_min, c->gate_nsigma * sqrtf(s));

    if (fabsf(y) <= gate) {
        k0 = hp0 / s;
        k1 = hp1 / s;
        shift_radial(nav, (double)(k0 * y), (double)(k1 * y));
        nav->p00 -= k0 * hp0;
        nav->p01 -= k0 * hp1;
        nav->p11 -= k1 * hp1;
        nav->lrf_accepts++;
        nav->reacq_count = 0;
        nav->lrf_status = FSW_LRF_ACCEPTED;
        return nav->lrf_status;
    }

    /* Beyond the gate. */
    nav->lrf_rejects++;
    if (c->gate_policy == 0u) {
        /* Latch-out (HAKUTO-R M1 behaviour): the LRF is never used again. */
        nav->latched_out = 1;
        nav->lrf_status = FSW_LRF_LATCHED_OUT;
        return nav->lrf_status;
    }
    /* Reacquire: count consecutive gated-out samples that agree with each other. */
    if (nav->reacq_count > 0u && fabsf(y - nav->reacq_last) <= c->reacq_tol) {
        nav->reacq_count++;
    } else {
        nav->reacq_count = 1;
    }
    nav->reacq_last = y;
    if (nav->reacq_count >= c->reacq_n) {
        /* A consistent step (terrain, not a fault): re-anchor the height on the LRF. */
        shift_radial(nav, (double)y, 0.0);
        nav->p00 = rr;
        nav->p01 = 0.0f;
        nav->reacq_count = 0;
        nav->lrf_accepts++;
        nav->lrf_status = FSW_LRF_ACCEPTED;
        return nav->lrf_status;
    }
    nav->lrf_status = FSW_LRF_REJECTED;
    return nav->lrf_status;
}
