/*
 * loopback_link.h - the harness end of one lockstep cycle on the in-process (loopback) rig, in C.
 *
 * Harness code, not flight code: it is compiled into the loopback cffi module beside the flight
 * code under test and reaches it only through the loopback HAL's byte pipe (fsw_loopback_feed,
 * fsw_loopback_drain), exactly as harness/transports/loopback.py does from Python. Its codec is
 * the project's own firmware_stub/fsw_protocol.c compiled under fsil_ names, so the flight code
 * under test may bring its own (or a broken) codec without the harness using it.
 *
 * One call of fsil_link_exchange() does what FlightLink does with the Python codec in a cycle:
 * CRC and COBS-frame the SENSORS packet the harness packed, feed the frame to the flight code's
 * own stream parser, drain every byte it answers, cut that at the 0x00 delimiters, COBS-decode
 * and check each frame (CRC, version, type, length). When the answer is the regular one (whole
 * frames only, all good, exactly one COMMAND and it answers this SENSORS, otherwise only
 * TELEMETRY) it returns 1 with the COMMAND packet in the result and the TELEMETRY packets
 * appended to the telemetry buffer. Anything else returns 0 and changes nothing but the tx/rx
 * buffers: the harness then hands the received bytes to its Python decoder, which counts, names
 * and handles whatever is unusual (harness/link.py, FlightLink._exchange_in_process).
 */
#ifndef FSIL_LOOPBACK_LINK_H
#define FSIL_LOOPBACK_LINK_H

#include <stddef.h>
#include <stdint.h>

#define FSIL_LINK_FRAME_CAP   256u      /* one SENSORS frame: COBS(packet of at most 250 bytes) + 0x00 */
#define FSIL_LINK_RX_CAP      4096u     /* bytes of the flight code's answer taken per call */
#define FSIL_LINK_TLM_PACKET  98u       /* a TELEMETRY packet: 12 header + 84 body + 2 CRC bytes */
#define FSIL_LINK_TLM_CAP     (1024u * FSIL_LINK_TLM_PACKET)
#define FSIL_LINK_SENSORS_PACKET 104u     /* a SENSORS header + body, without CRC */
#define FSIL_LINK_RESULT_LEN  62u       /* 4 x u32 + the 38-byte COMMAND packet + an i64 (see fsil_link_t.result) */
#define FSIL_LINK_RESULT_DONE 54u       /* where fsil_link_cycle puts what the COMMAND's consumer returned */
/* TELEMETRY bytes held past which fsil_link_cycle returns 2: room for 64 more cycles' worth */
#define FSIL_LINK_TLM_HIGH_WATER (FSIL_LINK_TLM_CAP - 64u * FSIL_LINK_TLM_PACKET)

/*
 * What a regular COMMAND is handed to in the same call (fsil_link_exchange_reading_then): the
 * harness's compiled plant cycle (harness/cycle.py, a numba cfunc of the same kernel the harness
 * calls from Python), with the arrays it works on. fn gets the block, the history rows, the row
 * for this cycle, the COMMAND's throttle, engine-on bit and body torque (N m) as the harness
 * reads them (float32 widened), dt_s and n; it returns the substeps it took (done).
 */
typedef int64_t (*fsil_cycle_fn)(double *block, double *history, int64_t rows, int64_t row, double throttle,
                                 uint8_t engine_on, double torque_x, double torque_y, double torque_z,
                                 double dt_s, int64_t n);

typedef struct fsil_then {
    fsil_cycle_fn fn;
    double  *block;
    double  *history;
    int64_t  rows;
    double   dt_s;
    int64_t  n;
    int64_t  done;      /* out: what fn returned, or -1 when it was not called */
} fsil_then_t;

/* Kinds of a checked frame (fsil_link_check_stream); the numbers of fsw_rx_result_t. */
#define FSIL_FRAME_OK       0
#define FSIL_FRAME_EMPTY    1
#define FSIL_FRAME_FRAMING  2
#define FSIL_FRAME_CRC      3
#define FSIL_FRAME_LENGTH   4
#define FSIL_FRAME_UNKNOWN  5

/*
 * Running totals of the regular cycles fsil_link_cycle took since fsil_link_init or since the
 * harness last took them (it adds them to its own counters, then zeroes cycles): what the harness
 * would otherwise count in Python every cycle. The last one's SENSORS and COMMAND headers too.
 */
typedef struct fsil_link_tally {
    uint64_t cycles;         /* regular cycles */
    uint64_t frames_ok;      /* good frames in their answers */
    uint64_t bytes_tx;       /* bytes fed (the SENSORS frames) */
    uint64_t bytes_rx;       /* bytes drained (the answers) */
    uint64_t sent_t_us;      /* the last of them: its SENSORS t_us and seq, its COMMAND's t_us and seq */
    uint64_t command_t_us;
    uint16_t sent_seq;
    uint16_t command_seq;
} fsil_link_tally_t;

