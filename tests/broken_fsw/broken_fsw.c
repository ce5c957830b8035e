/*
 * broken_fsw.c - a small foreign flight program for `fsil conform`, correct by default and
 * deliberately broken in exactly one way when built with one -DBREAK_xxx (tests/test_conform.py
 * builds every variant and checks that conform fails that item and nothing else).
 *
 *   broken_fsw TTY       serve the link protocol on TTY (the pty the `program` rig creates)
 *
 * It speaks the protocol only through the drop-in codec firmware_stub/fsw_protocol.[ch], opens
 * and writes its port with the simple_lander example's examples/simple_lander/serial_port.[ch]
 * (as a team that started from the example would) and flies a trivial hover law (throttle = weight / THRUST_MAX), nothing of the reference GNC.
 * One context struct, no heap. Diagnostics on stderr; exit 0 on hangup or SIGTERM.
 *
 * Variants (each the only defect of its build):
 *   BREAK_NO_HELLO_ANSWER   boot banner only, HELLO requests ignored        -> hello
 *   BREAK_HELLO_VERSION     HELLO says the next protocol version            -> hello
 *   BREAK_CORE_REFUSED      refuses core parameter ISP (id 16) as unknown   -> config.core
 *   BREAK_RANGE_APPLIED     no range check: out-of-range value applied, 0   -> config.out_of_range
 *   BREAK_UNKNOWN_ACCEPTED  unknown ids acknowledged ACCEPTED               -> config.unknown_id
 *   BREAK_COMMIT_ACCEPTED   COMMIT acknowledged ACCEPTED, not COMMITTED     -> commit
 *   BREAK_SLOW              the 10th SENSORS after COMMIT answered after 1 s -> latency
 *   BREAK_FRAMES_OK_STUCK   TELEMETRY rx_frames_ok never moves              -> telemetry.counters
 *   BREAK_CRC_NOT_COUNTED   TELEMETRY rx_crc_errors stuck at 0              -> frames.bad_crc
 *   BREAK_OVERSIZE_DIES     unchecked 256-byte line buffer: dies on a long run -> frames.oversize
 *   BREAK_UNKNOWN_AS_LENGTH unknown types counted as length errors          -> frames.unknown_type
 *   BREAK_SPLIT             assumes every read() holds whole frames         -> frames.split
 *   BREAK_LOST_IGNORED      drops a SENSORS whose seq is not last + 1       -> sensors.lost
 *   BREAK_SENSORS_SEQ       COMMAND.sensors_seq off by one                  -> seq.sensors_seq
 *   BREAK_T_US              COMMAND stamped with its own clock, not the SENSORS t_us -> seq.t_us
 *   BREAK_TX_SEQ            TELEMETRY not numbered in the frame sequence    -> seq.tx
 *   BREAK_OLD_VERSION       every frame's header says the previous version  -> hello, the rest not run
 *   BREAK_GAPS_NOT_COUNTED  TELEMETRY sensors_gaps stays 0                  -> sensors.lost
 */
#define _POSIX_C_SOURCE 200809L /* sigaction, nanosleep */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsw_protocol.h"
#include "serial_port.h"

#define N_PARAMS 128u
#define SLOW_MS 1000

typedef struct param_range {
    double def, min, max;
    uint8_t known;
} param_range_t;

typedef struct app {
    int fd;
    fsw_parser_t parser;
    param_range_t range[N_PARAMS];
    double value[N_PARAMS];
    uint16_t tx_seq;
    uint8_t committed;
    uint8_t have_sensors_seq;
    uint16_t last_sensors_seq;
    uint32_t sensors_gaps;
    uint32_t cycles;
    uint32_t run;          /* bytes since the last 0x00 (BREAK_OVERSIZE_DIES) */
    int write_failed;
} app_t;

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig)
{
    g_stop = sig;
}

/* The parameter registry: ids and ranges from the protocol's fsw_params.def. */
static void params_init(app_t *a)
{
#define FSW_PARAM(pid, name, dflt, lo, hi, unit, desc) \
    if ((pid) < N_PARAMS) { a->range[pid].def = (dflt); a->range[pid].min = (lo); a->range[pid].max = (hi); \
                            a->range[pid].known = 1u; a->value[pid] = (dflt); }
#include "fsw_params.def"
#undef FSW_PARAM
}

