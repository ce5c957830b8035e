/*
 * fsw_engine.c - engine model, thrust-scale estimate, over-thrust pulse mode. See fsw_engine.h.
 */
#include "fsw_engine.h"

#include <string.h>

#include "fsw_math.h"

void fsw_eng_configure(fsw_eng_t *e, const fsw_params_t *p)
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

void fsw_eng_reset(fsw_eng_t *e, const fsw_params_t *p)
{
    memset(e, 0, sizeof *e);
    fsw_eng_configure(e, p);
    e->scale = 1.0f;
}

/*
 * Engine model: advance the modelled actual throttle over the interval just flown with the
 * command that was in force during it (engine on: clamp(throttle, THROTTLE_MIN, 1), else 0;
 * first-order lag ENGINE_TAU, rate limit ENGINE_SLEW, implicit Euler).
 */
float fsw_eng_advance(fsw_eng_t *e, const fsw_command_t *last, float throttle_min, float dt)
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
void fsw_eng_estimate_scale(fsw_eng_t *e, float dv_z, float f_unit, float dt)
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
 */
uint8_t fsw_eng_pulse(fsw_eng_t *e, const fsw_guid_t *g, const fsw_guid_in_t *in, float dt)
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
