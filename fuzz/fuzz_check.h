/*
 * fuzz_check.h - invariants the fuzz targets check after every input message (fuzz/README.md).
 *
 * A violation prints what failed and aborts: libFuzzer reports it as a crash and writes the
 * reproducer (crash-<sha1>) like any sanitizer report.
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal_loopback.h"

#define FUZZ_FAIL(...)                                                   \
    do {                                                                 \
        fprintf(stderr, "fuzz invariant violated: " __VA_ARGS__);        \
        fprintf(stderr, "\n");                                           \
        abort();                                                         \
    } while (0)

static inline void fuzz_finite3d(const double *a, const char *what)
{
    if (!isfinite(a[0]) || !isfinite(a[1]) || !isfinite(a[2])) {
        FUZZ_FAIL("%s not finite: %g %g %g", what, a[0], a[1], a[2]);
    }
}

static inline void fuzz_finitef(const float *a, int n, const char *what)
{
    int i;
    for (i = 0; i < n; i++) {
        if (!isfinite(a[i])) {
            FUZZ_FAIL("%s[%d] not finite: %g", what, i, (double)a[i]);
        }
    }
}

/* Navigation and guidance state: finite whenever the GNC runs with the second line of defence
 * on (CHK_ENABLE 0 is the unchecked code: no claim). */
static inline void fuzz_check_state(const fsw_ctx_t *c)
{
    if (!c->committed || !c->chk.enable) {
        return;
    }
    fuzz_finite3d(c->nav.r, "nav.r");
    fuzz_finite3d(c->nav.v, "nav.v");
    fuzz_finitef(c->nav.q, 4, "nav.q");
    fuzz_finitef(c->guid.thrust_dir, 3, "guid.thrust_dir");
    fuzz_finitef(&c->guid.throttle, 1, "guid.throttle");
    fuzz_finitef(&c->guid.mass, 1, "guid.mass");
    fuzz_finitef(c->guid.a_cmd, 3, "guid.a_cmd");
    if (c->guid.phase > FSW_MODE_SAFE) {
        FUZZ_FAIL("guidance phase %u out of range", (unsigned)c->guid.phase);
    }
}

/* One message the flight code sent: a COMMAND finite and in range. */
static inline void fuzz_check_sent(const fsw_ctx_t *c, const fsw_msg_t *m)
{
    if (m->hdr.version != FSW_PROTO_VERSION) {
        FUZZ_FAIL("sent a frame of version %u", (unsigned)m->hdr.version);
    }
    if (m->hdr.msg_type == FSW_MSG_COMMAND) {
        const fsw_command_t *k = &m->body.command;
        const double tmax[3] = { c->params.RCS_TMAX_X, c->params.RCS_TMAX_Y, c->params.RCS_TMAX_Z };
        int i;
        if (!(k->throttle >= 0.0f && k->throttle <= 1.0f)) {
            FUZZ_FAIL("COMMAND throttle %g outside [0, 1]", (double)k->throttle);
        }
        for (i = 0; i < 3; i++) {
            if (!isfinite(k->torque_body[i]) || fabs((double)k->torque_body[i]) > tmax[i] * 1.0001) {
                FUZZ_FAIL("COMMAND torque[%d] %g outside +-%g", i, (double)k->torque_body[i], tmax[i]);
            }
        }
        if (k->mode > FSW_MODE_SAFE) {
            FUZZ_FAIL("COMMAND mode %u out of range", (unsigned)k->mode);
        }
    } else if (m->hdr.msg_type == FSW_MSG_TELEMETRY && c->committed && c->chk.enable) {
        fuzz_finite3d(m->body.telemetry.est_r_mci, "TELEMETRY est_r_mci");
        fuzz_finitef(m->body.telemetry.est_v_mci, 3, "TELEMETRY est_v_mci");
    }
}

/* What the last input message obliges the flight code to answer (SENSORS: one COMMAND echoing
 * its sequence number and time). */
typedef struct fuzz_expect {
    int      command;        /* 1: exactly one COMMAND expected */
    uint16_t seq;
    uint64_t t_us;
} fuzz_expect_t;

/*
 * Drain what the flight code transmitted and decode it with a fresh parser: every frame must
 * decode cleanly (no CRC, framing, length or unknown-type error: no malformed frame sent);
 * with an expectation, exactly one COMMAND carrying the SENSORS' sequence number and time.
 */
static inline void fuzz_drain_and_expect(fsw_loopback_t *lb, const fuzz_expect_t *ex)
{
    size_t commands = 0;
    static const size_t cap = FSW_LOOPBACK_TX_CAP;
    uint8_t out[FSW_LOOPBACK_TX_CAP];
    fsw_parser_t p;
    fsw_msg_t m;
    size_t n, i, frames = 0, delims = 0;

    if (lb->tx_overflow != 0u) {
        FUZZ_FAIL("loopback transmit buffer overflowed (%u bytes)", (unsigned)lb->tx_overflow);
    }
    n = fsw_loopback_drain(lb, out, cap);
    fsw_parser_init(&p);
    for (i = 0; i < n; i++) {
        if (out[i] == 0u) {
            delims++;
        }
        if (fsw_parser_push(&p, out[i], &m)) {
            frames++;
            fuzz_check_sent(&lb->fsw, &m);
            if (m.hdr.msg_type == FSW_MSG_COMMAND) {
                commands++;
                if (ex != NULL && ex->command &&
                    (m.body.command.sensors_seq != ex->seq || m.hdr.t_us != ex->t_us)) {
                    FUZZ_FAIL("COMMAND answers seq %u t %llu, the SENSORS was seq %u t %llu",
                              (unsigned)m.body.command.sensors_seq, (unsigned long long)m.hdr.t_us,
                              (unsigned)ex->seq, (unsigned long long)ex->t_us);
                }
            }
        }
    }
    if (n > 0u && out[n - 1u] != 0u) {
        FUZZ_FAIL("transmitted bytes do not end with a frame delimiter");
    }
    if (p.crc_errors || p.framing_errors || p.length_errors || p.unknown_msgs || frames != delims) {
        FUZZ_FAIL("malformed frame sent: %zu frames, %zu delimiters, crc %u framing %u length %u unknown %u",
                  frames, delims, (unsigned)p.crc_errors, (unsigned)p.framing_errors,
                  (unsigned)p.length_errors, (unsigned)p.unknown_msgs);
    }
    if (ex != NULL && ex->command && commands != 1u) {
        FUZZ_FAIL("%zu COMMANDs answered one SENSORS (seq %u)", commands, (unsigned)ex->seq);
    }
}

static inline void fuzz_drain_and_check(fsw_loopback_t *lb)
{
    fuzz_drain_and_expect(lb, NULL);
}

#endif /* FUZZ_CHECK_H */
