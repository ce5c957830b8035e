/*
 * fsw_guidance.c - see fsw_guidance.h. libm: sqrtf() only.
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
    memset(c->pad_, 0, sizeof c->pad_);
}

void fsw_guid_reset(fsw_guid_t *g, const fsw_params_t *p)
{
    memset(g, 0, sizeof *g);
    fsw_guid_configure(g, p);
    g->mass = (float)p->MASS0;
    g->phase = FSW_MODE_APPROACH;   /* FSW_MODE_BRAKING once the braking phase exists */
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

/* Braking phase (powered descent from ~15 km): placeholder, uses the approach law. */
static void fsw_guid_braking(fsw_guid_t *g, const fsw_guid_in_t *in)
{
    (void)in;
    g->phase = FSW_MODE_APPROACH;
}

static void update_phase(fsw_guid_t *g, const fsw_guid_in_t *in)
{
    const fsw_guid_cfg_t *c = &g->cfg;

    if (g->phase == FSW_MODE_IDLE || g->phase == FSW_MODE_TOUCHDOWN) {
        return;
    }
    if (g->phase == FSW_MODE_BRAKING) {
        fsw_guid_braking(g, in);
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
    float vr, vh[3], ah[3], a_ff, vdown, a_up, fv, fh_max, fh, ahn, fmag, f[3];
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

    /* Vertical channel: follow the descent-rate schedule. */
    vr = fsw_dot3f(in->v, in->up);
    vdown = fsw_guid_v_down(c, g->phase, in->alt, &a_ff);
    g->v_ref = -vdown;
    a_up = a_ff + c->kv * (g->v_ref - vr);

    /* Horizontal channel: null the horizontal velocity. */
    for (i = 0; i < 3; i++) {
        vh[i] = in->v[i] - vr * in->up[i];
        ah[i] = -c->kh * vh[i];
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
