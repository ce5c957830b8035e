/*
 * fsw_guidance.h - descent guidance: phase logic, velocity schedule, thrust vector.
 *
 * Phases (COMMAND mode): 0 idle, 1 braking (powered descent from PDI to the
 * high gate), 2 approach, 3 terminal, 4 touchdown (engine cut),
 * 5 contingency (no LRF lock by CONTINGENCY_ALT).
 *
 * Braking (Apollo-style explicit guidance, quadratic acceleration profile):
 * in the local track frame (up u, along-track e_d toward the site, cross
 * e_c = u x e_d; polar coordinates, so the curvature of the ground track is
 * in the frame), with the along-track distance to go x = r theta - BRK_GATE_RANGE,
 * the kinematic acceleration command per axis is
 *   a = 12 (p_f - p) / T^2 - 6 (v_f + v) / T + a_f
 * (the quadratic-in-time acceleration profile that reaches the gate's
 * position p_f, velocity v_f and acceleration a_f in T seconds), and the
 * time-to-go T solves the along-track jerk condition (Apollo TGO equation)
 *   J T^3 - 6 a_f T^2 + 6 (3 v_f + v) T - 24 x = 0   (Newton, from T - dt).
 * Thrust acceleration = a - g_eff, g_eff = (-g + v_h^2 / r) up - (v_r / r) v_h
 * (gravity at the current radius, centrifugal and Coriolis of the rotating
 * track frame). Hand-over to approach when T <= BRK_TGO_END. The thrust
 * direction slews at most BRK_RATE_MAX.
 *
 * Site targeting (approach, contingency): horizontal velocity reference
 * toward the site, |v| = min(APR_VH_MAX, sqrt(2 APR_AH_PLAN d), APR_KP d)
 * (d = horizontal distance to the site); in approach the descent stops at
 * APR_HOLD_ALT while d > APR_HOLD_DIST (hover, at most APR_HOLD_TMAX s).
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
    /* braking */
    float brk_start_alt, brk_start_vh;
    float gate_alt, gate_range, gate_vh, gate_vdown, gate_ah, gate_aup, jerk;
    float tgo_end, rate_max;
    /* site targeting */
    float apr_vh_max, apr_ah_plan, apr_kp, hold_alt, hold_dist, hold_tmax;
    uint8_t cont_enable;
    uint8_t brk_enable;
    uint8_t pad_[2];
} fsw_guid_cfg_t;

typedef struct fsw_guid_in {
    float alt;          /* m, estimated height above the site reference */
    float up[3];        /* local vertical, unit, MCI */
    float v[3];         /* m/s, MCI */
    float g;            /* gravity magnitude, m/s^2 */
    float to_site[3];   /* m, MCI, site reference point minus position (all 0: no site targeting) */
    float radius;       /* m, |r| (0: taken as alt + 1737400) */
    float dt;           /* s, cycle length (0: no slew limit, time-to-go not advanced) */
    uint8_t lrf_locked; /* at least one LRF sample accepted so far */
} fsw_guid_in_t;

typedef struct fsw_guid {
    fsw_guid_cfg_t cfg;
    float mass;          /* kg, estimate */
    float thrust_dir[3]; /* unit, MCI: desired body +z */
    float throttle;      /* 0..1 before attitude gating */
    float v_ref;         /* m/s, + up */
    float a_cmd[3];      /* m/s^2, MCI, commanded net (non-gravitational minus gravity compensation) acceleration */
    float tgo;           /* s, braking time-to-go to the high gate (0 before braking) */
    float x_go;          /* m, braking: along-track distance to the site */
    float site_dist;     /* m, horizontal distance to the site (last cycle) */
    float hold_t;        /* s, time spent in the approach hover hold */
    uint8_t phase;
    uint8_t engine_on;
    uint8_t started;     /* first guidance cycle done (braking entry decided) */
    uint8_t hold_done;   /* approach hover hold over (latched) */
} fsw_guid_t;

void fsw_guid_configure(fsw_guid_t *g, const fsw_params_t *p);
/* Configure and initialise (phase approach, engine on, mass MASS0). */
void fsw_guid_reset(fsw_guid_t *g, const fsw_params_t *p);
/* One cycle: phase logic and thrust vector. Writes g->phase/thrust_dir/throttle/engine_on. */
void fsw_guid_step(fsw_guid_t *g, const fsw_guid_in_t *in);
/* Descent-rate schedule (m/s, positive down) and its feed-forward deceleration. */
float fsw_guid_v_down(const fsw_guid_cfg_t *c, uint8_t phase, float alt, float *a_ff);
/* atan2(s, c) for s >= 0 without libm (half-angle reductions and a series), rad; float, |error| < 1e-6
 * up to 2.5 rad, < 1e-5 near pi (the braking phase uses < 0.5 rad). */
float fsw_guid_atan2_pos(float s, float c);
/* Account for the propellant burnt at the throttle actually commanded over dt. */
void fsw_guid_burn(fsw_guid_t *g, float throttle, float dt);

#endif /* FSW_GUIDANCE_H */
