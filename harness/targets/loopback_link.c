/*
 * loopback_link.c - the harness end of one lockstep cycle on the loopback rig (see loopback_link.h).
 */

/* The project's codec (firmware_stub/fsw_protocol.c, found through -I), compiled into this
 * translation unit under fsil_ names: the flight code under test links its own fsw_* codec into
 * the same module, and the harness must never decode with it. A public name added to
 * fsw_protocol.h and missing here collides at link time ("multiple definition"), never silently;
 * tests/test_loopback_link.py checks this object exports fsil_ names only. */
#define fsw_crc16_update     fsil_codec_crc16_update
#define fsw_crc16            fsil_codec_crc16
#define fsw_cobs_encode      fsil_codec_cobs_encode
#define fsw_cobs_decode      fsil_codec_cobs_decode
#define fsw_put_u16          fsil_codec_put_u16
#define fsw_put_u32          fsil_codec_put_u32
#define fsw_put_u64          fsil_codec_put_u64
#define fsw_put_f32          fsil_codec_put_f32
#define fsw_put_f64          fsil_codec_put_f64
#define fsw_get_u16          fsil_codec_get_u16
#define fsw_get_u32          fsil_codec_get_u32
#define fsw_get_u64          fsil_codec_get_u64
#define fsw_get_f32          fsil_codec_get_f32
#define fsw_get_f64          fsil_codec_get_f64
#define fsw_body_len         fsil_codec_body_len
#define fsw_msg_pack         fsil_codec_msg_pack
#define fsw_msg_encode_frame fsil_codec_msg_encode_frame
#define fsw_msg_unpack       fsil_codec_msg_unpack
#define fsw_parser_init      fsil_codec_parser_init
#define fsw_parser_push      fsil_codec_parser_push
#define fsw_parser_feed      fsil_codec_parser_feed
#include "fsw_protocol.c"

#include "loopback_link.h"

#include <math.h>
#include <string.h>

/* The loopback HAL of the flight code under test (its hal_loopback.h; not included here, so
 * that its fsw_protocol.h, which may be a team's own, never meets the project's codec above). */
struct fsw_loopback;
void   fsw_loopback_feed(struct fsw_loopback *lb, const uint8_t *data, size_t n);
size_t fsw_loopback_drain(struct fsw_loopback *lb, uint8_t *out, size_t cap);

#define COMMAND_PACKET_LEN (FSW_HDR_LEN + FSW_LEN_COMMAND + FSW_CRC_LEN)

#if FSW_HDR_LEN + FSW_LEN_TELEMETRY + FSW_CRC_LEN != FSIL_LINK_TLM_PACKET
#error "FSIL_LINK_TLM_PACKET is not the codec's TELEMETRY packet length"
#endif
#if 16 + COMMAND_PACKET_LEN != FSIL_LINK_RESULT_DONE || FSIL_LINK_RESULT_DONE + 8 != FSIL_LINK_RESULT_LEN
#error "FSIL_LINK_RESULT_LEN is not 16 + the codec's COMMAND packet length + 8"
#endif

void fsil_link_init(fsil_link_t *k, void *lb)
{
    memset(k, 0, sizeof *k);
    k->lb = lb;
}

uint16_t fsil_link_crc16(const uint8_t *data, size_t n)
{
    return fsw_crc16(data, n);
}

size_t fsil_link_frame(const uint8_t *packet, size_t n, uint8_t *frame, size_t cap)
{
    uint8_t buf[FSW_MAX_PACKET];
    size_t elen;

    if (n + FSW_CRC_LEN > sizeof buf || cap < 2u) {
        return 0;
    }
    memcpy(buf, packet, n);
    fsw_put_u16(buf + n, fsw_crc16(packet, n));
    elen = fsw_cobs_encode(buf, n + FSW_CRC_LEN, frame, cap - 1u);
    if (elen == 0u) {
        return 0;
    }
    frame[elen] = 0u;
    return elen + 1u;
}

/* One delimited chunk (without its 0x00): its FSIL_FRAME_* kind; for a good frame the packet
 * (header + body + CRC) is left in packet[0 .. *plen) and *type set. The Python decoder's
 * order of checks (harness/protocol.py FrameDecoder._take, decode_frame, decode_packet). */
static int check_chunk(const uint8_t *chunk, size_t n, uint8_t *packet, size_t *plen, uint8_t *type)
{
    fsw_msg_t msg;
    int r;

    if (n > FSW_MAX_ENCODED) {
        return FSIL_FRAME_FRAMING;  /* oversize */
    }
    if (fsw_cobs_decode(chunk, n, packet, FSW_RX_BUF_LEN, plen) != 0) {
        return FSIL_FRAME_FRAMING;
    }
    r = (int)fsw_msg_unpack(packet, *plen, &msg);
    if (r == FSIL_FRAME_OK) {
        *type = msg.hdr.msg_type;
    }
    return r;
}

