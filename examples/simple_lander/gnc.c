/* gnc.c - see gnc.h. C99, no heap, no globals; libm sqrt/atan2/acos only. */
#include "gnc.h"

#include <math.h>
#include <string.h>

/* Tuning (SI). The schedule asks for A_PLAN of net braking, well inside what the engine gives
 * a heavy lander (4000 N / 950 kg - 1.62 = 2.6 m/s^2): a late altitude fix still leaves room. */
#define A_PLAN           0.9    /* m/s^2, planned net braking of the descent-rate schedule */
#define V_DESCENT_MAX    35.0   /* m/s, descent-rate cap */
#define H_TERMINAL       25.0   /* m, below it descend at V_TERMINAL */
#define V_TERMINAL       0.9    /* m/s */
#define K_VERT           0.6    /* 1/s, vertical velocity loop */
#define K_POS            0.04   /* 1/s, horizontal position -> velocity */
#define VH_MAX           18.0   /* m/s, horizontal speed toward the site */
#define K_HORIZ          0.35   /* 1/s, horizontal velocity loop */
#define AH_MAX           1.2    /* m/s^2, horizontal acceleration */
#define HORIZ_FREEZE_ALT_M 150.0 /* m, below it only null the horizontal velocity */
#define TILT_MAX         0.30   /* rad, thrust vector from local vertical */
#define ATT_KP           350.0  /* N m/rad */
#define ATT_KD           800.0  /* N m s/rad */
#define TORQUE_MAX_XY    40.0   /* N m */
#define TORQUE_MAX_Z     30.0   /* N m */
#define POINT_ERR_MAX    0.5    /* rad: above it, minimum throttle while the attitude catches up */
#define LRF_L1           0.45   /* 1/s, complementary filter altitude gain */
#define LRF_L2           0.06   /* 1/s^2, complementary filter velocity gain */
#define LRF_GATE_MIN_M   40.0   /* m, innovation gate after the first fix */
#define LRF_GATE_REL     0.05   /* -, plus this fraction of the altitude */
#define LRF_REFIX_N      8      /* consecutive, mutually consistent rejections that re-fix */
#define LRF_REFIX_TOL_M  15.0   /* m */
#define LRF_MAX_OFFNADIR_COS 0.80
#define G0               9.80665

static double dot3(const double a[3], const double b[3]) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
static double norm3(const double a[3]) { return sqrt(dot3(a, a)); }

static void cross3(const double a[3], const double b[3], double c[3])
{
    c[0] = a[1] * b[2] - a[2] * b[1];
    c[1] = a[2] * b[0] - a[0] * b[2];
    c[2] = a[0] * b[1] - a[1] * b[0];
}

/* v_out = q v q* (body -> MCI when q = q_mci_body) */
static void qrot(const double q[4], const double v[3], double out[3])
{
    double u[3] = {q[1], q[2], q[3]}, t[3], c[3];
    int i;
    cross3(u, v, t);
    for (i = 0; i < 3; i++) t[i] *= 2.0;
    cross3(u, t, c);
    for (i = 0; i < 3; i++) out[i] = v[i] + q[0] * t[i] + c[i];
}

static void qrot_inv(const double q[4], const double v[3], double out[3])
{
    double qc[4] = {q[0], -q[1], -q[2], -q[3]};
    qrot(qc, v, out);
}

static void qmul(const double a[4], const double b[4], double c[4])
{
    c[0] = a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
    c[1] = a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2];
    c[2] = a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1];
    c[3] = a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0];
}

static double clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

double gnc_altitude(const gnc_t *g) { return norm3(g->r) - g->site_radius_m; }

void gnc_init(gnc_t *g, const gnc_config_t *cfg)
{
    double n;
    int i;
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    memcpy(g->r, cfg->r0_mci, sizeof g->r);
    memcpy(g->v, cfg->v0_mci, sizeof g->v);
    memcpy(g->q, cfg->q0_mci_body, sizeof g->q);
    n = sqrt(g->q[0] * g->q[0] + g->q[1] * g->q[1] + g->q[2] * g->q[2] + g->q[3] * g->q[3]);
    for (i = 0; i < 4; i++) g->q[i] = n > 0.0 ? g->q[i] / n : (i == 0);
    n = norm3(g->cfg.lrf_bore_body);
    for (i = 0; i < 3; i++) g->cfg.lrf_bore_body[i] = n > 0.0 ? g->cfg.lrf_bore_body[i] / n : (i == 2 ? -1.0 : 0.0);
    g->mass_kg = cfg->mass0_kg;
    g->site_radius_m = norm3(cfg->site_r_mci);
}

