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
    uint16_t reacq_n;
    uint8_t  gate_policy;   /* 0 latch-out, 1 reacquire */
    uint8_t  pad_;
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
