/*
 * fsw_hal.h - the thin hardware abstraction the flight code talks through.
 *
 * The flight code never touches a device: it receives bytes through
 * fsw_rx_bytes() (fsw_app.h) and sends bytes and reads time through the
 * function pointers below. Each target (cffi loopback, POSIX serial host
 * program, Cortex-M4 on QEMU mps2-an386, a real board over USB CDC) supplies
 * one fsw_hal_t. No globals: the user pointer carries the target's state.
 */
#ifndef FSW_HAL_H
#define FSW_HAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct fsw_hal {
    void *user;
    /* Queue n bytes for transmission; must accept all of them (block or buffer). */
    void (*tx)(void *user, const uint8_t *data, size_t n);
    /* Monotonic target time in microseconds (for cycle-overrun accounting). May be NULL. */
    uint64_t (*now_us)(void *user);
} fsw_hal_t;

#endif /* FSW_HAL_H */