size_t fsil_link_check_stream(const uint8_t *data, size_t n, uint8_t *kinds, uint8_t *types, size_t max)
{
    uint8_t packet[FSW_RX_BUF_LEN];
    size_t start = 0;
    size_t count = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        const uint8_t *zero = (const uint8_t *)memchr(data + i, 0, n - i);

        if (zero == NULL) {
            break;  /* no delimiter left: the tail is not a frame yet */
        }
        i = (size_t)(zero - data);
        if (i > start) {
            size_t plen = 0;
            uint8_t type = 0;
            int kind = check_chunk(data + start, i - start, packet, &plen, &type);
            if (count < max) {
                kinds[count] = (uint8_t)kind;
                types[count] = kind == FSIL_FRAME_OK ? type : 0u;
            }
            count++;
        }
        start = i + 1u;
    }
    return count;
}

int fsil_link_exchange(fsil_link_t *k, const uint8_t *packet, size_t n)
{
    uint8_t dec[FSW_RX_BUF_LEN];
    const uint8_t *rx = k->rx;
    uint16_t seq;
    uint32_t tlm_len = k->tlm_len;
    size_t start = 0;
    size_t rx_len;
    size_t i;
    int have_command = 0;
    uint32_t frames = 0;

    if (k->lb == NULL) {
        return -2;
    }
    if (n < FSW_HDR_LEN) {
        return -1;
    }
    k->tx_len = (uint32_t)fsil_link_frame(packet, n, k->tx, sizeof k->tx);
    if (k->tx_len == 0u) {
        return -1;
    }
    seq = fsw_get_u16(packet + 2);
    fsw_loopback_feed((struct fsw_loopback *)k->lb, k->tx, k->tx_len);
    rx_len = fsw_loopback_drain((struct fsw_loopback *)k->lb, k->rx, sizeof k->rx);
    k->rx_len = (uint32_t)rx_len;
    if (rx_len == 0u || rx_len == sizeof k->rx || rx[rx_len - 1u] != 0u) {
        return 0;  /* nothing, maybe more than we took, or a frame cut short: the decoder's business */
    }
    for (i = 0; i < rx_len; i++) {
        size_t plen = 0;
        uint8_t type = 0;
        const uint8_t *zero = (const uint8_t *)memchr(rx + i, 0, rx_len - i);

        i = (size_t)(zero - rx);  /* the next delimiter (there is one: the last byte is 0x00) */
        if (i == start) {  /* an empty frame is a flush, not an error */
            start = i + 1u;
            continue;
        }
        if (check_chunk(rx + start, i - start, dec, &plen, &type) != FSIL_FRAME_OK) {
            return 0;
        }
        start = i + 1u;
        frames++;
        if (type == FSW_MSG_COMMAND && !have_command && fsw_get_u16(dec + FSW_HDR_LEN + 16u) == seq) {
            have_command = 1;
            memcpy(k->result + 16, dec, COMMAND_PACKET_LEN);
        } else if (type == FSW_MSG_TELEMETRY && tlm_len + FSIL_LINK_TLM_PACKET <= sizeof k->tlm) {
            memcpy(k->tlm + tlm_len, dec, FSIL_LINK_TLM_PACKET);
            tlm_len += FSIL_LINK_TLM_PACKET;
        } else {
            return 0;  /* HELLO, CONFIG_ACK, a late or second COMMAND, or no room: not the regular answer */
        }
    }
    if (!have_command) {
        return 0;
    }
    k->tlm_len = tlm_len;
    fsw_put_u32(k->result + 0, frames);
    fsw_put_u32(k->result + 4, k->tx_len);
    fsw_put_u32(k->result + 8, k->rx_len);
    fsw_put_u32(k->result + 12, tlm_len);
    return 1;
}

/* A double as float32 the way Python's struct module packs it (round to nearest; a finite value
 * that rounds to infinity does not fit). Returns 0 if it does not fit. */
static int put_f32_checked(uint8_t *p, double v)
{
    float f = (float)v;

    if (isinf(f) && !isinf(v)) {
        return 0;
    }
    fsw_put_f32(p, f);
    return 1;
}

#define SENSORS_PACKET_LEN (FSW_HDR_LEN + FSW_LEN_SENSORS)
#if FSW_LEN_COMMAND != 24u
#error "fsil_link_exchange_reading_then reads the 24-byte COMMAND body of protocol v2"
#endif
#if FSW_LEN_SENSORS != 92u || SENSORS_PACKET_LEN != FSIL_LINK_SENSORS_PACKET
#error "fsil_link_pack_reading packs the 92-byte SENSORS body of protocol v2"
#endif

