/*
 * main.c - the portable flight code on the Cortex-M4F of MPS2 AN386
 * (QEMU mps2-an386): UART0 carries link protocol v2, SysTick gives time.
 *
 * Boot: fsw_init() sends HELLO; then poll UART0 and feed the received bytes
 * to fsw_rx_bytes(), which answers through the same UART. No heap, no RTOS.
 */
#include <stdint.h>

#include "board.h"
#include "cmsdk_uart.h"
#include "fsw_app.h"

#define SYSTICK_HZ 1000u
#define TICKS_PER_MS (BOARD_SYSCLK_HZ / SYSTICK_HZ)
#define RX_CHUNK 64u

static volatile uint32_t g_ms_lo; /* milliseconds since boot, incremented by SysTick */
static volatile uint32_t g_ms_hi; /* carries of g_ms_lo */

void SysTick_Handler(void)
{
    uint32_t lo = g_ms_lo + 1u;
    g_ms_lo = lo;
    if (lo == 0u)
        g_ms_hi = g_ms_hi + 1u;
}

static void systick_start(void)
{
    SYST_CSR = 0u;
    SYST_RVR = TICKS_PER_MS - 1u;
    SYST_CVR = 0u;
    SYST_CSR = 0x7u; /* processor clock, interrupt, enable */
}

static uint64_t board_now_us(void *user)
{
    uint32_t hi, lo, lo2, cvr;
    (void)user;
    do {
        lo = g_ms_lo;
        hi = g_ms_hi;
        cvr = SYST_CVR;
        lo2 = g_ms_lo;
    } while (lo != lo2); /* a tick between the reads: read again */
    return (((uint64_t)hi << 32) | lo) * 1000u +
           (uint64_t)((TICKS_PER_MS - 1u - cvr) / (BOARD_SYSCLK_HZ / 1000000u));
}

static void board_tx(void *user, const uint8_t *data, size_t n)
{
    cmsdk_uart_write((cmsdk_uart_t *)user, data, n);
}

int main(void)
{
    static cmsdk_uart_t uart0;
    static fsw_ctx_t ctx;
    static fsw_hal_t hal;
    uint8_t chunk[RX_CHUNK];

    cmsdk_uart_init(&uart0, CMSDK_UART0_BASE, BOARD_SYSCLK_HZ, BOARD_UART_BAUD);
    systick_start();

    hal.user = &uart0;
    hal.tx = board_tx;
    hal.now_us = board_now_us;
    fsw_init(&ctx, &hal); /* HELLO */

    for (;;) {
        size_t n = 0;
        /* Drain what is waiting (a byte at a time from the one-byte holding
         * register), then hand the chunk to the flight code. */
        while (n < RX_CHUNK && cmsdk_uart_getc(&uart0, &chunk[n]))
            n++;
        if (n != 0u)
            fsw_rx_bytes(&ctx, chunk, n);
    }
}