static void send_msg(app_t *a, fsw_msg_t *m)
{
    uint8_t frame[FSW_MAX_FRAME];

    m->hdr.version = (uint8_t)FSW_PROTO_VERSION;
#ifdef BREAK_OLD_VERSION
    m->hdr.version = (uint8_t)(FSW_PROTO_VERSION - 1u);
#endif
    m->hdr.seq = a->tx_seq;
#ifdef BREAK_TX_SEQ
    if (m->hdr.msg_type != FSW_MSG_TELEMETRY)
#endif
    a->tx_seq = (uint16_t)(a->tx_seq + 1u);
    if (serial_port_write(a->fd, frame, fsw_msg_encode_frame(m, frame, sizeof frame)) != 0) {
        a->write_failed = 1;
    }
}

static void send_hello(app_t *a)
{
    fsw_msg_t m;
    memset(&m, 0, sizeof m);
    m.hdr.msg_type = FSW_MSG_HELLO;
    m.body.hello.protocol_version = (uint16_t)FSW_PROTO_VERSION;
#ifdef BREAK_HELLO_VERSION
    m.body.hello.protocol_version = (uint16_t)(FSW_PROTO_VERSION + 1u);
#endif
    m.body.hello.firmware_id = 0x42524B31u; /* "BRK1" */
    memcpy(m.body.hello.firmware_name, "broken-fsw", 10);
    send_msg(a, &m);
}

/* Optional parameters this program uses besides the core set (ids 1-18). */
static int uses_param(uint16_t id)
{
#ifdef BREAK_CORE_REFUSED
    if (id == 16u) {
        return 0;   /* ISP: "our guidance does not need it" */
    }
#endif
    return (id >= 1u && id <= 18u) || id == 19u /* TLM_DECIMATION */;
}

static void handle_config(app_t *a, const fsw_msg_t *in)
{
    const fsw_config_t *c = &in->body.config;
    fsw_msg_t m;
    uint16_t id = c->param_id;

    memset(&m, 0, sizeof m);
    m.hdr.msg_type = FSW_MSG_CONFIG_ACK;
    m.body.config_ack.param_id = id;
    if (id == 0u && (c->flags & FSW_CONFIG_COMMIT)) {
        a->committed = 1;
        a->have_sensors_seq = 0;
        a->cycles = 0;
        m.body.config_ack.status = FSW_ACK_COMMITTED;
#ifdef BREAK_COMMIT_ACCEPTED
        m.body.config_ack.status = FSW_ACK_ACCEPTED;
#endif
    } else if (id < N_PARAMS && uses_param(id)) {
        int in_range = c->value >= a->range[id].min && c->value <= a->range[id].max;
#ifdef BREAK_RANGE_APPLIED
        in_range = 1;
#endif
        if (in_range) {
            a->value[id] = c->value;
            m.body.config_ack.status = FSW_ACK_ACCEPTED;
        } else {
            m.body.config_ack.status = FSW_ACK_OUT_OF_RANGE;
        }
        m.body.config_ack.value = a->value[id];
    } else {
        m.body.config_ack.status = FSW_ACK_UNKNOWN_ID;
#ifdef BREAK_UNKNOWN_ACCEPTED
        m.body.config_ack.status = FSW_ACK_ACCEPTED;
        m.body.config_ack.value = c->value;
#endif
    }
    send_msg(a, &m);
}

static uint16_t sat16(uint32_t v)
{
    return v > 0xFFFFu ? 0xFFFFu : (uint16_t)v;
}

