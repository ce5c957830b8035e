/*
 * simple_lander - a small lunar-lander flight program that speaks the fsil link protocol.
 *
 *   simple_lander PORT        PORT: the pty (or serial device) the harness gives as {port}
 *
 * Uses only the drop-in codec (firmware_stub/fsw_protocol.[ch], compiled from there) and POSIX
 * for the serial port (serial_port.c); its GNC (gnc.c) is its own. Frames only on the port; diagnostics on
 * stderr. Exit status 0 on hangup/SIGTERM, 1 on I/O errors, 2 on usage errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fsw_protocol.h"
#include "gnc.h"
#include "serial_port.h"

/* Parameter ids this program uses (the protocol's id registry, firmware_stub/fsw_params.def). */
enum {
    P_COMMIT = 0,
    P_NAV_R0_X = 1, P_NAV_V0_X = 4, P_NAV_Q0_W = 7, P_MASS0 = 11, P_SITE_R_X = 12,
    P_THRUST_MAX = 15, P_ISP = 16, P_THROTTLE_MIN = 17, P_GM = 18,
    P_LRF_BORE_X = 31, P_LRF_POS_X = 55
};

typedef struct app {
    int fd;
    fsw_parser_t parser;
    gnc_config_t cfg;
    gnc_t gnc;
    uint8_t committed;
    uint16_t tx_seq;
    uint16_t last_rx_seq;
    uint8_t have_rx_seq;
    uint64_t last_t_us;
    double last_dv_accum[3];      /* IMU accumulators of the last SENSORS frame used */
    double last_dtheta_accum[3];
    uint16_t sensors_gaps;
    int io_error;
} app_t;

static volatile sig_atomic_t g_stop;  /* set by the signal handler only */

static void on_signal(int sig) { (void)sig; g_stop = 1; }

static void send_msg(app_t *a, fsw_msg_t *m, uint64_t t_us)
{
    uint8_t frame[FSW_MAX_FRAME];
    int err;
    m->hdr.version = FSW_PROTO_VERSION;
    m->hdr.seq = a->tx_seq++;
    m->hdr.t_us = t_us;
    err = serial_port_write(a->fd, frame, fsw_msg_encode_frame(m, frame, sizeof frame));
    if (err) a->io_error = err;
}

static void send_hello(app_t *a)
{
    fsw_msg_t m;
    memset(&m, 0, sizeof m);
    m.hdr.msg_type = FSW_MSG_HELLO;
    m.body.hello.protocol_version = FSW_PROTO_VERSION;
    m.body.hello.firmware_id = 0x51A1D001u;
    memcpy(m.body.hello.firmware_name, "simple_lander", 13);
    send_msg(a, &m, 0);
}

/* Where parameter `id` lives in the configuration, or NULL for an id this program does not use. */
static double *param_slot(gnc_config_t *c, uint16_t id)
{
    if (id >= P_NAV_R0_X && id < P_NAV_R0_X + 3) return &c->r0_mci[id - P_NAV_R0_X];
    if (id >= P_NAV_V0_X && id < P_NAV_V0_X + 3) return &c->v0_mci[id - P_NAV_V0_X];
    if (id >= P_NAV_Q0_W && id < P_NAV_Q0_W + 4) return &c->q0_mci_body[id - P_NAV_Q0_W];
    if (id == P_MASS0) return &c->mass0_kg;
    if (id >= P_SITE_R_X && id < P_SITE_R_X + 3) return &c->site_r_mci[id - P_SITE_R_X];
    if (id == P_THRUST_MAX) return &c->thrust_max_n;
    if (id == P_ISP) return &c->isp_s;
    if (id == P_THROTTLE_MIN) return &c->throttle_min;
    if (id == P_GM) return &c->gm;
    if (id >= P_LRF_BORE_X && id < P_LRF_BORE_X + 3) return &c->lrf_bore_body[id - P_LRF_BORE_X];
    if (id >= P_LRF_POS_X && id < P_LRF_POS_X + 3) return &c->lrf_pos_body_m[id - P_LRF_POS_X];
    return 0;  /* e.g. the reference code's tuning: refused, not applied */
}

/* Apply one parameter: 0 accepted, 1 unknown id, 2 out of range (1 and 2: nothing applied).
 * *in_force is the value in force afterwards (0 for an unknown id), as CONFIG_ACK reports it. */
