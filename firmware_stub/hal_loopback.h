/*
 * hal_loopback.h - the in-process target: the flight code runs inside the
 * Python harness (cffi). feed() delivers bytes exactly as a UART would;
 * drain() returns the bytes the flight code transmitted.
 *
 * Also exports codec helpers for the harness's C-level tests.
 */
#ifndef HAL_LOOPBACK_H
#define HAL_LOOPBACK_H

#include <stddef.h>
#include <stdint.h>

#include "fsw_app.h"
#include "fsw_hal.h"
#include "fsw_protocol.h"

#define FSW_LOOPBACK_TX_CAP 4096u

typedef struct fsw_loopback {
    fsw_ctx_t fsw;
    fsw_hal_t hal;
    uint8_t   tx_buf[FSW_LOOPBACK_TX_CAP];
    size_t    tx_len;
    uint32_t  tx_overflow;   /* bytes dropped because tx_buf was full */
} fsw_loopback_t;

size_t fsw_loopback_size(void);
/* Boot the flight code (it emits HELLO into tx_buf). */
void   fsw_loopback_init(fsw_loopback_t *lb);
void   fsw_loopback_feed(fsw_loopback_t *lb, const uint8_t *data, size_t n);
/* Copy up to cap transmitted bytes into out and remove them from the buffer. */
size_t fsw_loopback_drain(fsw_loopback_t *lb, uint8_t *out, size_t cap);

/* ---- codec helpers for tests ---- */
size_t fsw_msg_size(void);
size_t fsw_parser_size(void);
/*
 * Run parser p over n bytes; store up to max_msgs decoded messages in msgs.
 * Returns the number of good frames seen (may exceed max_msgs; extra ones are counted, not stored).
 */
size_t fsw_test_parse(fsw_parser_t *p, const uint8_t *data, size_t n, fsw_msg_t *msgs, size_t max_msgs);
/* Decode one COBS frame (with or without its trailing 0x00) into msg; returns fsw_rx_result_t. */
int    fsw_test_decode_frame(const uint8_t *frame, size_t n, fsw_msg_t *msg);

#endif /* HAL_LOOPBACK_H */
