/*
 * fsw_protocol.h - link protocol v2 (docs/protocol.md) for the flight code.
 *
 * COBS framing, CRC-16/CCITT-FALSE, explicit little-endian pack/unpack of
 * the header and every message body (byte by byte, never a struct cast),
 * and a streaming frame parser with a fixed 256-byte buffer.
 *
 * Portable C99, no heap, no mutable static state. A drop-in codec: this .h/.c
 * pair depends on nothing but <stddef.h>, <stdint.h> and <string.h> (no GNC,
 * no HAL), so a team can compile it into its own firmware unchanged. It is
 * tested against the shared vectors tests/vectors/protocol_v2.json.
 */
#ifndef FSW_PROTOCOL_H
#define FSW_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define FSW_PROTO_VERSION   2u
#define FSW_HDR_LEN         12u   /* header bytes */
#define FSW_CRC_LEN         2u    /* CRC bytes, little-endian */
#define FSW_MAX_PACKET      250u  /* header + body + CRC */
#define FSW_MAX_ENCODED     253u  /* longest run of non-zero bytes accepted before a 0x00 */
#define FSW_RX_BUF_LEN      256u  /* receiver buffer */
#define FSW_MAX_FRAME       (FSW_MAX_PACKET + 3u) /* COBS(packet) + 0x00, worst case for 250 bytes: 252 */

/* Message types */
#define FSW_MSG_HELLO       0x01u
#define FSW_MSG_CONFIG      0x02u
#define FSW_MSG_CONFIG_ACK  0x03u
#define FSW_MSG_SENSORS     0x10u
#define FSW_MSG_COMMAND     0x11u
#define FSW_MSG_TELEMETRY   0x12u

/* Body lengths */
#define FSW_LEN_HELLO       24u
#define FSW_LEN_CONFIG      12u
#define FSW_LEN_CONFIG_ACK  12u
#define FSW_LEN_SENSORS     92u
#define FSW_LEN_COMMAND     24u
#define FSW_LEN_TELEMETRY   84u

/* CONFIG flags, CONFIG_ACK status. COMMIT is its own CONFIG: param_id 0, flags COMMIT, value 0. */
#define FSW_CONFIG_COMMIT       0x0001u
#define FSW_COMMIT_PARAM_ID     0u    /* param_id reserved for COMMIT */
#define FSW_ACK_ACCEPTED        0u
#define FSW_ACK_UNKNOWN_ID      1u    /* not applied */
#define FSW_ACK_OUT_OF_RANGE    2u    /* not applied; value = value in force */
#define FSW_ACK_COMMITTED       3u    /* answer to COMMIT: initialised, ready for SENSORS */
#define FSW_ACK_COMMIT_REFUSED  4u    /* answer to COMMIT: value = id of the first offending parameter, or 0 */

/* SENSORS flags */
#define FSW_SENS_LRF_VALID  0x01u
#define FSW_SENS_IMU_VALID  0x02u
#define FSW_SENS_LRF_NEW    0x04u

/* COMMAND flags and modes (= TELEMETRY phase). Bits 1-4 are status, ignored by the plant. */
#define FSW_CMD_ENGINE_ON        0x01u
#define FSW_CMD_SAFE_MODE        0x08u   /* the flight code is in its own safe mode (mode SAFE) */
#define FSW_CMD_SENSORS_REJECTED 0x10u   /* this frame's SENSORS failed plausibility: previous state held */
#define FSW_MODE_IDLE        0u
#define FSW_MODE_BRAKING     1u
#define FSW_MODE_APPROACH    2u
#define FSW_MODE_TERMINAL    3u
#define FSW_MODE_TOUCHDOWN   4u
#define FSW_MODE_CONTINGENCY 5u
#define FSW_MODE_SAFE        6u

/* TELEMETRY lrf_status */
#define FSW_LRF_NO_SAMPLE    0u
#define FSW_LRF_ACCEPTED     1u
#define FSW_LRF_REJECTED     2u
#define FSW_LRF_INVALID      3u
#define FSW_LRF_LATCHED_OUT  4u
#define FSW_LRF_PENDING      5u   /* sample received, not yet judged: neither accepted nor rejected */

typedef struct fsw_header {
    uint8_t  version;
    uint8_t  msg_type;
    uint16_t seq;
    uint64_t t_us;
} fsw_header_t;

typedef struct fsw_hello {
    uint16_t protocol_version;
    uint16_t reserved;
    uint32_t firmware_id;
    char     firmware_name[16];
} fsw_hello_t;

typedef struct fsw_config {
    uint16_t param_id;
    uint16_t flags;
    double   value;
} fsw_config_t;

typedef struct fsw_config_ack {
    uint16_t param_id;
    uint16_t status;
    double   value;
} fsw_config_ack_t;

typedef struct fsw_sensors {
    float    imu_dv_body[3];
    float    imu_dtheta_body[3];
    uint32_t imu_dt_us;
    float    lrf_range;
    uint64_t lrf_sample_t_us;
    uint8_t  flags;
    uint8_t  reserved[3];
    double   imu_dv_accum_body[3];     /* m/s, running sum of every imu_dv_body since the IMU started */
    double   imu_dtheta_accum_body[3]; /* rad, running sum of every imu_dtheta_body since the IMU started */
} fsw_sensors_t;