static uint16_t apply_param(app_t *a, uint16_t id, double v, double *in_force)
{
    double *slot = param_slot(&a->cfg, id);
    int bad;
    *in_force = 0.0;
    if (!slot) return FSW_ACK_UNKNOWN_ID;
    *in_force = *slot;
    if (id == P_THROTTLE_MIN) bad = !(v >= 0.0 && v <= 1.0);
    else if (id == P_MASS0 || id == P_THRUST_MAX || id == P_ISP || id == P_GM) bad = !(v > 0.0);
    else bad = (v != v);  /* NaN */
    if (bad) return FSW_ACK_OUT_OF_RANGE;
    *slot = v;
    *in_force = v;
    return FSW_ACK_ACCEPTED;
}

static void on_config(app_t *a, const fsw_msg_t *m)
{
    fsw_msg_t ack;
    const fsw_config_t *cf = &m->body.config;
    memset(&ack, 0, sizeof ack);
    ack.hdr.msg_type = FSW_MSG_CONFIG_ACK;
    ack.body.config_ack.param_id = cf->param_id;
    if (cf->param_id != P_COMMIT) {  /* id 0 is reserved for COMMIT; any other id is a parameter */
        ack.body.config_ack.status = apply_param(a, cf->param_id, cf->value, &ack.body.config_ack.value);
        a->committed = 0;  /* a new parameter after COMMIT: wait for the next COMMIT */
    }
    if (cf->param_id == P_COMMIT && (cf->flags & FSW_CONFIG_COMMIT)) {  /* COMMIT: initialise from the parameters */
        if (a->cfg.mass0_kg > 0.0 && a->cfg.thrust_max_n > 0.0 && a->cfg.gm > 0.0) {
            gnc_init(&a->gnc, &a->cfg);
            a->committed = 1;
            a->have_rx_seq = 0;
            a->sensors_gaps = 0;
            ack.body.config_ack.status = FSW_ACK_COMMITTED;
        } else {
            ack.body.config_ack.status = FSW_ACK_COMMIT_REFUSED; /* mass, thrust or GM missing */
            ack.body.config_ack.value = a->cfg.mass0_kg > 0.0 ? (a->cfg.thrust_max_n > 0.0 ? P_GM : P_THRUST_MAX)
                                                                : P_MASS0;
        }
    }
    send_msg(a, &ack, m->hdr.t_us);
}

