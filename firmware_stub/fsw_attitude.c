/*
 * fsw_attitude.c - see fsw_attitude.h. libm: sqrtf() only.
 */
#include "fsw_attitude.h"

#include <math.h>

#include "fsw_math.h"

void fsw_att_configure(fsw_att_cfg_t *c, const fsw_params_t *p)
{
    c->kp = (float)p->ATT_KP;
    c->kd = (float)p->ATT_KD;
    c->tmax[0] = (float)p->RCS_TMAX_X;
    c->tmax[1] = (float)p->RCS_TMAX_Y;
    c->tmax[2] = (float)p->RCS_TMAX_Z;
    c->cos_thr = (float)fsw_cos_small(p->ATT_TILT_THR);
    c->throttle_min = (float)p->THROTTLE_MIN;
}

void fsw_att_step(const fsw_att_cfg_t *c, const float q_mci_body[4], const float w_body[3],
                  const float thrust_dir_mci[3], float throttle, fsw_att_out_t *out)
{
    static const float body_z[3] = { 0.0f, 0.0f, 1.0f };
    float d[3], e[3], k;
    int i;

    fsw_qrotf_inv(q_mci_body, thrust_dir_mci, d);   /* desired direction in body */
    fsw_unitf(d, 3, 0.0f, body_z);                  /* no direction: keep the thrust axis */
    /* z x d = (-d_y, d_x, 0), |z x d| = sin(err); scale to 2 sin(err/2). */
    if (d[2] > -0.999f) {
        k = sqrtf(2.0f / (1.0f + d[2]));
        e[0] = -d[1] * k;
        e[1] = d[0] * k;
    } else {
        /* Upside down: any axis perpendicular to +z; take the full magnitude about x or toward d. */
        float hn = sqrtf(d[0] * d[0] + d[1] * d[1]);
        if (hn > 1e-6f) {
            e[0] = -2.0f * d[1] / hn;
            e[1] = 2.0f * d[0] / hn;
        } else {
            e[0] = 2.0f;
            e[1] = 0.0f;
        }
    }
    e[2] = 0.0f;
    for (i = 0; i < 3; i++) {
        out->torque_body[i] = fsw_clampf(c->kp * e[i] - c->kd * w_body[i], -c->tmax[i], c->tmax[i]);
    }
    out->cos_err = d[2];
    out->throttle = d[2] < c->cos_thr ? fsw_minf(throttle, c->throttle_min) : throttle;
}
