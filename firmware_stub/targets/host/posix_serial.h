/*
 * posix_serial.h - POSIX serial HAL for the host flight program.
 *
 * Opens a tty (a pty slave or a real serial device) in raw mode, or uses
 * stdin/stdout. tx() writes every byte (retrying short writes and EINTR);
 * now_us() reads CLOCK_MONOTONIC. Errors never print on the serial line:
 * diagnostics go to stderr.
 */
#ifndef POSIX_SERIAL_H
#define POSIX_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "fsw_hal.h"

typedef struct posix_serial {
    int rx_fd;
    int tx_fd;
    int owns_fd;        /* 1: close rx_fd on posix_serial_close */
    int pty_slave_fd;   /* --pty mode: our own handle on the slave (-1: none) */
    int tx_errno;       /* first write error (0: none); the main loop stops on it */
    uint64_t tx_bytes;
    uint64_t rx_bytes;
    size_t tx_len;      /* bytes waiting in tx_buf */
    uint8_t tx_buf[1024];
} posix_serial_t;

/* Open path raw at the given baud rate (0: leave the speed alone, e.g. a pty).
 * Returns 0, or -1 with a message on stderr. */
int posix_serial_open(posix_serial_t *s, const char *path, long baud);
/* Create a pseudo-terminal and serve on its master side (like QEMU's -serial pty):
 * the slave is put in raw mode and kept open here (so the master never sees a
 * hangup before the harness connects); its path is copied to slave_path.
 * The harness opens the slave path like any serial device. Returns 0 or -1. */
int posix_serial_open_pty(posix_serial_t *s, char *slave_path, size_t slave_path_len);
/* Use stdin for reading and stdout for writing (raw mode if they are ttys). */
int posix_serial_open_stdio(posix_serial_t *s);
void posix_serial_close(posix_serial_t *s);
/* Write out what tx() has collected (the main loop calls it after each batch of input). */
void posix_serial_flush(posix_serial_t *s);
/* Fill hal with tx/now_us bound to s. */
void posix_serial_hal(posix_serial_t *s, fsw_hal_t *hal);

#endif /* POSIX_SERIAL_H */