typedef struct fsw_command {
    float    throttle;
    float    torque_body[3];
    uint16_t sensors_seq;
    uint8_t  mode;
    uint8_t  flags;
    uint32_t reserved;
} fsw_command_t;

typedef struct fsw_telemetry {
    double   est_r_mci[3];
    float    est_v_mci[3];
    float    est_q_mci_body[4];
    float    est_alt;
    float    lrf_innovation;
    uint8_t  phase;
    uint8_t  lrf_status;
    uint16_t lrf_rejects;
    uint16_t rx_crc_errors;
    uint16_t rx_framing_errors;
    uint16_t rx_length_errors;
    uint16_t rx_unknown_msgs;
    uint16_t rx_frames_ok;
    uint16_t cycle_overruns;
    uint16_t sensors_gaps;      /* SENSORS frames missing by sequence number (saturating) */
    uint16_t sensors_rejected;  /* SENSORS frames refused by plausibility checks (saturating) */
    uint32_t fault_flags;       /* flight-code defined bit mask, 0 = healthy */
} fsw_telemetry_t;

/* A decoded (or to-be-encoded) message: header + the body selected by hdr.msg_type. */
typedef struct fsw_msg {
    fsw_header_t hdr;
    union {
        fsw_hello_t      hello;
        fsw_config_t     config;
        fsw_config_ack_t config_ack;
        fsw_sensors_t    sensors;
        fsw_command_t    command;
        fsw_telemetry_t  telemetry;
    } body;
} fsw_msg_t;

/* Result of checking one decoded frame (also the parser's last_result). */
typedef enum fsw_rx_result {
    FSW_RX_OK = 0,
    FSW_RX_EMPTY = 1,      /* 0x00 0x00: ignored, not counted */
    FSW_RX_FRAMING = 2,    /* COBS error, truncated, oversize */
    FSW_RX_CRC = 3,
    FSW_RX_LENGTH = 4,     /* known type with wrong body length, or version != FSW_PROTO_VERSION */
    FSW_RX_UNKNOWN = 5
} fsw_rx_result_t;

/* Streaming parser. Counters are u32 here; TELEMETRY saturates them to u16. */
typedef struct fsw_parser {
    uint8_t  buf[FSW_RX_BUF_LEN];
    uint16_t len;          /* bytes of the current (COBS-encoded) frame */
    uint8_t  discarding;   /* 1: oversize, dropping bytes up to the next 0x00 */
    uint8_t  last_result;  /* fsw_rx_result_t of the last delimiter seen */
    uint32_t crc_errors;
    uint32_t framing_errors;
    uint32_t length_errors;
    uint32_t unknown_msgs;
    uint32_t frames_ok;
} fsw_parser_t;

/* Called for every accepted message. */
typedef void (*fsw_msg_cb_t)(void *user, const fsw_msg_t *msg);

/* ---- CRC ---- */
uint16_t fsw_crc16_update(uint16_t crc, const uint8_t *data, size_t n);
uint16_t fsw_crc16(const uint8_t *data, size_t n);   /* init 0xFFFF */

/* ---- COBS ----
 * Encode n bytes into out (no trailing 0x00). Returns the encoded length, or
 * 0 if cap is too small (an encoding is never empty: COBS("") = 01).
 */
size_t fsw_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);
/* Decode; in and out may be the same buffer. Returns 0 and *out_len on success, -1 on a COBS error. */
int fsw_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* ---- little-endian primitives ---- */
void     fsw_put_u16(uint8_t *p, uint16_t v);
void     fsw_put_u32(uint8_t *p, uint32_t v);
void     fsw_put_u64(uint8_t *p, uint64_t v);
void     fsw_put_f32(uint8_t *p, float v);
void     fsw_put_f64(uint8_t *p, double v);
uint16_t fsw_get_u16(const uint8_t *p);
uint32_t fsw_get_u32(const uint8_t *p);
uint64_t fsw_get_u64(const uint8_t *p);
float    fsw_get_f32(const uint8_t *p);
double   fsw_get_f64(const uint8_t *p);

/* ---- messages ---- */
/* Body length of a known type, or -1 for an unknown type. */
int fsw_body_len(uint8_t msg_type);
/* Pack header + body + CRC into packet. Returns the packet length, 0 on unknown type or small cap. */
size_t fsw_msg_pack(const fsw_msg_t *msg, uint8_t *packet, size_t cap);
/* Pack and COBS-encode, with the trailing 0x00. Returns the frame length or 0. */
size_t fsw_msg_encode_frame(const fsw_msg_t *msg, uint8_t *frame, size_t cap);
/* Check and unpack a decoded packet (header + body + CRC). */
fsw_rx_result_t fsw_msg_unpack(const uint8_t *packet, size_t n, fsw_msg_t *msg);

/* ---- streaming parser ---- */
void fsw_parser_init(fsw_parser_t *p);
/* Feed one byte; returns 1 and fills *msg when the byte completes a good frame. */
int fsw_parser_push(fsw_parser_t *p, uint8_t byte, fsw_msg_t *msg);
/* Feed a chunk; cb (may be NULL) is called for each good frame. Returns the number of good frames. */
size_t fsw_parser_feed(fsw_parser_t *p, const uint8_t *data, size_t n, fsw_msg_cb_t cb, void *user);

#endif /* FSW_PROTOCOL_H */
