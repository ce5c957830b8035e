/*
 * fsw_guidance.h - descent guidance: phase logic, velocity schedule, thrust vector.
 *
 * Phases (COMMAND mode): 0 idle, 1 braking (powered descent from ~15 km: not
 * implemented yet, see fsw_guid_braking()), 2 approach, 3 terminal,
 * 4 touchdown (engine cut), 5 contingency (no LRF lock by CONTINGENCY_ALT).
 *
 * Approach schedule (descent rate, positive down, h = estimated altitude):
 *   v_down(h) = min(V_DESCENT_MAX, sqrt(2 A_PLAN (h - H_TERMINAL)) + V_TERMINAL)
 * i.e. a constant-deceleration stop at A_PLAN that arrives at H_TERMINAL
 * with V_TERMINAL; below H_TERMINAL v_down = V_TERMINAL. Contingency uses
 * A_PLAN_CONT, V_DESCENT_MAX_CONT and aims at H_TERMINAL + CONT_H_MARGIN.
 * Acceleration command: a_up = a_ff + GUID_KV (v_ref - v_r) (a_ff = plan
 * deceleration on the sqrt branch), a_h = -GUID_KH v_h; thrust F = m (a - g).
 */
#ifndef FSW_GUIDANCE_H
#define FSW_GUIDANCE_H

#include <stdint.h>

#include "fsw_params.h"

typedef struct fsw_guid_cfg {
    float a_plan, v_max, v_term, h_term, td_cut;
    float kv, kh, ah_max, tan_tilt_max;
    float cont_alt, a_cont, v_max_cont, cont_margin;
    float thrust_max, throttle_min, inv_ve;     /* 1 / (ISP g0), s/m */
    uint8_t cont_enable;
    uint8_t pad_[3];
} fsw_guid_cfg_t;

typedef struct fsw_guid_in {
    float alt;          /* m, estimated height above the site reference */
    float up[3];        /* local vertical, unit, MCI */
    float v[3];         /* m/s, MCI */
    float g;            /* gravity magnitude, m/s^2 */
    uint8_t lrf_locked; /* at least one LRF sample accepted so far */
} fsw_guid_in_t;

typedef struct fsw_guid {
    fsw_guid_cfg_t cfg;
    float mass;          /* kg, estimate */
    float thrust_dir[3]; /* unit, MCI: desired body +z */
    float throttle;      /* 0..1 before attitude gating */
    float v_ref;         /* m/s, + up */
    float a_cmd[3];      /* m/s^2, MCI, commanded net (non-gravitational minus gravity compensation) acceleration */
    uint8_t phase;
    uint8_t engine_on;
    uint8_t pad_[2];
} fsw_guid_t;

void fsw_guid_configure(fsw_guid_t *g, const fsw_params_t *p);
/* Configure and initialise (phase approach, engine on, mass MASS0). */
void fsw_guid_reset(fsw_guid_t *g, const fsw_params_t *p);
/* One cycle: phase logic and thrust vector. Writes g->phase/thrust_dir/throttle/engine_on. */
void fsw_guid_step(fsw_guid_t *g, const fsw_guid_in_t *in);
/* Descent-rate schedule (m/s, positive down) and its feed-forward deceleration. */
float fsw_guid_v_down(const fsw_guid_cfg_t *c, uint8_t phase, float alt, float *a_ff);
/* Account for the propellant burnt at the throttle actually commanded over dt. */
void fsw_guid_burn(fsw_guid_t *g, float throttle, float dt);

#endif /* FSW_GUIDANCE_H */
