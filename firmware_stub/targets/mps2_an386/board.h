/*
 * board.h - the MPS2 AN386 (Cortex-M4F) board as QEMU's mps2-an386 models it.
 */
#ifndef BOARD_H
#define BOARD_H

#include <stdint.h>

#define BOARD_SYSCLK_HZ   25000000u   /* CPU and APB clock (QEMU: SYSCLK_FRQ) */
#define BOARD_UART_BAUD   115200u     /* nominal; QEMU does not pace its UART by BAUDDIV */

/* System control block and SysTick (ARMv7-M) */
#define SCB_CPACR   (*(volatile uint32_t *)0xE000ED88u)
#define SCB_SHCSR   (*(volatile uint32_t *)0xE000ED24u)
#define SCB_CCR     (*(volatile uint32_t *)0xE000ED14u)
#define SCB_CFSR    (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR    (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR   (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR    (*(volatile uint32_t *)0xE000ED38u)
#define SYST_CSR    (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR    (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR    (*(volatile uint32_t *)0xE000E018u)

/* Report a fault on UART0 and halt (startup.c). */
void board_fault(const char *what, const uint32_t *frame, uint32_t exc_return);

#endif /* BOARD_H */