static void propagate(gnc_t *g, const gnc_sensors_t *s)
{
    double dv_mci[3], dq[4], qn[4], th2, n, rn, gr;
    double half[3], vnew[3];
    int i;
    double dt = s->dt_s;
    if (!(dt > 0.0)) return;
    if (s->imu_valid) {
        /* delta-v at the mid-interval attitude: rotate by half the delta-angle first */
        cross3(s->dtheta_body, s->dv_body, half);
        for (i = 0; i < 3; i++) half[i] = s->dv_body[i] + 0.5 * half[i];
        qrot(g->q, half, dv_mci);
        th2 = dot3(s->dtheta_body, s->dtheta_body);
        dq[0] = 1.0 - th2 / 8.0;
        for (i = 0; i < 3; i++) dq[i + 1] = 0.5 * s->dtheta_body[i] * (1.0 - th2 / 24.0);
        qmul(g->q, dq, qn);
        n = sqrt(qn[0] * qn[0] + qn[1] * qn[1] + qn[2] * qn[2] + qn[3] * qn[3]);
        for (i = 0; i < 4; i++) g->q[i] = qn[i] / n;
        for (i = 0; i < 3; i++) g->w_body[i] = s->dtheta_body[i] / dt;
    } else {
        /* no IMU: assume the commanded thrust along body +z */
        double f = g->last_throttle * g->cfg.thrust_max_n / g->mass_kg * dt, zb[3] = {0.0, 0.0, 1.0};
        qrot(g->q, zb, dv_mci);
        for (i = 0; i < 3; i++) dv_mci[i] *= f;
    }
    rn = norm3(g->r);
    gr = rn > 0.0 ? -g->cfg.gm / (rn * rn * rn) : 0.0;
    for (i = 0; i < 3; i++) vnew[i] = g->v[i] + dv_mci[i] + gr * g->r[i] * dt;
    for (i = 0; i < 3; i++) {
        g->r[i] += 0.5 * (g->v[i] + vnew[i]) * dt;
        g->v[i] = vnew[i];
    }
    /* propellant used at the throttle commanded over the interval */
    g->mass_kg -= g->last_throttle * g->cfg.thrust_max_n / (g->cfg.isp_s * G0) * dt;
    if (g->mass_kg < 1.0) g->mass_kg = 1.0;
}

static void lrf_update(gnc_t *g, const gnc_sensors_t *s)
{
    double up[3], b_mci[3], p_mci[3], rn = norm3(g->r), cosnad, h_meas, h_est, e, age, gate;
    int i;
    g->lrf_status = 0;
    if (!s->lrf_new || rn <= 0.0) return;
    for (i = 0; i < 3; i++) up[i] = g->r[i] / rn;
    qrot(g->q, g->cfg.lrf_bore_body, b_mci);
    qrot(g->q, g->cfg.lrf_pos_body_m, p_mci);
    cosnad = -dot3(b_mci, up);
    if (cosnad < LRF_MAX_OFFNADIR_COS) { g->lrf_status = 3; return; }
    /* centre-of-mass height above the (flat) ground at the sample time, then brought to now */
    h_meas = cosnad * s->lrf_range_m - dot3(p_mci, up);
    age = s->t_us > s->lrf_sample_t_us ? (double)(s->t_us - s->lrf_sample_t_us) * 1e-6 : 0.0;
    h_meas += dot3(g->v, up) * age;
    h_est = rn - g->site_radius_m;
    e = h_meas - h_est;
    g->last_innovation_m = e;
    if (!g->lrf_fixed) {  /* first sample: take the altitude as measured */
        for (i = 0; i < 3; i++) g->r[i] += e * up[i];
        g->lrf_fixed = 1;
        g->lrf_status = 1;
        return;
    }
    gate = LRF_GATE_MIN_M + LRF_GATE_REL * (h_est > 0.0 ? h_est : 0.0);
    if (fabs(e) > gate) {
        /* rejected; a run of consistent rejections means the estimate, not the LRF, is off */
        if (g->reject_run > 0 && fabs(e - g->prev_reject_innov_m) > LRF_REFIX_TOL_M) g->reject_run = 0;
        g->prev_reject_innov_m = e;
        g->reject_run++;
        g->lrf_rejects++;
        g->lrf_status = 2;
        if (g->reject_run >= LRF_REFIX_N) {
            for (i = 0; i < 3; i++) g->r[i] += e * up[i];
            g->reject_run = 0;
            g->lrf_status = 1;
        }
        return;
    }
    g->reject_run = 0;
    {
        double dt = 0.1;  /* the update runs per LRF sample (10 Hz); gains are per second */
        for (i = 0; i < 3; i++) {
            g->r[i] += LRF_L1 * dt * e * up[i];
            g->v[i] += LRF_L2 * dt * e * up[i];
        }
    }
    g->lrf_status = 1;
}

