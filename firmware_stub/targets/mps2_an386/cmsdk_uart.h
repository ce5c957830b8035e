/*
 * cmsdk_uart.h - polled driver for the ARM CMSDK APB UART (DDI0479C), as on
 * the MPS2 AN385/AN386 FPGA images (UART0 at 0x40004000) and in QEMU.
 *
 * Registers: DATA (+0x00), STATE (+0x04: bit0 TX full, bit1 RX full, bit2 TX
 * overrun, bit3 RX overrun, overruns write-1-to-clear), CTRL (+0x08: bit0 TX
 * enable, bit1 RX enable, bits 2-5 interrupt enables), INTSTATUS (+0x0C),
 * BAUDDIV (+0x10: PCLK / baud, at least 16). One byte of buffering each way.
 */
#ifndef CMSDK_UART_H
#define CMSDK_UART_H

#include <stddef.h>
#include <stdint.h>

typedef struct cmsdk_uart_regs {
    volatile uint32_t DATA;
    volatile uint32_t STATE;
    volatile uint32_t CTRL;
    volatile uint32_t INTSTATUS;
    volatile uint32_t BAUDDIV;
} cmsdk_uart_regs_t;

#define CMSDK_UART0_BASE        0x40004000u
#define CMSDK_UART_STATE_TXFULL 0x1u
#define CMSDK_UART_STATE_RXFULL 0x2u
#define CMSDK_UART_STATE_TXOVR  0x4u
#define CMSDK_UART_STATE_RXOVR  0x8u
#define CMSDK_UART_CTRL_TXEN    0x1u
#define CMSDK_UART_CTRL_RXEN    0x2u

typedef struct cmsdk_uart {
    cmsdk_uart_regs_t *regs;
    uint32_t rx_overruns;   /* bytes lost because the RX holding register was not read in time */
} cmsdk_uart_t;

/* Program BAUDDIV = pclk_hz / baud, clear overruns, enable TX and RX (no interrupts). */
void cmsdk_uart_init(cmsdk_uart_t *u, uintptr_t base, uint32_t pclk_hz, uint32_t baud);
/* Blocking: wait while TX is full, then write the byte. */
void cmsdk_uart_putc(cmsdk_uart_t *u, uint8_t c);
void cmsdk_uart_write(cmsdk_uart_t *u, const uint8_t *data, size_t n);
/* Non-blocking: 1 and *c if a byte was waiting, else 0. */
int cmsdk_uart_getc(cmsdk_uart_t *u, uint8_t *c);

#endif /* CMSDK_UART_H */
