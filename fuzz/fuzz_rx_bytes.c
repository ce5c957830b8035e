/*
 * fuzz_rx_bytes.c - libFuzzer target: arbitrary bytes into the flight code's receive path
 * (fsw_rx_bytes through the loopback HAL), delivered in chunks as a UART would.
 *
 * The first input byte picks the chunk length (1-64 bytes), so the fuzzer also explores frames
 * split across reads. After every chunk: the invariants of fuzz_check.h (finite navigation and
 * guidance state once committed, every frame sent decodes cleanly, COMMANDs finite and in range).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    for (off = 1; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        fsw_loopback_feed(&lb, data + off, n);
        fuzz_check_state(&lb.fsw);
        fuzz_drain_and_check(&lb);
    }
    return 0;
}
