/*
 * fsw_protocol.c - link protocol v2: COBS, CRC-16/CCITT-FALSE, pack/unpack,
 * streaming parser. See docs/protocol.md.
 */
#include "fsw_protocol.h"

#include <string.h>

/* ------------------------------------------------------------------ CRC */

/* CRC-16/CCITT-FALSE (poly 0x1021, MSB first), one table lookup per byte. The 512-byte table
 * is read-only data (flash on the MCU); entry i is the CRC register after shifting byte i
 * through the polynomial eight times. The bitwise loop it replaces cost about 60 % of a
 * whole GNC cycle, framing included. */
static const uint16_t crc16_table[256] = {
    0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50A5u, 0x60C6u, 0x70E7u,
    0x8108u, 0x9129u, 0xA14Au, 0xB16Bu, 0xC18Cu, 0xD1ADu, 0xE1CEu, 0xF1EFu,
    0x1231u, 0x0210u, 0x3273u, 0x2252u, 0x52B5u, 0x4294u, 0x72F7u, 0x62D6u,
    0x9339u, 0x8318u, 0xB37Bu, 0xA35Au, 0xD3BDu, 0xC39Cu, 0xF3FFu, 0xE3DEu,
    0x2462u, 0x3443u, 0x0420u, 0x1401u, 0x64E6u, 0x74C7u, 0x44A4u, 0x5485u,
    0xA56Au, 0xB54Bu, 0x8528u, 0x9509u, 0xE5EEu, 0xF5CFu, 0xC5ACu, 0xD58Du,
    0x3653u, 0x2672u, 0x1611u, 0x0630u, 0x76D7u, 0x66F6u, 0x5695u, 0x46B4u,
    0xB75Bu, 0xA77Au, 0x9719u, 0x8738u, 0xF7DFu, 0xE7FEu, 0xD79Du, 0xC7BCu,
    0x48C4u, 0x58E5u, 0x6886u, 0x78A7u, 0x0840u, 0x1861u, 0x2802u, 0x3823u,
    0xC9CCu, 0xD9EDu, 0xE98Eu, 0xF9AFu, 0x8948u, 0x9969u, 0xA90Au, 0xB92Bu,
    0x5AF5u, 0x4AD4u, 0x7AB7u, 0x6A96u, 0x1A71u, 0x0A50u, 0x3A33u, 0x2A12u,
    0xDBFDu, 0xCBDCu, 0xFBBFu, 0xEB9Eu, 0x9B79u, 0x8B58u, 0xBB3Bu, 0xAB1Au,
    0x6CA6u, 0x7C87u, 0x4CE4u, 0x5CC5u, 0x2C22u, 0x3C03u, 0x0C60u, 0x1C41u,
    0xEDAEu, 0xFD8Fu, 0xCDECu, 0xDDCDu, 0xAD2Au, 0xBD0Bu, 0x8D68u, 0x9D49u,
    0x7E97u, 0x6EB6u, 0x5ED5u, 0x4EF4u, 0x3E13u, 0x2E32u, 0x1E51u, 0x0E70u,
    0xFF9Fu, 0xEFBEu, 0xDFDDu, 0xCFFCu, 0xBF1Bu, 0xAF3Au, 0x9F59u, 0x8F78u,
    0x9188u, 0x81A9u, 0xB1CAu, 0xA1EBu, 0xD10Cu, 0xC12Du, 0xF14Eu, 0xE16Fu,
    0x1080u, 0x00A1u, 0x30C2u, 0x20E3u, 0x5004u, 0x4025u, 0x7046u, 0x6067u,
    0x83B9u, 0x9398u, 0xA3FBu, 0xB3DAu, 0xC33Du, 0xD31Cu, 0xE37Fu, 0xF35Eu,
    0x02B1u, 0x1290u, 0x22F3u, 0x32D2u, 0x4235u, 0x5214u, 0x6277u, 0x7256u,
    0xB5EAu, 0xA5CBu, 0x95A8u, 0x8589u, 0xF56Eu, 0xE54Fu, 0xD52Cu, 0xC50Du,
    0x34E2u, 0x24C3u, 0x14A0u, 0x0481u, 0x7466u, 0x6447u, 0x5424u, 0x4405u,
    0xA7DBu, 0xB7FAu, 0x8799u, 0x97B8u, 0xE75Fu, 0xF77Eu, 0xC71Du, 0xD73Cu,
    0x26D3u, 0x36F2u, 0x0691u, 0x16B0u, 0x6657u, 0x7676u, 0x4615u, 0x5634u,
    0xD94Cu, 0xC96Du, 0xF90Eu, 0xE92Fu, 0x99C8u, 0x89E9u, 0xB98Au, 0xA9ABu,
    0x5844u, 0x4865u, 0x7806u, 0x6827u, 0x18C0u, 0x08E1u, 0x3882u, 0x28A3u,
    0xCB7Du, 0xDB5Cu, 0xEB3Fu, 0xFB1Eu, 0x8BF9u, 0x9BD8u, 0xABBBu, 0xBB9Au,
    0x4A75u, 0x5A54u, 0x6A37u, 0x7A16u, 0x0AF1u, 0x1AD0u, 0x2AB3u, 0x3A92u,
    0xFD2Eu, 0xED0Fu, 0xDD6Cu, 0xCD4Du, 0xBDAAu, 0xAD8Bu, 0x9DE8u, 0x8DC9u,
    0x7C26u, 0x6C07u, 0x5C64u, 0x4C45u, 0x3CA2u, 0x2C83u, 0x1CE0u, 0x0CC1u,
    0xEF1Fu, 0xFF3Eu, 0xCF5Du, 0xDF7Cu, 0xAF9Bu, 0xBFBAu, 0x8FD9u, 0x9FF8u,
    0x6E17u, 0x7E36u, 0x4E55u, 0x5E74u, 0x2E93u, 0x3EB2u, 0x0ED1u, 0x1EF0u
};

