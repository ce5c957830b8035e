/*
 * fuzz_frames.c - libFuzzer target: CRC-valid structured frames. The input is read as a
 * sequence of records, each turned into a CONFIG, COMMIT or SENSORS message that this target
 * encodes with a valid CRC (fsw_msg_encode_frame) and feeds to the flight code, so every frame
 * passes the link layer and reaches the application: the second line of defence is what stands
 * between it and the GNC. After every message: the invariants of fuzz_check.h.
 *
 * Input layout: byte 0 bit 0 set = start from a plausible configuration already committed (a
 * lander 2 km above the site descending at 40 m/s: deep states are reached at once); then
 * records, each introduced by one opcode byte:
 *   op % 5 == 0  CONFIG: u8 parameter selector, u8 value selector (+ 8 bytes raw f64 for 0xFF)
 *   op % 5 == 1  COMMIT
 *   op % 5 == 2  SENSORS from an ideal IMU on the descent (+ 1 byte: perturbation kind, 4 bytes f32 size)
 *   op % 5 == 3  SENSORS, every field raw from the input (88 bytes of body after the flags)
 *   op % 5 == 4  SENSORS lost on the link (the IMU moves on, nothing is sent)
 * CHK_ENABLE (id 92) is never set: with the defence off the state claims do not hold.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"

#define R_SITE 1737400.0
#define G_MOON 1.62f

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader_t;

static int take(reader_t *r, void *out, size_t k)
{
    if (r->n < k) {
        return 0;
    }
    memcpy(out, r->p, k);
    r->p += k;
    r->n -= k;
    return 1;
}

static uint8_t take_u8(reader_t *r, uint8_t dflt)
{
    uint8_t v = dflt;
    (void)take(r, &v, 1);
    return v;
}

typedef struct sim {
    fsw_loopback_t *lb;
    uint16_t seq;
    uint64_t t_us;
    double acc_dv[3], acc_dth[3];
} sim_t;

static void send(sim_t *s, fsw_msg_t *m)
{
    uint8_t frame[FSW_MAX_FRAME];
    size_t n;

    m->hdr.version = (uint8_t)FSW_PROTO_VERSION;
    if (m->hdr.seq == 0u && m->hdr.msg_type != FSW_MSG_SENSORS) {
        m->hdr.seq = s->seq++;
    }
    n = fsw_msg_encode_frame(m, frame, sizeof frame);
    if (n == 0u) {
        FUZZ_FAIL("the target could not encode its own message (type %u)", (unsigned)m->hdr.msg_type);
    }
    fsw_loopback_feed(s->lb, frame, n);
    fuzz_check_state(&s->lb->fsw);
    {
        fuzz_expect_t ex = { m->hdr.msg_type == FSW_MSG_SENSORS, m->hdr.seq, m->hdr.t_us };
        fuzz_drain_and_expect(s->lb, &ex);
    }
}

static void config(sim_t *s, uint16_t id, double value, uint16_t flags)
{
    fsw_msg_t m;
    memset(&m, 0, sizeof m);
    m.hdr.msg_type = FSW_MSG_CONFIG;
    m.hdr.t_us = s->t_us;
    m.body.config.param_id = id;
    m.body.config.flags = flags;
    m.body.config.value = value;
    send(s, &m);
}

/* Interesting values for a parameter: its default, range ends, zero, signs, huge, non-finite. */
static double pick_value(reader_t *r, const fsw_param_info_t *info)
{
    uint8_t k = take_u8(r, 0);
    double raw = 0.0;
    static const double table[] = { 0.0, -1.0, 1.0, 1.0e8, -1.0e8, 1.0e300, 5e-324, 1737400.0, 1000.0,
                                    4.9028e12, 0.5, 2.0 };
    switch (k % 16u) {
    case 0: return info->def;
    case 1: return info->min;
    case 2: return info->max;
    case 3: return NAN;
    case 4: return INFINITY;
    case 5: return (info->min + info->max) * 0.5;
    case 6: return info->def * 1.0001;
    case 7: return info->min + (info->max - info->min) * (double)take_u8(r, 0) / 255.0;
    case 15:
        (void)take(r, &raw, sizeof raw);
        return raw;
    default: return table[(k / 16u) % (sizeof table / sizeof table[0])];
    }
}

static void sensors_msg(sim_t *s, fsw_msg_t *m, const float dv[3], const float dth[3], uint32_t dt_us)
{
    int i;
    memset(m, 0, sizeof *m);
    m->hdr.msg_type = FSW_MSG_SENSORS;
    s->t_us += dt_us;
    for (i = 0; i < 3; i++) {
        s->acc_dv[i] += (double)dv[i];
        s->acc_dth[i] += (double)dth[i];
        m->body.sensors.imu_dv_body[i] = dv[i];
        m->body.sensors.imu_dtheta_body[i] = dth[i];
        m->body.sensors.imu_dv_accum_body[i] = s->acc_dv[i];
        m->body.sensors.imu_dtheta_accum_body[i] = s->acc_dth[i];
    }
    m->body.sensors.imu_dt_us = dt_us;
    m->body.sensors.flags = FSW_SENS_IMU_VALID;
    m->hdr.t_us = s->t_us;
    m->hdr.seq = s->seq++;
}

/* An ideal IMU on a lander holding attitude: specific force from the last command's throttle. */
static void ideal_interval(sim_t *s, float dv[3], float dth[3])
{
    const fsw_ctx_t *c = &s->lb->fsw;
    float thr = (c->last_cmd.flags & FSW_CMD_ENGINE_ON) ? c->last_cmd.throttle : 0.0f;
    float mass = c->guid.mass > 1.0f ? c->guid.mass : 700.0f;
    dv[0] = 0.0f;
    dv[1] = 0.0f;
    dv[2] = thr * (float)c->params.THRUST_MAX / mass * 0.02f;
    dth[0] = 0.0f;
    dth[1] = 0.0f;
    dth[2] = 0.0f;
}

