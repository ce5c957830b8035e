/*
 * serial_port.c - see serial_port.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "serial_port.h"

#include <errno.h>
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

int serial_port_open(const char *path)
{
    struct termios t;
    int fd = open(path, O_RDWR | O_NOCTTY);
    if (fd < 0) return -1;
    if (tcgetattr(fd, &t) == 0) {  /* a tty: raw bytes, no echo, no translation */
        t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF);
        t.c_oflag &= ~(tcflag_t)OPOST;
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB);
        t.c_cflag |= CS8 | CLOCAL | CREAD;
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        tcsetattr(fd, TCSANOW, &t);
    }
    return fd;
}

int serial_port_write(int fd, const uint8_t *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return errno;
        }
        if (w == 0) return EIO;
        off += (size_t)w;
    }
    return 0;
}
