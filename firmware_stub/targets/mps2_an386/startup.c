/*
 * startup.c - vector table, reset and fault handlers for the Cortex-M4F on
 * MPS2 AN386 (QEMU mps2-an386).
 *
 * Reset_Handler is written in assembly so that the FPU is switched on (CPACR
 * CP10/CP11 full access) before any compiled code could touch an FP register;
 * it then copies .data from its load address, zeroes .bss and calls main().
 * Every unexpected exception reports itself on UART0 as
 *     00 "FSW FAULT <name> exc=<n> pc=<hex> lr=<hex> cfsr=<hex> hfsr=<hex> ..." 0A 00
 * (between 0x00 delimiters, so the harness's frame decoder counts one bad
 * frame and resynchronises) and halts with interrupts off.
 */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "cmsdk_uart.h"

extern uint32_t _estack;                 /* top of the stack (linker script) */
extern uint32_t _sidata, _sdata, _edata; /* .data: load address, run start, run end */
extern uint32_t _sbss, _ebss;

int main(void);
void Reset_Handler(void);
void reset_c(void);
void Default_Handler(void);
void fault_c(const uint32_t *frame, uint32_t exc_return);

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

typedef void (*vector_t)(void);

#define MPS2_NUM_IRQ 32 /* QEMU: num-irq 32 for AN385/AN386 */

__attribute__((section(".isr_vector"), used))
const vector_t g_vectors[16 + MPS2_NUM_IRQ] = {
    (vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    /* IRQ 0..31 */
    [16 ... 16 + MPS2_NUM_IRQ - 1] = Default_Handler,
};

__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm volatile(
        "ldr  r0, =0xE000ED88      \n" /* CPACR */
        "ldr  r1, [r0]             \n"
        "orr  r1, r1, #(0xF << 20) \n" /* CP10, CP11: full access */
        "str  r1, [r0]             \n"
        "dsb                       \n"
        "isb                       \n"
        "ldr  r0, =_estack         \n"
        "msr  msp, r0              \n"
        "b    reset_c              \n"
        ".ltorg                    \n");
}

__attribute__((noreturn)) void reset_c(void)
{
    size_t data_len = (size_t)((uintptr_t)&_edata - (uintptr_t)&_sdata);
    size_t bss_len = (size_t)((uintptr_t)&_ebss - (uintptr_t)&_sbss);
    if (data_len != 0u && &_sidata != &_sdata)
        memcpy(&_sdata, &_sidata, data_len);
    memset(&_sbss, 0, bss_len);

    /* Separate MemManage/BusFault/UsageFault handlers; trap integer division by zero. */
    SCB_SHCSR |= (1u << 16) | (1u << 17) | (1u << 18);
    SCB_CCR |= (1u << 4); /* DIV_0_TRP */

    (void)main();
    board_fault("main returned", 0, 0);
}

/* Common entry for every unexpected exception: r0 = stacked frame, r1 = EXC_RETURN. */
__attribute__((naked)) void Default_Handler(void)
{
    __asm volatile(
        "tst   lr, #4   \n"
        "ite   eq       \n"
        "mrseq r0, msp  \n"
        "mrsne r0, psp  \n"
        "mov   r1, lr   \n"
        "b     fault_c  \n");
}

static const char *exception_name(uint32_t exc)
{
    switch (exc) {
    case 2: return "NMI";
    case 3: return "HardFault";
    case 4: return "MemManage";
    case 5: return "BusFault";
    case 6: return "UsageFault";
    case 11: return "SVC";
    case 12: return "DebugMon";
    case 14: return "PendSV";
    case 15: return "SysTick";
    default: return (exc >= 16u) ? "IRQ" : "exception";
    }
}

void fault_c(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    board_fault(exception_name(ipsr & 0x1FFu), frame, exc_return);
}

static void put_str(cmsdk_uart_t *u, const char *s)
{
    while (*s != '\0')
        cmsdk_uart_putc(u, (uint8_t)*s++);
}

static void put_hex(cmsdk_uart_t *u, const char *label, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    int i;
    put_str(u, label);
    for (i = 28; i >= 0; i -= 4)
        cmsdk_uart_putc(u, (uint8_t)digits[(v >> i) & 0xFu]);
}

__attribute__((noreturn)) void board_fault(const char *what, const uint32_t *frame, uint32_t exc_return)
{
    cmsdk_uart_t u;
    uint32_t ipsr;
    __asm volatile("cpsid i" ::: "memory");
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    /* Re-initialise: the fault may have hit before or inside the normal driver. */
    cmsdk_uart_init(&u, CMSDK_UART0_BASE, BOARD_SYSCLK_HZ, BOARD_UART_BAUD);
    cmsdk_uart_putc(&u, 0u);
    put_str(&u, "FSW FAULT ");
    put_str(&u, what);
    put_hex(&u, " exc=", ipsr & 0x1FFu);
    if (frame != 0) {
        put_hex(&u, " pc=", frame[6]);
        put_hex(&u, " lr=", frame[5]);
        put_hex(&u, " xpsr=", frame[7]);
        put_hex(&u, " exc_return=", exc_return);
    }
    put_hex(&u, " cfsr=", SCB_CFSR);
    put_hex(&u, " hfsr=", SCB_HFSR);
    put_hex(&u, " mmfar=", SCB_MMFAR);
    put_hex(&u, " bfar=", SCB_BFAR);
    put_str(&u, "\n");
    cmsdk_uart_putc(&u, 0u);
    for (;;)
        __asm volatile("wfi");
}
