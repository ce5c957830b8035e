/*
 * cmsdk_uart.c - polled CMSDK APB UART driver.
 */
#include "cmsdk_uart.h"

void cmsdk_uart_init(cmsdk_uart_t *u, uintptr_t base, uint32_t pclk_hz, uint32_t baud)
{
    uint32_t div = (baud != 0u) ? pclk_hz / baud : 16u;
    if (div < 16u)
        div = 16u; /* the CMSDK UART's minimum divider */
    u->regs = (cmsdk_uart_regs_t *)base;
    u->rx_overruns = 0u;
    u->regs->CTRL = 0u;
    u->regs->BAUDDIV = div;
    u->regs->STATE = CMSDK_UART_STATE_TXOVR | CMSDK_UART_STATE_RXOVR; /* W1C */
    u->regs->INTSTATUS = 0xFu;                                        /* W1C */
    u->regs->CTRL = CMSDK_UART_CTRL_TXEN | CMSDK_UART_CTRL_RXEN;
}

void cmsdk_uart_putc(cmsdk_uart_t *u, uint8_t c)
{
    while ((u->regs->STATE & CMSDK_UART_STATE_TXFULL) != 0u) {
    }
    u->regs->DATA = c;
}

void cmsdk_uart_write(cmsdk_uart_t *u, const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        cmsdk_uart_putc(u, data[i]);
}

int cmsdk_uart_getc(cmsdk_uart_t *u, uint8_t *c)
{
    uint32_t st = u->regs->STATE;
    if ((st & CMSDK_UART_STATE_RXOVR) != 0u) {
        u->rx_overruns++;
        u->regs->STATE = CMSDK_UART_STATE_RXOVR;
    }
    if ((st & CMSDK_UART_STATE_RXFULL) == 0u)
        return 0;
    *c = (uint8_t)u->regs->DATA;
    return 1;
}
