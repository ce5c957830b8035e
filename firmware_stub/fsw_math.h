/*
 * fsw_math.h - small vector/quaternion helpers for the flight code.
 * Header-only static inline functions: no state. No libm except sqrtf()
 * and sqrt(), which IEEE 754 requires to be correctly rounded, so results
 * are the same on every conforming target.
 *
 * Quaternions are scalar first: q = [w, x, y, z]; q_mci_body rotates body
 * vectors into MCI: v_mci = q * v_body * q^-1.
 */
#ifndef FSW_MATH_H
#define FSW_MATH_H

#include <math.h>

static inline float fsw_dot3f(const float a[3], const float b[3])
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static inline void fsw_cross3f(const float a[3], const float b[3], float out[3])
{
    float x = a[1] * b[2] - a[2] * b[1];
    float y = a[2] * b[0] - a[0] * b[2];
    float z = a[0] * b[1] - a[1] * b[0];
    out[0] = x;
    out[1] = y;
    out[2] = z;
}

static inline float fsw_norm3f(const float a[3])
{
    return sqrtf(fsw_dot3f(a, a));
}

static inline float fsw_clampf(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline float fsw_minf(float a, float b)
{
    return a < b ? a : b;
}

static inline float fsw_maxf(float a, float b)
{
    return a > b ? a : b;
}

/* v_out = R(q) v (body -> MCI for q_mci_body). */
static inline void fsw_qrotf(const float q[4], const float v[3], float out[3])
{
    /* t = 2 * (qv x v); out = v + w t + qv x t */
    const float qv[3] = { q[1], q[2], q[3] };
    float t[3], c[3];
    fsw_cross3f(qv, v, t);
    t[0] *= 2.0f;
    t[1] *= 2.0f;
    t[2] *= 2.0f;
    fsw_cross3f(qv, t, c);
    out[0] = v[0] + q[0] * t[0] + c[0];
    out[1] = v[1] + q[0] * t[1] + c[1];
    out[2] = v[2] + q[0] * t[2] + c[2];
}

/* v_out = R(q)^T v (MCI -> body for q_mci_body). */
static inline void fsw_qrotf_inv(const float q[4], const float v[3], float out[3])
{
    const float qc[4] = { q[0], -q[1], -q[2], -q[3] };
    fsw_qrotf(qc, v, out);
}

/* out = a (x) b */
static inline void fsw_qmulf(const float a[4], const float b[4], float out[4])
{
    float w = a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
    float x = a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2];
    float y = a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1];
    float z = a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0];
    out[0] = w;
    out[1] = x;
    out[2] = y;
    out[3] = z;
}

/*
 * v = v / |v| for a vector of n (<= 4) elements; when |v| <= min_norm (or is NaN) v = fallback
 * instead. The squares are summed in element order, so a 3-vector's norm is fsw_norm3f's.
 */
static inline void fsw_unitf(float *v, int n, float min_norm, const float *fallback)
{
    float s = 0.0f;
    int i;
    for (i = 0; i < n; i++) {
        s += v[i] * v[i];
    }
    s = sqrtf(s);
    for (i = 0; i < n; i++) {
        v[i] = s > min_norm ? v[i] / s : fallback[i];
    }
}

/* q = q / |q|; a zero quaternion becomes the identity. */
static inline void fsw_qnormf(float q[4])
{
    static const float identity[4] = { 1.0f, 0.0f, 0.0f, 0.0f };
    fsw_unitf(q, 4, 0.0f, identity);
}

/*
 * cos(x) for |x| <= about 3.3 rad without libm: Taylor series to x^10 at x/2,
 * then cos x = 2 cos^2(x/2) - 1. Absolute error < 1e-6. Used for thresholds
 * derived from parameters, not in the integration.
 */
static inline double fsw_cos_small(double x)
{
    double h = 0.5 * x;
    double h2 = h * h;
    double c = 1.0 - h2 / 2.0 * (1.0 - h2 / 12.0 * (1.0 - h2 / 30.0 * (1.0 - h2 / 56.0 * (1.0 - h2 / 90.0 * (1.0 - h2 / 132.0)))));
    return 2.0 * c * c - 1.0;
}

#endif /* FSW_MATH_H */
