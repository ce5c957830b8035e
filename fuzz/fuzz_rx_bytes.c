/*
 * fuzz_rx_bytes.c - libFuzzer target: arbitrary bytes into the flight code's receive path
 * (fsw_rx_bytes through the loopback HAL), delivered in chunks as a UART would.
 *
 * The first input byte picks the chunk length (1-64 bytes), so the fuzzer also explores frames
 * split across reads. After every chunk: the invariants of fuzz_check.h (finite navigation and
 * guidance state once committed, every frame sent decodes cleanly, COMMANDs finite and in range).
 * And the streaming parser's two entries agree: fsw_parser_feed, which copies runs of bytes in
 * chunks, ends in exactly the state fsw_parser_push reaches a byte at a time (frames accepted,
 * every counter, the partial frame held).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed_agrees_with_push(const uint8_t *data, size_t size, size_t chunk)
{
    fsw_parser_t fed, pushed;
    fsw_msg_t m;
    size_t n_fed = 0, n_pushed = 0, off, i;

    fsw_parser_init(&fed);
    fsw_parser_init(&pushed);
    for (off = 0; off < size; off += chunk) {
        n_fed += fsw_parser_feed(&fed, data + off, size - off < chunk ? size - off : chunk, NULL, NULL);
    }
    for (i = 0; i < size; i++) {
        n_pushed += (size_t)fsw_parser_push(&pushed, data[i], &m);
    }
    if (n_fed != n_pushed || fed.frames_ok != pushed.frames_ok || fed.crc_errors != pushed.crc_errors ||
        fed.framing_errors != pushed.framing_errors || fed.length_errors != pushed.length_errors ||
        fed.unknown_msgs != pushed.unknown_msgs || fed.len != pushed.len ||
        fed.discarding != pushed.discarding || fed.last_result != pushed.last_result ||
        memcmp(fed.buf, pushed.buf, fed.len) != 0) {
        FUZZ_FAIL("fsw_parser_feed (chunks of %zu) and fsw_parser_push disagree: frames %zu/%zu, framing %u/%u, "
                  "crc %u/%u, held %u/%u bytes, discarding %u/%u", chunk, n_fed, n_pushed,
                  (unsigned)fed.framing_errors, (unsigned)pushed.framing_errors, (unsigned)fed.crc_errors,
                  (unsigned)pushed.crc_errors, (unsigned)fed.len, (unsigned)pushed.len,
                  (unsigned)fed.discarding, (unsigned)pushed.discarding);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fsw_loopback_t lb;   /* ~30 kB: static, re-initialised for every input */
    size_t chunk, off;

    fsw_loopback_init(&lb);
    fuzz_drain_and_check(&lb);   /* the boot HELLO */
    if (size == 0u) {
        return 0;
    }
    chunk = (size_t)(data[0] % 64u) + 1u;
    feed_agrees_with_push(data + 1, size - 1u, data[0] < 128u ? chunk : 300u + data[0]);
    for (off = 1; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        fsw_loopback_feed(&lb, data + off, n);
        fuzz_check_state(&lb.fsw);
        fuzz_drain_and_check(&lb);
    }
    return 0;
}
