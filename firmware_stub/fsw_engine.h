/*
 * fsw_engine.h - engine model and the monitors built on it.
 *
 * Engine model (always run): the modelled actual throttle follows the last
 * COMMAND (engine on: clamp(throttle, THROTTLE_MIN, 1), else 0) through a
 * first-order lag ENGINE_TAU and a rate limit ENGINE_SLEW; its mean over the
 * IMU interval times THRUST_MAX x scale / mass is the modelled specific force
 * along body +z (m/s^2).
 *
 * Thrust-scale estimate (THR_EST_*): measured over modelled specific force,
 * low-pass THR_EST_TAU, bounded to [THR_EST_MIN, THR_EST_MAX].
 *
 * Over-thrust pulse mode (PULSE_*): engine-off intervals when even the minimum
 * thrust is more than the descent needs. See docs/flight-code.md.
 */
#ifndef FSW_ENGINE_H
#define FSW_ENGINE_H

#include <stdint.h>

#include "fsw_guidance.h"
#include "fsw_params.h"
#include "fsw_protocol.h"

typedef struct fsw_eng_cfg {
    float tau, slew;             /* s, 1/s */
    float f_min;                 /* m/s^2, MON_F_MIN */
    float est_tau, est_min, est_max;
    float pulse_v_tol, pulse_off_max, pulse_on_min, pulse_a_min;
    uint8_t est_enable, pulse_enable;
    uint8_t pad_[2];
} fsw_eng_cfg_t;

typedef struct fsw_eng {
    fsw_eng_cfg_t cfg;
    float thr_model;             /* modelled actual throttle, fraction of THRUST_MAX (at scale 1) */
    float f_model;               /* m/s^2, modelled specific force over the last interval (scale applied) */
    float scale;                 /* estimated thrust scale, actual / commanded (1 nominal) */
    float pulse_t;               /* s, time in the current pulse-mode state */
    uint32_t pulses;             /* engine-off intervals so far (each ends with a relight) */
    uint8_t pulse_off;           /* engine held off by the pulse mode now */
    uint8_t pad_[3];
} fsw_eng_t;

/* Derive the working configuration from the parameters (no state change). */
void fsw_eng_configure(fsw_eng_t *e, const fsw_params_t *p);
/* Configure and initialise: throttle model 0, scale 1, pulse mode idle. */
void fsw_eng_reset(fsw_eng_t *e, const fsw_params_t *p);
/*
 * Advance the modelled actual throttle over an interval of dt seconds flown with the
 * command `last` (the one in force during it). Returns the mean modelled throttle over
 * the interval (trapezoid), fraction of THRUST_MAX at scale 1.
 */
float fsw_eng_advance(fsw_eng_t *e, const fsw_command_t *last, float throttle_min, float dt);
/*
 * Thrust-scale estimate from one interval: dv_z (m/s, measured along body +z), f_unit
 * (m/s^2, modelled specific force at scale 1), dt (s). Updates e->scale when enabled and
 * the engine clearly burns (f_unit > MON_F_MIN).
 */
void fsw_eng_estimate_scale(fsw_eng_t *e, float dv_z, float f_unit, float dt);
/*
 * Over-thrust pulse mode for one cycle after guidance g ran on input in. Returns 1 while
 * the engine is to be held off.
 */
uint8_t fsw_eng_pulse(fsw_eng_t *e, const fsw_guid_t *g, const fsw_guid_in_t *in, float dt);

#endif /* FSW_ENGINE_H */
