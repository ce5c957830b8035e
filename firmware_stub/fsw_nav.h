/*
 * fsw_nav.h - strapdown navigation in MCI with a 2-state LRF altitude filter.
 *
 * State: position r (double, m, MCI), velocity v (double, m/s, MCI),
 * attitude q_mci_body (float, scalar first). The IMU delta-angle updates the
 * attitude; the IMU delta-v (specific force, body) is rotated into MCI and
 * point-mass gravity -GM r/|r|^3 is added.
 *
 * Altitude h = |r| - |SITE_R|. A 2-state Kalman filter (radial position,
 * radial velocity) carries the covariance; LRF updates correct r and v along
 * the local vertical u = r/|r|. r is the centre of mass: the LRF's lever arm
 * (LRF_POS_*) is removed from each measurement. See docs/flight-code.md.
 *
 * Accelerometer plausibility monitor (ACC_MON_*, off by default = as flown):
 * fsw_nav_accel_check() compares the measured specific force with the one the
 * caller models from the engine command; ACC_MON_N consecutive cycles with the
 * engine clearly burning (model > MON_F_MIN) but the measurement below
 * ACC_MON_RATIO x model declare the accelerometers failed (latched). From then
 * on the navigation propagates the modelled specific force along body +z
 * (gyros still used) with process noise ACC_FAIL_PSD, and the modelled
 * delta-v of the suspect cycles is added to the velocity.
 */
#ifndef FSW_NAV_H
#define FSW_NAV_H

#include <stdint.h>

#include "fsw_params.h"

typedef struct fsw_nav_cfg {
    double gm;              /* m^3/s^2 */
    double site_radius;     /* |SITE_R|, m */
    float  acc_psd;         /* m^2/s^3 */
    float  lrf_sigma;       /* m */
    float  lrf_sigma_rel;   /* - */
    float  gate_nsigma;     /* - */
    float  gate_min;        /* m */
    float  reacq_tol;       /* m */
    float  bore_body[3];    /* unit vector, body */
    float  lrf_pos_body[3]; /* m, LRF position relative to the centre of mass, body */
    float  cos_max_offnadir;
    float  mon_f_min;       /* m/s^2, monitors compare only above this modelled specific force */
    float  acc_ratio;       /* - */
    float  acc_fail_psd;    /* m^2/s^3 */
    uint16_t reacq_n;
    uint8_t  gate_policy;   /* 0 latch-out, 1 reacquire */
    uint8_t  acc_mon_enable;
    uint16_t acc_n;
    uint8_t  pad_[2];
} fsw_nav_cfg_t;

typedef struct fsw_nav {
    fsw_nav_cfg_t cfg;
    double r[3];            /* m, MCI */
    double v[3];            /* m/s, MCI */
    float  q[4];            /* q_mci_body */
    float  w_body[3];       /* rad/s, last IMU rate */
    float  p00, p01, p11;   /* covariance of (radial position, radial velocity) */
    float  lrf_innovation;  /* m, last innovation (measured - predicted) */
    float  lrf_meas_alt;    /* m, last measured height (latency compensated prediction removed) */
    float  reacq_last;      /* m, innovation of the previous gated-out sample */
    uint32_t lrf_rejects;
    uint32_t lrf_accepts;
    uint16_t reacq_count;
    uint8_t  lrf_status;    /* FSW_LRF_* */
    uint8_t  latched_out;
    float    acc_pending[3]; /* m/s, MCI, modelled delta-v of the current run of suspect cycles */
    uint16_t acc_suspect;   /* consecutive suspect cycles */
    uint8_t  acc_failed;    /* accelerometers declared failed (latched) */
    uint8_t  pad2_;
} fsw_nav_t;

/* Derive the working configuration from the parameters (no state change). */
void fsw_nav_configure(fsw_nav_t *nav, const fsw_params_t *p);
/* Configure and initialise the state from the parameters. */
void fsw_nav_reset(fsw_nav_t *nav, const fsw_params_t *p);
/* One IMU interval: dv (m/s, body, specific force), dtheta (rad, body), dt (s). */
void fsw_nav_propagate(fsw_nav_t *nav, const float dv_body[3], const float dtheta_body[3], float dt);
/*
 * One LRF sample: slant range (m) measured latency_s seconds before the
 * current state time. Returns the resulting lrf_status (FSW_LRF_*).
 */
uint8_t fsw_nav_lrf_update(fsw_nav_t *nav, float range, float latency_s);
/*
 * Accelerometer plausibility check for one IMU interval, before fsw_nav_propagate().
 * dv_body: measured delta-v (m/s, body); f_model: modelled specific force along body +z
 * over the interval (m/s^2, from the engine command); dt (s). Writes the delta-v the
 * navigation should propagate to dv_use (the measurement, or the model once the
 * accelerometers are declared failed). Returns nav->acc_failed. With ACC_MON_ENABLE 0
 * dv_use = dv_body and nothing else happens.
 */
uint8_t fsw_nav_accel_check(fsw_nav_t *nav, const float dv_body[3], float f_model, float dt, float dv_use[3]);
/* Sample flagged invalid by the sensor. */
void fsw_nav_lrf_invalid(fsw_nav_t *nav);

double fsw_nav_radius(const fsw_nav_t *nav);
/* Estimated height above the site reference, m. */
double fsw_nav_alt(const fsw_nav_t *nav);
/* Local vertical (unit, MCI) and radial velocity (m/s, + up). */
void  fsw_nav_up(const fsw_nav_t *nav, float up[3]);
float fsw_nav_vr(const fsw_nav_t *nav);
/* Gravity magnitude at the estimated position, m/s^2. */
float fsw_nav_gravity(const fsw_nav_t *nav);

#endif /* FSW_NAV_H */