typedef struct fsil_link {
    void    *lb;                            /* the flight code: its fsw_loopback_t */
    uint8_t  result[FSIL_LINK_RESULT_LEN];  /* little-endian u32s: good frames in the answer, tx_len, rx_len, tlm_len; then the COMMAND packet; then (fsil_link_cycle) then->done as an i64 */
    uint8_t  tx[FSIL_LINK_FRAME_CAP];       /* the SENSORS frame as fed (for the link log) */
    uint32_t tx_len;
    uint8_t  rx[FSIL_LINK_RX_CAP];          /* every byte drained from the flight code this call */
    uint32_t rx_len;
    uint8_t  tlm[FSIL_LINK_TLM_CAP];        /* checked TELEMETRY packets (header + body + CRC), arrival order */
    uint32_t tlm_len;
    fsil_link_tally_t tally;                /* kept by fsil_link_cycle alone */
} fsil_link_t;

/* Bind k to the loopback flight code lb (an fsw_loopback_t *, or NULL: none); buffers emptied. */
void fsil_link_init(fsil_link_t *k, void *lb);

/*
 * One cycle: packet is the SENSORS header + body (n bytes, no CRC) as the harness packed it.
 * Returns 1 for the regular answer (result filled, TELEMETRY appended), 0 for anything else
 * (tx/rx filled, nothing else changed), -1 if packet cannot be framed (shorter than a header or
 * longer than 248 bytes), -2 if k is bound to no flight code (lb NULL: the transport was
 * closed); nothing is fed in either case.
 */
int fsil_link_exchange(fsil_link_t *k, const uint8_t *packet, size_t n);

/*
 * One cycle whose SENSORS the harness's own IMU reading and LRF fields make (the loopback rig
 * without IMU faults): the packet harness/protocol.py's sensors_packet() packs from the same
 * values, packed here (same bytes: tests/test_loopback_link.py), then fsil_link_exchange.
 * reading: the IMU model's reading, doubles in sensor_models/imu.py READING_FIELDS order (dv
 * xyz m/s, dtheta xyz rad, dt s, valid, dv accum xyz, dtheta accum xyz; body axes); the
 * IMU_VALID flag is set from its valid field, the LRF flags come in lrf_flags. Returns what
 * fsil_link_exchange returns, or -3 with nothing fed when a value does not fit its field (a
 * finite value beyond float32's range, an interval that is not a whole u32 of us): the harness
 * then packs in Python, which names the value.
 */
int fsil_link_exchange_reading(fsil_link_t *k, uint16_t seq, uint64_t t_us, const double *reading,
                               double lrf_range_m, uint64_t lrf_sample_t_us, uint8_t lrf_flags);

/*
 * fsil_link_exchange_reading, then, when it returns 1 (the regular answer) and row >= 0, the
 * COMMAND handed to then->fn for row (then->done set to what it returned; -1 otherwise). The
 * harness gives a row only when nothing of its own (a fault hook) stands between the COMMAND and
 * the plant. then may be NULL (no consumer: a plain fsil_link_exchange_reading).
 */
int fsil_link_exchange_reading_then(fsil_link_t *k, uint16_t seq, uint64_t t_us, const double *reading,
                                    double lrf_range_m, uint64_t lrf_sample_t_us, uint8_t lrf_flags,
                                    fsil_then_t *then, int64_t row);

/*
 * fsil_link_exchange_reading_then, with the harness's per-cycle bookkeeping of a regular cycle
 * done here (k->tally) instead of in Python: for the harness that keeps no byte log. Returns what
 * that returns, except 2 for a regular cycle after which more than FSIL_LINK_TLM_HIGH_WATER
 * TELEMETRY bytes are held (take them before the next call). After a regular cycle, then->done (-1
 * when then is NULL) is also in the result at FSIL_LINK_RESULT_DONE (little-endian i64), right
 * after the COMMAND packet, so that one read of the result gives both.
 */
int fsil_link_cycle(fsil_link_t *k, uint16_t seq, uint64_t t_us, const double *reading,
                    double lrf_range_m, uint64_t lrf_sample_t_us, uint8_t lrf_flags,
                    fsil_then_t *then, int64_t row);

/* The packing of fsil_link_exchange_reading alone: the SENSORS header + body into packet (room
 * for FSIL_LINK_SENSORS_PACKET bytes); returns that length, or 0 when a value does not fit. */
size_t fsil_link_pack_reading(uint8_t *packet, uint16_t seq, uint64_t t_us, const double *reading,
                              double lrf_range_m, uint64_t lrf_sample_t_us, uint8_t lrf_flags);

/*
 * The checks of fsil_link_exchange over a whole byte stream, for the differential tests against
 * the Python decoder: the stream is cut at every 0x00 (bytes after the last one are ignored)
 * and each non-empty chunk classified as FSIL_FRAME_*; kinds[i] and types[i] (the message type
 * of a good frame, else 0) for the first max of them. Returns the number of non-empty chunks.
 */
size_t fsil_link_check_stream(const uint8_t *data, size_t n, uint8_t *kinds, uint8_t *types, size_t max);

/* CRC-16/CCITT-FALSE and COBS-framing of a packet by the harness-side codec (0 if too long). */
uint16_t fsil_link_crc16(const uint8_t *data, size_t n);
size_t fsil_link_frame(const uint8_t *packet, size_t n, uint8_t *frame, size_t cap);

#endif /* FSIL_LOOPBACK_LINK_H */