size_t fsil_link_pack_reading(uint8_t *packet, uint16_t seq, uint64_t t_us, const double *reading,
                              double lrf_range_m, uint64_t lrf_sample_t_us, uint8_t lrf_flags)
{
    uint8_t *b = packet + FSW_HDR_LEN;
    double dt_us = nearbyint(reading[6] * 1e6);  /* Python's round(): half to even */
    int ok = 1;
    int i;

    if (!(dt_us >= 0.0 && dt_us <= 4294967295.0)) {
        return 0;  /* NaN, negative or beyond u32 */
    }
    packet[0] = (uint8_t)FSW_PROTO_VERSION;
    packet[1] = (uint8_t)FSW_MSG_SENSORS;
    fsw_put_u16(packet + 2, seq);
    fsw_put_u64(packet + 4, t_us);
    for (i = 0; i < 6; i++) {
        ok &= put_f32_checked(b + 4 * i, reading[i]);
    }
    fsw_put_u32(b + 24, (uint32_t)dt_us);
    ok &= put_f32_checked(b + 28, lrf_range_m);
    fsw_put_u64(b + 32, lrf_sample_t_us);
    b[40] = (uint8_t)(lrf_flags | (reading[7] != 0.0 ? FSW_SENS_IMU_VALID : 0u));
    b[41] = 0u;
    b[42] = 0u;
    b[43] = 0u;
    for (i = 0; i < 6; i++) {
        fsw_put_f64(b + 44 + 8 * i, reading[8 + i]);
    }
    return ok ? SENSORS_PACKET_LEN : 0u;
}

int fsil_link_exchange_reading(fsil_link_t *k, uint16_t seq, uint64_t t_us, const double *reading,
                               double lrf_range_m, uint64_t lrf_sample_t_us, uint8_t lrf_flags)
{
    uint8_t packet[SENSORS_PACKET_LEN];

    if (fsil_link_pack_reading(packet, seq, t_us, reading, lrf_range_m, lrf_sample_t_us, lrf_flags) == 0u) {
        return -3;
    }
    return fsil_link_exchange(k, packet, sizeof packet);
}

int fsil_link_exchange_reading_then(fsil_link_t *k, uint16_t seq, uint64_t t_us, const double *reading,
                                    double lrf_range_m, uint64_t lrf_sample_t_us, uint8_t lrf_flags,
                                    fsil_then_t *then, int64_t row)
{
    int r = fsil_link_exchange_reading(k, seq, t_us, reading, lrf_range_m, lrf_sample_t_us, lrf_flags);
    const uint8_t *body = k->result + 16 + FSW_HDR_LEN;  /* the COMMAND: throttle, torque xyz, seq, mode, flags */

    if (then == NULL) {
        return r;
    }
    then->done = -1;
    if (r == 1 && row >= 0) {
        then->done = then->fn(then->block, then->history, then->rows, row, (double)fsw_get_f32(body),
                              (uint8_t)((body[19] & FSW_CMD_ENGINE_ON) != 0u), (double)fsw_get_f32(body + 4),
                              (double)fsw_get_f32(body + 8), (double)fsw_get_f32(body + 12), then->dt_s, then->n);
    }
    return r;
}

int fsil_link_cycle(fsil_link_t *k, uint16_t seq, uint64_t t_us, const double *reading,
                    double lrf_range_m, uint64_t lrf_sample_t_us, uint8_t lrf_flags,
                    fsil_then_t *then, int64_t row)
{
    int r = fsil_link_exchange_reading_then(k, seq, t_us, reading, lrf_range_m, lrf_sample_t_us, lrf_flags,
                                            then, row);
    fsil_link_tally_t *s = &k->tally;
    const uint8_t *command = k->result + 16;  /* the COMMAND packet: version, type, seq, t_us, body */

    if (r != 1) {
        return r;
    }
    s->cycles++;
    s->frames_ok += fsw_get_u32(k->result);
    s->bytes_tx += k->tx_len;
    s->bytes_rx += k->rx_len;
    s->sent_seq = seq;
    s->sent_t_us = t_us;
    s->command_seq = fsw_get_u16(command + 2);
    s->command_t_us = fsw_get_u64(command + 4);
    /* beside the COMMAND, so the harness reads it in the same unpack (then->done stays the record) */
    fsw_put_u64(k->result + FSIL_LINK_RESULT_DONE, (uint64_t)(then != NULL ? then->done : -1));
    return k->tlm_len > FSIL_LINK_TLM_HIGH_WATER ? 2 : 1;
}