static void handle_sensors(app_t *a, const fsw_msg_t *in)
{
    fsw_msg_t m;
    double r2, g, mass, thrust_max, throttle;
    uint32_t dec;
    int i;

    if (a->committed && a->have_sensors_seq) {
        uint16_t missing = (uint16_t)(in->hdr.seq - a->last_sensors_seq - 1u);
#ifdef BREAK_LOST_IGNORED
        if (missing != 0u) {
            a->last_sensors_seq = in->hdr.seq;
            return;   /* "out of order": dropped without an answer */
        }
#endif
        a->sensors_gaps += missing;
    }
    if (a->committed) {
        a->last_sensors_seq = in->hdr.seq;
        a->have_sensors_seq = 1;
    }
#ifdef BREAK_GAPS_NOT_COUNTED
    a->sensors_gaps = 0;
#endif
    a->cycles++;
#ifdef BREAK_SLOW
    if (a->committed && a->cycles == 10u) {   /* e.g. a flash write in the cycle path */
        struct timespec ts = { SLOW_MS / 1000, (long)(SLOW_MS % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
#endif
    memset(&m, 0, sizeof m);
    m.hdr.msg_type = FSW_MSG_COMMAND;
    m.hdr.t_us = in->hdr.t_us;
#ifdef BREAK_T_US
    m.hdr.t_us = (uint64_t)a->cycles * 20000u;   /* its own cycle clock */
#endif
    m.body.command.sensors_seq = in->hdr.seq;
#ifdef BREAK_SENSORS_SEQ
    m.body.command.sensors_seq = (uint16_t)(in->hdr.seq + 1u);
#endif
    if (a->committed) {
        /* hover: thrust = weight at the initial radius */
        r2 = a->value[1] * a->value[1] + a->value[2] * a->value[2] + a->value[3] * a->value[3];
        g = r2 > 0.0 ? a->value[18] / r2 : 0.0;
        mass = a->value[11];
        thrust_max = a->value[15];
        throttle = thrust_max > 0.0 ? mass * g / thrust_max : 0.0;
        m.body.command.throttle = (float)(throttle > 1.0 ? 1.0 : throttle);
        m.body.command.flags = FSW_CMD_ENGINE_ON;
        m.body.command.mode = FSW_MODE_TERMINAL;
    }
    send_msg(a, &m);

    dec = (uint32_t)(a->value[19] + 0.5);
    if (dec < 1u) {
        dec = 1u;
    }
    if (!a->committed || (a->cycles - 1u) % dec != 0u) {
        return;
    }
    memset(&m, 0, sizeof m);
    m.hdr.msg_type = FSW_MSG_TELEMETRY;
    m.hdr.t_us = in->hdr.t_us;
    for (i = 0; i < 3; i++) {
        m.body.telemetry.est_r_mci[i] = a->value[1 + i];
        m.body.telemetry.est_v_mci[i] = (float)a->value[4 + i];
    }
    for (i = 0; i < 4; i++) {
        m.body.telemetry.est_q_mci_body[i] = (float)a->value[7 + i];
    }
    m.body.telemetry.phase = FSW_MODE_TERMINAL;
    m.body.telemetry.rx_crc_errors = sat16(a->parser.crc_errors);
    m.body.telemetry.rx_framing_errors = sat16(a->parser.framing_errors);
    m.body.telemetry.rx_length_errors = sat16(a->parser.length_errors);
    m.body.telemetry.rx_unknown_msgs = sat16(a->parser.unknown_msgs);
    m.body.telemetry.rx_frames_ok = (uint16_t)(a->parser.frames_ok & 0xFFFFu);
#ifdef BREAK_CRC_NOT_COUNTED
    m.body.telemetry.rx_crc_errors = 0;
#endif
#ifdef BREAK_FRAMES_OK_STUCK
    m.body.telemetry.rx_frames_ok = 0;
#endif
#ifdef BREAK_UNKNOWN_AS_LENGTH
    m.body.telemetry.rx_length_errors = sat16(a->parser.length_errors + a->parser.unknown_msgs);
    m.body.telemetry.rx_unknown_msgs = 0;
#endif
    m.body.telemetry.sensors_gaps = sat16(a->sensors_gaps);
    send_msg(a, &m);
}

static void on_msg(void *user, const fsw_msg_t *in)
{
    app_t *a = (app_t *)user;
    switch (in->hdr.msg_type) {
    case FSW_MSG_HELLO:
#ifndef BREAK_NO_HELLO_ANSWER
        send_hello(a);
#endif
        break;
    case FSW_MSG_CONFIG:
        handle_config(a, in);
        break;
    case FSW_MSG_SENSORS:
        handle_sensors(a, in);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    static app_t app;
    uint8_t buf[4096];
    struct sigaction sa;

    if (argc != 2) {
        fprintf(stderr, "usage: broken_fsw TTY\n");
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&app, 0, sizeof app);
    params_init(&app);
    fsw_parser_init(&app.parser);
    app.fd = serial_port_open(argv[1]);
    if (app.fd < 0) {
        fprintf(stderr, "broken_fsw: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    send_hello(&app);   /* boot banner */
    while (!g_stop && !app.write_failed) {
        ssize_t n = read(app.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fprintf(stderr, "broken_fsw: %s on %s, exiting\n", n == 0 ? "end of file" : strerror(errno), argv[1]);
            break;
        }
#ifdef BREAK_OVERSIZE_DIES
        {
            ssize_t i;
            for (i = 0; i < n; i++) {
                app.run = buf[i] == 0u ? 0u : app.run + 1u;
                if (app.run > 256u) {
                    /* stands for the overflow of an unchecked 256-byte line buffer */
                    fprintf(stderr, "broken_fsw: line buffer overflow\n");
                    abort();
                }
            }
        }
#endif
#ifdef BREAK_SPLIT
        app.parser.len = 0;          /* "every read() starts a frame" */
        app.parser.discarding = 0;
#endif
        (void)fsw_parser_feed(&app.parser, buf, (size_t)n, on_msg, &app);
    }
    close(app.fd);
    return 0;
}
