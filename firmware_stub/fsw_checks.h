/*
 * fsw_checks.h - the flight code's second line of defence (docs/flight-code.md).
 *
 * The link's CRC catches corrupted bytes; these checks catch CRC-valid input
 * that cannot be true, as flight software does:
 *   - CONFIG as a whole at COMMIT (fsw_chk_config): every parameter finite,
 *     |SITE_R| and |NAV_R0| near the body radius, |NAV_V0| bounded, a unit
 *     quaternion, positive mass, a GM that fits a Moon-sized body.
 *   - SENSORS against the last accepted frame (fsw_chk_sensors): sequence
 *     (lost frames counted), monotonic t_us, imu_dt_us consistent with the
 *     header clock and the nominal cycle, increments a lander can produce,
 *     increments consistent with the IMU's accumulators. Lost frames are
 *     recovered from the accumulators (accum_now - accum_last_accepted).
 *   - State invariants every cycle (fsw_chk_state): finite, plausible
 *     navigation and guidance state and command; one bit each in fault_flags.
 * Pure functions of their arguments plus the monitor struct: no globals.
 */
#ifndef FSW_CHECKS_H
#define FSW_CHECKS_H

#include <stdint.h>

#include "fsw_guidance.h"
#include "fsw_nav.h"
#include "fsw_params.h"
#include "fsw_protocol.h"

/* TELEMETRY fault_flags bits (latched from COMMIT on; 0 = healthy). */
#define FSW_FAULT_NAV_NONFINITE   0x0001u  /* r, v or q not finite */
#define FSW_FAULT_NAV_RADIUS      0x0002u  /* |r| outside [R - CHK_SITE_TOL, R + CHK_ALT_MAX] */
#define FSW_FAULT_NAV_SPEED       0x0004u  /* |v| > CHK_V_MAX */
#define FSW_FAULT_NAV_QUAT        0x0008u  /* | |q| - 1 | > 1e-3 */
#define FSW_FAULT_GUID_STATE      0x0010u  /* guidance thrust direction, throttle or mass not finite / not plausible */
#define FSW_FAULT_CMD_RANGE       0x0020u  /* command before the last sanitising: throttle outside [0, 1] or torque not finite / over RCS_TMAX */
#define FSW_FAULT_SENS_TIME       0x0100u  /* a SENSORS frame with t_us not after the last accepted (old, duplicate, reordered) */
#define FSW_FAULT_SENS_SEQ        0x0200u  /* a SENSORS frame with a sequence number behind the last accepted */
#define FSW_FAULT_SENS_DT         0x0400u  /* imu_dt_us zero, too long, or inconsistent with the header clock / nominal cycle */
#define FSW_FAULT_SENS_ACCEL      0x0800u  /* |dv| / dt above the largest plausible specific force */
#define FSW_FAULT_SENS_RATE       0x1000u  /* |dtheta| / dt above CHK_RATE_MAX */
#define FSW_FAULT_SENS_ACCUM      0x2000u  /* increments inconsistent with the accumulators */
#define FSW_FAULT_SENS_NONFINITE  0x4000u  /* increments or accumulators not finite */
#define FSW_FAULT_SENS_GAP        0x8000u  /* SENSORS frames lost (sequence gap), recovered from the accumulators */
#define FSW_FAULT_SENS_RESYNC     0x10000u /* CHK_RESYNC_N rejections in a row: time base re-anchored */
#define FSW_FAULT_RESEED          0x20000u /* an invariant failed: state re-seeded from the last good cycle */
#define FSW_FAULT_SAFE            0x40000u /* safe mode latched (phase SAFE) */
#define FSW_FAULT_INVARIANTS      0x003Fu  /* the state-invariant bits */
#define FSW_FAULT_SENSORS_REJECT  0x7F00u  /* the bits that reject a SENSORS frame */

typedef struct fsw_chk_cfg {
    double body_radius;   /* m */
    double site_tol;      /* m */
    double alt_max;       /* m */
    float  v_max;         /* m/s */
    float  acc_margin;    /* - */
    float  acc_extra;     /* m/s^2 */
    float  rate_max;      /* rad/s */
    float  dt_tol;        /* - */
    float  dt_max;        /* s */
    float  accum_tol;     /* m/s or rad */
    float  rcs_tmax[3];   /* N m */
    uint16_t resync_n;
    uint16_t safe_n;
    uint16_t gap_steps_max;
    uint8_t  enable;
    uint8_t  pad_;
} fsw_chk_cfg_t;

/* SENSORS monitor: the reference (last accepted) frame and the counters. */
typedef struct fsw_sens_mon {
    uint64_t ref_t_us;          /* t_us of the last accepted frame */
    double   ref_dv_acc[3];     /* its accumulators (valid if ref_acc_ok) */
    double   ref_dth_acc[3];
    uint32_t ref_dt_us;         /* the nominal cycle: imu_dt_us of the last accepted frame with one (0: none yet) */
    uint32_t gaps;              /* frames lost by sequence number */
    uint32_t rejected;          /* frames refused */
    uint32_t resyncs;           /* time-base re-anchors */
    uint16_t ref_seq;
    uint16_t reject_run;        /* consecutive refusals */
    uint8_t  have_ref;          /* a frame was accepted since COMMIT */
    uint8_t  ref_acc_ok;        /* reference frame IMU-valid with finite accumulators */
    uint8_t  pad_[2];
} fsw_sens_mon_t;

/* What one accepted SENSORS frame gives the GNC cycle. */
typedef struct fsw_sens_use {
    float    dv[3];       /* m/s, body: total over the interval (all substeps) */
    float    dtheta[3];   /* rad, body: total */
    float    dt;          /* s, total interval */
    uint16_t substeps;    /* integrate in this many equal steps (1 + frames lost when recovered from the accumulators) */
    uint16_t gap;         /* frames lost before this one */
    uint8_t  imu_ok;      /* increments usable (IMU valid, finite, plausible) */
    uint8_t  resync;      /* accepted by a time-base re-anchor */
    uint8_t  pad_[2];
} fsw_sens_use_t;

void fsw_chk_configure(fsw_chk_cfg_t *c, const fsw_params_t *p);
/* Forget the reference frame and zero the counters (what COMMIT does). */
void fsw_chk_sens_reset(fsw_sens_mon_t *m);

/* CONFIG as a whole: 0 if plausible, else the id of the first offending parameter. */
uint16_t fsw_chk_config(const fsw_params_t *p);

/*
 * One SENSORS frame against the last accepted one. a_max: largest plausible specific force
 * (m/s^2). Returns 0 (accepted: *use filled, reference and counters updated) or the
 * FSW_FAULT_SENS_* bits of the refusal (nothing to integrate; the reference is kept, so the
 * next accepted frame's accumulators still span the refused one). With cfg->enable 0 every
 * frame is accepted with the interval rule of the unchecked code.
 */
uint32_t fsw_chk_sensors(const fsw_chk_cfg_t *c, fsw_sens_mon_t *m, const fsw_msg_t *msg, float a_max,
                         fsw_sens_use_t *use);

/* State invariants of navigation and guidance: 0 or the violated FSW_FAULT_* bits. */
uint32_t fsw_chk_state(const fsw_chk_cfg_t *c, const fsw_nav_t *nav, const fsw_guid_t *g);
/* Command invariant (before sanitising): 0 or FSW_FAULT_CMD_RANGE. */
uint32_t fsw_chk_command(const fsw_chk_cfg_t *c, const fsw_command_t *cmd);

#endif /* FSW_CHECKS_H */