static void sensors_ideal(sim_t *s, reader_t *r, int lost)
{
    fsw_msg_t m;
    float dv[3], dth[3], x = 0.0f;
    uint8_t kind = lost ? 0u : take_u8(r, 0);
    uint32_t dt_us = 20000u;

    ideal_interval(s, dv, dth);
    if (kind != 0u) {
        (void)take(r, &x, sizeof x);
    }
    switch (kind % 8u) {
    case 1: dv[kind / 8u % 3u] += x; break;           /* accelerometer spike */
    case 2: dth[kind / 8u % 3u] += x; break;          /* gyro spike */
    case 3: dt_us = (uint32_t)(x > 0.0f && x < 4.0e9f ? x : 1.0e6f); break;   /* odd interval */
    default: break;
    }
    sensors_msg(s, &m, dv, dth, dt_us);
    if (kind % 8u == 4u) {
        m.hdr.t_us -= (uint64_t)(kind / 8u) * 20000u;   /* time runs back */
    } else if (kind % 8u == 5u) {
        m.hdr.seq = (uint16_t)(m.hdr.seq - 1u - kind / 8u);   /* old sequence number */
    } else if (kind % 8u == 6u) {
        m.body.sensors.imu_dv_accum_body[kind / 8u % 3u] += (double)x;   /* accumulator corrupted */
    } else if (kind % 8u == 7u) {
        m.body.sensors.flags = (uint8_t)(kind / 8u);
        m.body.sensors.lrf_range = x;
        m.body.sensors.lrf_sample_t_us = m.hdr.t_us - 10000u;
    }
    if (!lost) {
        send(s, &m);
    }
}

static void sensors_raw(sim_t *s, reader_t *r)
{
    fsw_msg_t m;
    fsw_sensors_t *b = &m.body.sensors;
    uint16_t dseq = 1;
    uint32_t dt = 0;

    memset(&m, 0, sizeof m);
    m.hdr.msg_type = FSW_MSG_SENSORS;
    (void)take(r, &dseq, sizeof dseq);
    (void)take(r, &dt, sizeof dt);
    s->seq = (uint16_t)(s->seq + dseq);
    s->t_us += dt;
    m.hdr.seq = s->seq;
    m.hdr.t_us = s->t_us;
    (void)take(r, b->imu_dv_body, sizeof b->imu_dv_body);
    (void)take(r, b->imu_dtheta_body, sizeof b->imu_dtheta_body);
    (void)take(r, &b->imu_dt_us, sizeof b->imu_dt_us);
    (void)take(r, &b->lrf_range, sizeof b->lrf_range);
    (void)take(r, &b->lrf_sample_t_us, sizeof b->lrf_sample_t_us);
    (void)take(r, &b->flags, sizeof b->flags);
    (void)take(r, b->imu_dv_accum_body, sizeof b->imu_dv_accum_body);
    (void)take(r, b->imu_dtheta_accum_body, sizeof b->imu_dtheta_accum_body);
    send(s, &m);
}

static void plausible_start(sim_t *s)
{
    /* upright above the site at MCI +x: body +z along +x */
    const double h = 0.70710678118654752;
    config(s, FSW_PID_NAV_R0_X, R_SITE + 2000.0, 0);
    config(s, FSW_PID_NAV_V0_X, -40.0, 0);
    config(s, FSW_PID_NAV_V0_Y, 5.0, 0);
    config(s, FSW_PID_NAV_Q0_W, h, 0);
    config(s, FSW_PID_NAV_Q0_Y, h, 0);
    config(s, FSW_PID_NAV_Q0_X, 0.0, 0);
    config(s, FSW_PID_NAV_Q0_Z, 0.0, 0);
    config(s, 0, 0.0, FSW_CONFIG_COMMIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fsw_loopback_t lb;
    sim_t s;
    reader_t r = { data, size };
    uint8_t op, head;
    size_t count = fsw_param_count();

    fsw_loopback_init(&lb);
    fuzz_drain_and_check(&lb);
    memset(&s, 0, sizeof s);
    s.lb = &lb;
    head = take_u8(&r, 1);
    if (head & 1u) {
        plausible_start(&s);
        /* the first SENSORS of a flight: t 0, no interval */
        {
            fsw_msg_t m;
            float z[3] = { 0.0f, 0.0f, 0.0f };
            sensors_msg(&s, &m, z, z, 0u);
            send(&s, &m);
        }
    }
    while (take(&r, &op, 1)) {
        switch (op % 5u) {
        case 0: {
            const fsw_param_info_t *info = fsw_param_at((size_t)take_u8(&r, 0) % count);
            if (info != NULL && info->id != (uint16_t)FSW_PID_CHK_ENABLE) {
                config(&s, info->id, pick_value(&r, info), 0);
            }
            break;
        }
        case 1:
            config(&s, 0, 0.0, FSW_CONFIG_COMMIT);
            break;
        case 2:
            sensors_ideal(&s, &r, 0);
            break;
        case 3:
            sensors_raw(&s, &r);
            break;
        default:
            sensors_ideal(&s, &r, 1);
            break;
        }
    }
    /* and a few clean cycles after whatever came before: the flight code must recover */
    for (op = 0; op < 5u; op++) {
        sensors_ideal(&s, &r, 0);
    }
    return 0;
}
