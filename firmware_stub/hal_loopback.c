/*
 * hal_loopback.c - in-process target for the cffi build (harness/fsw_build.py).
 */
#include "hal_loopback.h"

#include <string.h>

static void lb_tx(void *user, const uint8_t *data, size_t n)
{
    fsw_loopback_t *lb = (fsw_loopback_t *)user;
    size_t room = FSW_LOOPBACK_TX_CAP - lb->tx_len;
    size_t k = n < room ? n : room;

    memcpy(lb->tx_buf + lb->tx_len, data, k);
    lb->tx_len += k;
    lb->tx_overflow += (uint32_t)(n - k);
}

size_t fsw_loopback_size(void)
{
    return sizeof(fsw_loopback_t);
}

void fsw_loopback_init(fsw_loopback_t *lb)
{
    memset(lb, 0, sizeof *lb);
    lb->hal.user = lb;
    lb->hal.tx = lb_tx;
    lb->hal.now_us = NULL;   /* simulated time only: no overrun accounting in-process */
    fsw_init(&lb->fsw, &lb->hal);
}

void fsw_loopback_feed(fsw_loopback_t *lb, const uint8_t *data, size_t n)
{
    fsw_rx_bytes(&lb->fsw, data, n);
}

size_t fsw_loopback_drain(fsw_loopback_t *lb, uint8_t *out, size_t cap)
{
    size_t k = lb->tx_len < cap ? lb->tx_len : cap;
    memcpy(out, lb->tx_buf, k);
    memmove(lb->tx_buf, lb->tx_buf + k, lb->tx_len - k);
    lb->tx_len -= k;
    return k;
}

size_t fsw_msg_size(void)
{
    return sizeof(fsw_msg_t);
}

size_t fsw_parser_size(void)
{
    return sizeof(fsw_parser_t);
}

typedef struct collect {
    fsw_msg_t *msgs;
    size_t max;
    size_t n;
} collect_t;

static void collect_cb(void *user, const fsw_msg_t *msg)
{
    collect_t *c = (collect_t *)user;
    if (c->n < c->max) {
        c->msgs[c->n] = *msg;
    }
    c->n++;
}

size_t fsw_test_parse(fsw_parser_t *p, const uint8_t *data, size_t n, fsw_msg_t *msgs, size_t max_msgs)
{
    collect_t c;
    c.msgs = msgs;
    c.max = msgs != NULL ? max_msgs : 0u;
    c.n = 0;
    (void)fsw_parser_feed(p, data, n, collect_cb, &c);
    return c.n;
}

int fsw_test_decode_frame(const uint8_t *frame, size_t n, fsw_msg_t *msg)
{
    uint8_t buf[FSW_RX_BUF_LEN];
    size_t plen = 0;

    if (n > 0u && frame[n - 1u] == 0u) {
        n--;
    }
    if (n == 0u) {
        return FSW_RX_EMPTY;
    }
    if (n > FSW_MAX_ENCODED) {
        return FSW_RX_FRAMING;
    }
    if (fsw_cobs_decode(frame, n, buf, sizeof buf, &plen) != 0) {
        return FSW_RX_FRAMING;
    }
    return (int)fsw_msg_unpack(buf, plen, msg);
}
