/*
 * gnc.h - the simple lander's guidance, navigation and control (no I/O, no heap).
 *
 * Written for this example, independently of firmware_stub/'s GNC. Frames: MCI =
 * Moon-centred inertial (m, m/s); body: +z along the engine thrust; q_mci_body rotates
 * body vectors into MCI, scalar first.
 *
 *   navigation  strapdown: integrate the IMU increments (delta-v, delta-angle) plus point-mass
 *               gravity; laser-rangefinder (LRF) altitude updates through a second-order
 *               complementary filter (first sample: a direct fix).
 *   guidance    vertical: descent-rate schedule vs altitude, v = sqrt(2 a (h - h_t)) capped;
 *               horizontal: fly to the site above HORIZ_FREEZE_ALT_M, then null the velocity.
 *   control     thrust vector = desired acceleration + gravity, tilt-limited; throttle = its
 *               magnitude; PD attitude law points body +z along it (RCS torques).
 */
#ifndef SIMPLE_LANDER_GNC_H
#define SIMPLE_LANDER_GNC_H

#include <stdint.h>

/* What the harness configures (protocol core parameters and the LRF mounting). */
typedef struct gnc_config {
    double r0_mci[3];        /* m */
    double v0_mci[3];        /* m/s */
    double q0_mci_body[4];   /* -, scalar first */
    double mass0_kg;
    double site_r_mci[3];    /* m */
    double thrust_max_n;
    double isp_s;
    double throttle_min;
    double gm;               /* m^3/s^2 */
    double lrf_bore_body[3]; /* unit vector */
    double lrf_pos_body_m[3];
} gnc_config_t;

/* One SENSORS frame, as the flight code uses it. */
typedef struct gnc_sensors {
    uint64_t t_us;            /* time of the frame (header t_us) */
    double dv_body[3];        /* m/s, specific-force increment since the previous frame used */
    double dtheta_body[3];    /* rad, rotation increment since the previous frame used */
    double dt_s;              /* s, length of the interval the increments cover */
    int imu_valid;
    int lrf_new;              /* a new, valid LRF range sample in this frame */
    double lrf_range_m;
    uint64_t lrf_sample_t_us;
} gnc_sensors_t;

typedef struct gnc_output {
    double throttle;          /* 0..1 */
    double torque_body[3];    /* N m */
    uint8_t mode;             /* protocol mode/phase: 2 approach, 3 terminal */
} gnc_output_t;

typedef struct gnc {
    gnc_config_t cfg;
    double r[3], v[3], q[4];  /* navigation state, MCI */
    double w_body[3];         /* rad/s, last measured body rate */
    double mass_kg;
    double last_throttle;
    double site_radius_m;
    uint8_t lrf_fixed;        /* 1 once a first LRF sample fixed the altitude */
    uint8_t lrf_status;       /* protocol lrf_status of the last sample: 0 none, 1 accepted, 2 rejected */
    uint16_t lrf_rejects;
    uint16_t reject_run;      /* consecutive rejected samples */
    double last_innovation_m;
    double prev_reject_innov_m;
} gnc_t;

void gnc_init(gnc_t *g, const gnc_config_t *cfg);
/* Propagate with one frame's sensors, apply an LRF update, compute the command. */
void gnc_step(gnc_t *g, const gnc_sensors_t *s, gnc_output_t *out);
double gnc_altitude(const gnc_t *g);  /* m above the site's sphere */

#endif
