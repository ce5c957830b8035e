/*
 * fsw_attitude.h - RCS attitude control: point body +z along the desired
 * thrust direction.
 *
 * torque = ATT_KP * e - ATT_KD * w_body, clamped per axis to RCS_TMAX_*,
 * where e (body) is the rotation vector from body +z to the desired thrust
 * direction, magnitude 2 sin(err/2) (no trig). Roll about +z is only damped.
 * While the pointing error exceeds ATT_TILT_THR the throttle is held at
 * THROTTLE_MIN so a mis-pointed engine does not push the lander sideways.
 */
#ifndef FSW_ATTITUDE_H
#define FSW_ATTITUDE_H

#include <stdint.h>

#include "fsw_params.h"

typedef struct fsw_att_cfg {
    float kp, kd;
    float tmax[3];
    float cos_thr;        /* cos(ATT_TILT_THR) */
    float throttle_min;
} fsw_att_cfg_t;

typedef struct fsw_att_out {
    float torque_body[3]; /* N m */
    float throttle;       /* after the pointing-error gate */
    float cos_err;        /* cos of the angle between body +z and the desired direction */
} fsw_att_out_t;

void fsw_att_configure(fsw_att_cfg_t *c, const fsw_params_t *p);
void fsw_att_step(const fsw_att_cfg_t *c, const float q_mci_body[4], const float w_body[3],
                  const float thrust_dir_mci[3], float throttle, fsw_att_out_t *out);

#endif /* FSW_ATTITUDE_H */
