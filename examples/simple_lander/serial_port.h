/*
 * serial_port.h - the serial port of a POSIX flight program: open the tty it is given (the pty
 * fsil creates, or a real serial device) in raw mode, write whole frames. POSIX only, nothing
 * of fsil. (tests/broken_fsw, another small foreign flight program, uses it too.)
 */
#ifndef SERIAL_PORT_H
#define SERIAL_PORT_H

#include <stddef.h>
#include <stdint.h>

/* Open path read/write in raw mode (8 data bits, no echo, no CR/LF translation, no flow
 * control; a read returns as soon as one byte is there). A path that is no tty is used as it
 * is. Returns the file descriptor, or -1 with errno set. */
int serial_port_open(const char *path);

/* Write all n bytes, retrying interrupted and partial writes. Returns 0, or the errno of the
 * write that failed (EIO if the port took nothing). */
int serial_port_write(int fd, const uint8_t *data, size_t n);

#endif /* SERIAL_PORT_H */