uint16_t fsw_crc16_update(uint16_t crc, const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        crc = (uint16_t)((uint16_t)(crc << 8) ^ crc16_table[(uint8_t)((crc >> 8) ^ data[i])]);
    }
    return crc;
}

uint16_t fsw_crc16(const uint8_t *data, size_t n)
{
    return fsw_crc16_update(0xFFFFu, data, n);
}

/* ----------------------------------------------------------------- COBS */

size_t fsw_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t code_idx = 0;   /* where the current group's code byte goes */
    size_t o = 1;          /* next output position */
    uint8_t code = 1;
    size_t i;

    if (cap < 1u) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (in[i] == 0u) {
            out[code_idx] = code;
            code_idx = o;
            if (o >= cap) {
                return 0;
            }
            o++;
            code = 1;
        } else {
            if (o >= cap) {
                return 0;
            }
            out[o++] = in[i];
            code++;
            if (code == 0xFFu) {
                out[code_idx] = code;
                code_idx = o;
                /* A full group at the very end needs no extra code byte. */
                if (i + 1u == n) {
                    return o;
                }
                if (o >= cap) {
                    return 0;
                }
                o++;
                code = 1;
            }
        }
    }
    out[code_idx] = code;
    return o;
}

int fsw_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t i = 0;
    size_t o = 0;

    while (i < n) {
        uint8_t code = in[i];
        size_t k;
        if (code == 0u) {
            return -1;
        }
        i++;
        if (i + (size_t)(code - 1u) > n) {
            return -1;  /* group runs past the end */
        }
        for (k = 1; k < code; k++) {
            uint8_t c = in[i++];
            if (c == 0u || o >= cap) {
                return -1;
            }
            out[o++] = c;
        }
        if (i < n && code != 0xFFu) {
            if (o >= cap) {
                return -1;
            }
            out[o++] = 0u;
        }
    }
    *out_len = o;
    return 0;
}

/* --------------------------------------------------- little-endian bytes */

void fsw_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void fsw_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

void fsw_put_u64(uint8_t *p, uint64_t v)
{
    fsw_put_u32(p, (uint32_t)(v & 0xFFFFFFFFu));
    fsw_put_u32(p + 4, (uint32_t)(v >> 32));
}

void fsw_put_f32(uint8_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);   /* IEEE 754 binary32 bit pattern */
    fsw_put_u32(p, u);
}

void fsw_put_f64(uint8_t *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);   /* IEEE 754 binary64 bit pattern */
    fsw_put_u64(p, u);
}

uint16_t fsw_get_u16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

uint32_t fsw_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint64_t fsw_get_u64(const uint8_t *p)
{
    return (uint64_t)fsw_get_u32(p) | ((uint64_t)fsw_get_u32(p + 4) << 32);
}