static void guidance_control(gnc_t *g, gnc_output_t *out)
{
    double rn = norm3(g->r), up[3], h, vup, vh[3], xh[3], d[3], vd_ref, a_up, ah[3], ahn, f[3], fup, fh[3],
           fhn, fn, zb[3], zd[3], zb_body[3] = {0.0, 0.0, 1.0}, axis[3], axis_body[3], s, c, ang, point;
    double vh_ref[3], dn, speed;
    int i;
    for (i = 0; i < 3; i++) up[i] = g->r[i] / rn;
    h = rn - g->site_radius_m;
    vup = dot3(g->v, up);
    for (i = 0; i < 3; i++) vh[i] = g->v[i] - vup * up[i];
    for (i = 0; i < 3; i++) d[i] = g->r[i] * (g->site_radius_m / rn) - g->cfg.site_r_mci[i];
    for (i = 0; i < 3; i++) xh[i] = d[i] - dot3(d, up) * up[i];

    /* vertical: descent-rate schedule */
    vd_ref = h > H_TERMINAL ? V_TERMINAL + sqrt(2.0 * A_PLAN * (h - H_TERMINAL)) : V_TERMINAL;
    if (vd_ref > V_DESCENT_MAX) vd_ref = V_DESCENT_MAX;
    a_up = K_VERT * (-vd_ref - vup);
    out->mode = h > H_TERMINAL ? 2u : 3u;

    /* horizontal: toward the site, then null */
    for (i = 0; i < 3; i++) vh_ref[i] = h > HORIZ_FREEZE_ALT_M ? -K_POS * xh[i] : 0.0;
    speed = norm3(vh_ref);
    if (speed > VH_MAX) for (i = 0; i < 3; i++) vh_ref[i] *= VH_MAX / speed;
    for (i = 0; i < 3; i++) ah[i] = K_HORIZ * (vh_ref[i] - vh[i]);
    ahn = norm3(ah);
    if (ahn > AH_MAX) for (i = 0; i < 3; i++) ah[i] *= AH_MAX / ahn;

    /* thrust acceleration = desired - gravity; tilt-limited */
    fup = a_up + g->cfg.gm / (rn * rn);
    if (fup < 0.1) fup = 0.1;
    for (i = 0; i < 3; i++) fh[i] = ah[i];
    fhn = norm3(fh);
    if (fhn > fup * tan(TILT_MAX)) for (i = 0; i < 3; i++) fh[i] *= fup * tan(TILT_MAX) / fhn;
    for (i = 0; i < 3; i++) f[i] = fup * up[i] + fh[i];
    fn = norm3(f);
    for (i = 0; i < 3; i++) zd[i] = f[i] / fn;

    /* attitude: rotate body +z onto zd (PD on the pointing error, damp all rates) */
    qrot(g->q, zb_body, zb);
    cross3(zb, zd, axis);
    s = norm3(axis);
    c = dot3(zb, zd);
    ang = atan2(s, c);
    qrot_inv(g->q, axis, axis_body);
    for (i = 0; i < 3; i++) {
        double e = s > 1e-9 ? axis_body[i] / s * ang : 0.0;
        out->torque_body[i] = ATT_KP * e - ATT_KD * g->w_body[i];
    }
    out->torque_body[0] = clamp(out->torque_body[0], -TORQUE_MAX_XY, TORQUE_MAX_XY);
    out->torque_body[1] = clamp(out->torque_body[1], -TORQUE_MAX_XY, TORQUE_MAX_XY);
    out->torque_body[2] = clamp(out->torque_body[2], -TORQUE_MAX_Z, TORQUE_MAX_Z);

    /* throttle: the thrust along the body axis that gives f's vertical part */
    point = ang;
    dn = dot3(zb, up);
    if (point > POINT_ERR_MAX || dn < 0.2) {
        out->throttle = g->cfg.throttle_min;
    } else {
        out->throttle = fup / dn * g->mass_kg / g->cfg.thrust_max_n;
    }
    out->throttle = clamp(out->throttle, g->cfg.throttle_min, 1.0);
}

void gnc_step(gnc_t *g, const gnc_sensors_t *s, gnc_output_t *out)
{
    propagate(g, s);
    lrf_update(g, s);
    guidance_control(g, out);
    g->last_throttle = out->throttle;
}