static void on_sensors(app_t *a, const fsw_msg_t *m)
{
    const fsw_sensors_t *s = &m->body.sensors;
    gnc_sensors_t in;
    gnc_output_t out;
    fsw_msg_t cmd, tlm;
    int i;
    double alt;

    if (!a->committed) return;  /* not initialised: no COMMAND (the harness fails the handshake) */
    memset(&in, 0, sizeof in);
    in.t_us = m->hdr.t_us;
    if (a->have_rx_seq && (uint16_t)(m->hdr.seq - a->last_rx_seq) > 1u) {
        uint16_t lost = (uint16_t)(m->hdr.seq - a->last_rx_seq - 1u);
        a->sensors_gaps = (uint16_t)(a->sensors_gaps + lost < a->sensors_gaps ? 0xFFFFu : a->sensors_gaps + lost);
    }
    /* The IMU's running sums: their difference to the last frame we used holds the increments
     * of any frames lost in between (protocol v2); the first frame carries zeros. */
    for (i = 0; i < 3; i++) {
        if (a->have_rx_seq) {
            in.dv_body[i] = s->imu_dv_accum_body[i] - a->last_dv_accum[i];
            in.dtheta_body[i] = s->imu_dtheta_accum_body[i] - a->last_dtheta_accum[i];
        } else {
            in.dv_body[i] = s->imu_dv_body[i];
            in.dtheta_body[i] = s->imu_dtheta_body[i];
        }
        a->last_dv_accum[i] = s->imu_dv_accum_body[i];
        a->last_dtheta_accum[i] = s->imu_dtheta_accum_body[i];
    }
    /* the interval since the last frame we used: the time stamps tell it even if frames were lost */
    in.dt_s = a->have_rx_seq && m->hdr.t_us > a->last_t_us ? (double)(m->hdr.t_us - a->last_t_us) * 1e-6
                                                          : (double)s->imu_dt_us * 1e-6;
    in.imu_valid = (s->flags & FSW_SENS_IMU_VALID) != 0;
    in.lrf_new = (s->flags & FSW_SENS_LRF_VALID) && (s->flags & FSW_SENS_LRF_NEW);
    in.lrf_range_m = s->lrf_range;
    in.lrf_sample_t_us = s->lrf_sample_t_us;
    a->last_rx_seq = m->hdr.seq;
    a->last_t_us = m->hdr.t_us;
    a->have_rx_seq = 1;

    gnc_step(&a->gnc, &in, &out);

    memset(&cmd, 0, sizeof cmd);
    cmd.hdr.msg_type = FSW_MSG_COMMAND;
    cmd.body.command.throttle = (float)out.throttle;
    for (i = 0; i < 3; i++) cmd.body.command.torque_body[i] = (float)out.torque_body[i];
    cmd.body.command.sensors_seq = m->hdr.seq;
    cmd.body.command.mode = out.mode;
    cmd.body.command.flags = FSW_CMD_ENGINE_ON;
    send_msg(a, &cmd, m->hdr.t_us);

    memset(&tlm, 0, sizeof tlm);
    tlm.hdr.msg_type = FSW_MSG_TELEMETRY;
    alt = gnc_altitude(&a->gnc);
    for (i = 0; i < 3; i++) {
        tlm.body.telemetry.est_r_mci[i] = a->gnc.r[i];
        tlm.body.telemetry.est_v_mci[i] = (float)a->gnc.v[i];
    }
    for (i = 0; i < 4; i++) tlm.body.telemetry.est_q_mci_body[i] = (float)a->gnc.q[i];
    tlm.body.telemetry.est_alt = (float)alt;
    tlm.body.telemetry.lrf_innovation = (float)a->gnc.last_innovation_m;
    tlm.body.telemetry.phase = out.mode;
    tlm.body.telemetry.lrf_status = a->gnc.lrf_status;
    tlm.body.telemetry.lrf_rejects = a->gnc.lrf_rejects;
    tlm.body.telemetry.rx_crc_errors = (uint16_t)(a->parser.crc_errors > 0xFFFFu ? 0xFFFFu : a->parser.crc_errors);
    tlm.body.telemetry.rx_framing_errors =
        (uint16_t)(a->parser.framing_errors > 0xFFFFu ? 0xFFFFu : a->parser.framing_errors);
    tlm.body.telemetry.rx_length_errors =
        (uint16_t)(a->parser.length_errors > 0xFFFFu ? 0xFFFFu : a->parser.length_errors);
    tlm.body.telemetry.rx_unknown_msgs =
        (uint16_t)(a->parser.unknown_msgs > 0xFFFFu ? 0xFFFFu : a->parser.unknown_msgs);
    tlm.body.telemetry.rx_frames_ok = (uint16_t)(a->parser.frames_ok > 0xFFFFu ? 0xFFFFu : a->parser.frames_ok);
    tlm.body.telemetry.sensors_gaps = a->sensors_gaps;
    tlm.body.telemetry.sensors_rejected = 0u;  /* this example runs no plausibility checks */
    tlm.body.telemetry.fault_flags = 0u;
    send_msg(a, &tlm, m->hdr.t_us);
}

static void on_msg(void *user, const fsw_msg_t *m)
{
    app_t *a = (app_t *)user;
    switch (m->hdr.msg_type) {
    case FSW_MSG_HELLO: send_hello(a); break;
    case FSW_MSG_CONFIG: on_config(a, m); break;
    case FSW_MSG_SENSORS: on_sensors(a, m); break;
    default: break;  /* nothing else is addressed to the flight code */
    }
}

static app_t g_app;  /* static storage (no heap); only main() touches it */

int main(int argc, char **argv)
{
    app_t *a = &g_app;
    uint8_t buf[512];
    struct sigaction sa;
    const uint8_t flush = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    memset(a, 0, sizeof *a);
    fsw_parser_init(&a->parser);
    a->fd = serial_port_open(argv[1]);
    if (a->fd < 0) {
        fprintf(stderr, "simple_lander: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    fprintf(stderr, "simple_lander: on %s\n", argv[1]);
    if (write(a->fd, &flush, 1) < 0) { /* a delimiter first: ends any partial frame at the other end */
        fprintf(stderr, "simple_lander: write %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    send_hello(a);
    while (!g_stop && !a->io_error) {
        ssize_t n = read(a->fd, buf, sizeof buf);
        if (n > 0) {
            fsw_parser_feed(&a->parser, buf, (size_t)n, on_msg, a);
        } else if (n == 0 || errno == EIO) {
            fprintf(stderr, "simple_lander: %s closed by the other end\n", argv[1]);
            return 0;
        } else if (errno != EINTR && errno != EAGAIN) {
            fprintf(stderr, "simple_lander: read %s: %s\n", argv[1], strerror(errno));
            return 1;
        }
    }
    if (a->io_error) {
        fprintf(stderr, "simple_lander: write %s: %s\n", argv[1], strerror(a->io_error));
        return a->io_error == EIO ? 0 : 1;
    }
    fprintf(stderr, "simple_lander: stopped by signal\n");
    return 0;
}