float fsw_get_f32(const uint8_t *p)
{
    uint32_t u = fsw_get_u32(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

double fsw_get_f64(const uint8_t *p)
{
    uint64_t u = fsw_get_u64(p);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* ------------------------------------------------------------- messages */

int fsw_body_len(uint8_t msg_type)
{
    switch (msg_type) {
    case FSW_MSG_HELLO:      return (int)FSW_LEN_HELLO;
    case FSW_MSG_CONFIG:     return (int)FSW_LEN_CONFIG;
    case FSW_MSG_CONFIG_ACK: return (int)FSW_LEN_CONFIG_ACK;
    case FSW_MSG_SENSORS:    return (int)FSW_LEN_SENSORS;
    case FSW_MSG_COMMAND:    return (int)FSW_LEN_COMMAND;
    case FSW_MSG_TELEMETRY:  return (int)FSW_LEN_TELEMETRY;
    default:                 return -1;
    }
}

static void pack_f32v(uint8_t *p, const float *v, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        fsw_put_f32(p + 4u * i, v[i]);
    }
}

static void unpack_f32v(const uint8_t *p, float *v, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        v[i] = fsw_get_f32(p + 4u * i);
    }
}

static void pack_body(const fsw_msg_t *m, uint8_t *b)
{
    unsigned i;
    switch (m->hdr.msg_type) {
    case FSW_MSG_HELLO: {
        const fsw_hello_t *h = &m->body.hello;
        fsw_put_u16(b + 0, h->protocol_version);
        fsw_put_u16(b + 2, h->reserved);
        fsw_put_u32(b + 4, h->firmware_id);
        for (i = 0; i < 16u; i++) {
            b[8u + i] = (uint8_t)h->firmware_name[i];
        }
        break;
    }
    case FSW_MSG_CONFIG:
        fsw_put_u16(b + 0, m->body.config.param_id);
        fsw_put_u16(b + 2, m->body.config.flags);
        fsw_put_f64(b + 4, m->body.config.value);
        break;
    case FSW_MSG_CONFIG_ACK:
        fsw_put_u16(b + 0, m->body.config_ack.param_id);
        fsw_put_u16(b + 2, m->body.config_ack.status);
        fsw_put_f64(b + 4, m->body.config_ack.value);
        break;
    case FSW_MSG_SENSORS: {
        const fsw_sensors_t *s = &m->body.sensors;
        pack_f32v(b + 0, s->imu_dv_body, 3);
        pack_f32v(b + 12, s->imu_dtheta_body, 3);
        fsw_put_u32(b + 24, s->imu_dt_us);
        fsw_put_f32(b + 28, s->lrf_range);
        fsw_put_u64(b + 32, s->lrf_sample_t_us);
        b[40] = s->flags;
        b[41] = s->reserved[0];
        b[42] = s->reserved[1];
        b[43] = s->reserved[2];
        for (i = 0; i < 3u; i++) {
            fsw_put_f64(b + 44u + 8u * i, s->imu_dv_accum_body[i]);
            fsw_put_f64(b + 68u + 8u * i, s->imu_dtheta_accum_body[i]);
        }
        break;
    }
    case FSW_MSG_COMMAND: {
        const fsw_command_t *c = &m->body.command;
        fsw_put_f32(b + 0, c->throttle);
        pack_f32v(b + 4, c->torque_body, 3);
        fsw_put_u16(b + 16, c->sensors_seq);
        b[18] = c->mode;
        b[19] = c->flags;
        fsw_put_u32(b + 20, c->reserved);
        break;
    }
    case FSW_MSG_TELEMETRY: {
        const fsw_telemetry_t *t = &m->body.telemetry;
        for (i = 0; i < 3u; i++) {
            fsw_put_f64(b + 8u * i, t->est_r_mci[i]);
        }
        pack_f32v(b + 24, t->est_v_mci, 3);
        pack_f32v(b + 36, t->est_q_mci_body, 4);
        fsw_put_f32(b + 52, t->est_alt);
        fsw_put_f32(b + 56, t->lrf_innovation);
        b[60] = t->phase;
        b[61] = t->lrf_status;
        fsw_put_u16(b + 62, t->lrf_rejects);
        fsw_put_u16(b + 64, t->rx_crc_errors);
        fsw_put_u16(b + 66, t->rx_framing_errors);
        fsw_put_u16(b + 68, t->rx_length_errors);
        fsw_put_u16(b + 70, t->rx_unknown_msgs);
        fsw_put_u16(b + 72, t->rx_frames_ok);
        fsw_put_u16(b + 74, t->cycle_overruns);
        fsw_put_u16(b + 76, t->sensors_gaps);
        fsw_put_u16(b + 78, t->sensors_rejected);
        fsw_put_u32(b + 80, t->fault_flags);
        break;
    }
    default:
        break;
    }
}

static void unpack_body(const uint8_t *b, fsw_msg_t *m)
{
    unsigned i;
    switch (m->hdr.msg_type) {
    case FSW_MSG_HELLO: {
        fsw_hello_t *h = &m->body.hello;
        h->protocol_version = fsw_get_u16(b + 0);
        h->reserved = fsw_get_u16(b + 2);
        h->firmware_id = fsw_get_u32(b + 4);
        for (i = 0; i < 16u; i++) {
            h->firmware_name[i] = (char)b[8u + i];
        }
        break;
    }
    case FSW_MSG_CONFIG:
        m->body.config.param_id = fsw_get_u16(b + 0);
        m->body.config.flags = fsw_get_u16(b + 2);
        m->body.config.value = fsw_get_f64(b + 4);
        break;
    case FSW_MSG_CONFIG_ACK:
        m->body.config_ack.param_id = fsw_get_u16(b + 0);
        m->body.config_ack.status = fsw_get_u16(b + 2);
        m->body.config_ack.value = fsw_get_f64(b + 4);
        break;
    case FSW_MSG_SENSORS: {
        fsw_sensors_t *s = &m->body.sensors;
        unpack_f32v(b + 0, s->imu_dv_body, 3);
        unpack_f32v(b + 12, s->imu_dtheta_body, 3);
        s->imu_dt_us = fsw_get_u32(b + 24);
        s->lrf_range = fsw_get_f32(b + 28);
        s->lrf_sample_t_us = fsw_get_u64(b + 32);
        s->flags = b[40];
        s->reserved[0] = b[41];
        s->reserved[1] = b[42];
        s->reserved[2] = b[43];
        for (i = 0; i < 3u; i++) {
            s->imu_dv_accum_body[i] = fsw_get_f64(b + 44u + 8u * i);
            s->imu_dtheta_accum_body[i] = fsw_get_f64(b + 68u + 8u * i);
        }
        break;
    }
    case FSW_MSG_COMMAND: {
        fsw_command_t *c = &m->body.command;
        c->throttle = fsw_get_f32(b + 0);
        unpack_f32v(b + 4, c->torque_body, 3);
        c->sensors_seq = fsw_get_u16(b + 16);
        c->mode = b[18];
        c->flags = b[19];
        c->reserved = fsw_get_u32(b + 20);
        break;
    }
    case FSW_MSG_TELEMETRY: {
        fsw_telemetry_t *t = &m->body.telemetry;
        for (i = 0; i < 3u; i++) {
            t->est_r_mci[i] = fsw_get_f64(b + 8u * i);
        }
        unpack_f32v(b + 24, t->est_v_mci, 3);
        unpack_f32v(b + 36, t->est_q_mci_body, 4);
        t->est_alt = fsw_get_f32(b + 52);
        t->lrf_innovation = fsw_get_f32(b + 56);
        t->phase = b[60];
        t->lrf_status = b[61];
        t->lrf_rejects = fsw_get_u16(b + 62);
        t->rx_crc_errors = fsw_get_u16(b + 64);
        t->rx_framing_errors = fsw_get_u16(b + 66);
        t->rx_length_errors = fsw_get_u16(b + 68);
        t->rx_unknown_msgs = fsw_get_u16(b + 70);
        t->rx_frames_ok = fsw_get_u16(b + 72);
        t->cycle_overruns = fsw_get_u16(b + 74);
        t->sensors_gaps = fsw_get_u16(b + 76);
        t->sensors_rejected = fsw_get_u16(b + 78);
        t->fault_flags = fsw_get_u32(b + 80);
        break;
    }
    default:
        break;
    }
}

size_t fsw_msg_pack(const fsw_msg_t *msg, uint8_t *packet, size_t cap)
{
    int blen = fsw_body_len(msg->hdr.msg_type);
    size_t total;
    uint16_t crc;

    if (blen < 0) {
        return 0;
    }
    total = FSW_HDR_LEN + (size_t)blen + FSW_CRC_LEN;
    if (cap < total) {
        return 0;
    }
    packet[0] = msg->hdr.version;
    packet[1] = msg->hdr.msg_type;
    fsw_put_u16(packet + 2, msg->hdr.seq);
    fsw_put_u64(packet + 4, msg->hdr.t_us);
    pack_body(msg, packet + FSW_HDR_LEN);
    crc = fsw_crc16(packet, FSW_HDR_LEN + (size_t)blen);
    fsw_put_u16(packet + FSW_HDR_LEN + (size_t)blen, crc);
    return total;
}

size_t fsw_msg_encode_frame(const fsw_msg_t *msg, uint8_t *frame, size_t cap)
{
    uint8_t packet[FSW_MAX_PACKET];
    size_t plen = fsw_msg_pack(msg, packet, sizeof packet);
    size_t elen;

    if (plen == 0u || cap < 2u) {
        return 0;
    }
    elen = fsw_cobs_encode(packet, plen, frame, cap - 1u);
    if (elen == 0u) {
        return 0;
    }
    frame[elen] = 0u;
    return elen + 1u;
}

fsw_rx_result_t fsw_msg_unpack(const uint8_t *packet, size_t n, fsw_msg_t *msg)
{
    uint16_t crc_rx;
    int blen;

    if (n < FSW_HDR_LEN + FSW_CRC_LEN) {
        return FSW_RX_FRAMING;  /* truncated */
    }
    crc_rx = fsw_get_u16(packet + n - FSW_CRC_LEN);
    if (fsw_crc16(packet, n - FSW_CRC_LEN) != crc_rx) {
        return FSW_RX_CRC;
    }
    msg->hdr.version = packet[0];
    msg->hdr.msg_type = packet[1];
    msg->hdr.seq = fsw_get_u16(packet + 2);
    msg->hdr.t_us = fsw_get_u64(packet + 4);
    if (msg->hdr.version != FSW_PROTO_VERSION) {
        return FSW_RX_LENGTH;
    }
    blen = fsw_body_len(msg->hdr.msg_type);
    if (blen < 0) {
        return FSW_RX_UNKNOWN;
    }
    if (n != FSW_HDR_LEN + (size_t)blen + FSW_CRC_LEN) {
        return FSW_RX_LENGTH;
    }
    unpack_body(packet + FSW_HDR_LEN, msg);
    return FSW_RX_OK;
}

/* --------------------------------------------------------------- parser */

void fsw_parser_init(fsw_parser_t *p)
{
    memset(p, 0, sizeof *p);
}

static fsw_rx_result_t parser_end_frame(fsw_parser_t *p, fsw_msg_t *msg)
{
    size_t plen = 0;
    fsw_rx_result_t r;

    if (p->discarding) {
        return FSW_RX_FRAMING;  /* already counted when the run went oversize */
    }
    if (p->len == 0u) {
        return FSW_RX_EMPTY;
    }
    /* COBS decodes in place: the output never outruns the input. */
    if (fsw_cobs_decode(p->buf, p->len, p->buf, sizeof p->buf, &plen) != 0) {
        r = FSW_RX_FRAMING;
    } else {
        r = fsw_msg_unpack(p->buf, plen, msg);
    }
    switch (r) {
    case FSW_RX_OK:      p->frames_ok++; break;
    case FSW_RX_FRAMING: p->framing_errors++; break;
    case FSW_RX_CRC:     p->crc_errors++; break;
    case FSW_RX_LENGTH:  p->length_errors++; break;
    case FSW_RX_UNKNOWN: p->unknown_msgs++; break;
    case FSW_RX_EMPTY:   break;
    default:             break;
    }
    return r;
}

int fsw_parser_push(fsw_parser_t *p, uint8_t byte, fsw_msg_t *msg)
{
    if (byte == 0u) {
        fsw_rx_result_t r = parser_end_frame(p, msg);
        p->last_result = (uint8_t)r;
        p->len = 0;
        p->discarding = 0;
        return r == FSW_RX_OK ? 1 : 0;
    }
    if (p->discarding) {
        return 0;
    }
    if (p->len >= FSW_MAX_ENCODED) {
        /* More than 253 bytes before a delimiter: oversize, drop up to the next 0x00. */
        p->framing_errors++;
        p->discarding = 1;
        p->len = 0;
        return 0;
    }
    p->buf[p->len++] = byte;
    return 0;
}

size_t fsw_parser_feed(fsw_parser_t *p, const uint8_t *data, size_t n, fsw_msg_cb_t cb, void *user)
{
    size_t i;
    size_t good = 0;
    fsw_msg_t msg;

    for (i = 0; i < n; i++) {
        if (fsw_parser_push(p, data[i], &msg)) {
            good++;
            if (cb != NULL) {
                cb(user, &msg);
            }
        }
    }
    return good;
}
