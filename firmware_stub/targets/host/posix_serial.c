/*
 * posix_serial.c - POSIX serial HAL for the host flight program.
 */
#if !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1 /* cfmakeraw, cfsetspeed and the B* rates above 38400 */
#endif
#if !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 600 /* posix_openpt, grantpt, unlockpt, ptsname */
#endif

#include "posix_serial.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int baud_constant(long baud, speed_t *out)
{
    static const struct { long baud; speed_t code; } table[] = {
        {9600, B9600}, {19200, B19200}, {38400, B38400}, {57600, B57600},
        {115200, B115200}, {230400, B230400}, {460800, B460800},
        {500000, B500000}, {576000, B576000}, {921600, B921600},
        {1000000, B1000000}, {1500000, B1500000}, {2000000, B2000000},
        {3000000, B3000000}, {4000000, B4000000},
    };
    size_t i;
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].baud == baud) {
            *out = table[i].code;
            return 0;
        }
    }
    return -1;
}

/* Raw 8N1, no echo, no CR/LF translation, no flow control, blocking read of >= 1 byte. */
static int make_raw(int fd, const char *what, long baud)
{
    struct termios tio;
    if (tcgetattr(fd, &tio) != 0) {
        fprintf(stderr, "fsw_host: tcgetattr(%s): %s\n", what, strerror(errno));
        return -1;
    }
    cfmakeraw(&tio);
    tio.c_cflag |= (tcflag_t)(CLOCAL | CREAD);
    tio.c_cflag &= (tcflag_t)~(tcflag_t)(CRTSCTS | CSTOPB | PARENB);
    tio.c_iflag &= (tcflag_t)~(tcflag_t)(IXON | IXOFF | IXANY);
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    if (baud > 0) {
        speed_t code;
        if (baud_constant(baud, &code) != 0) {
            fprintf(stderr, "fsw_host: unsupported baud rate %ld\n", baud);
            return -1;
        }
        cfsetispeed(&tio, code);
        cfsetospeed(&tio, code);
    }
    if (tcsetattr(fd, TCSANOW, &tio) != 0) {
        fprintf(stderr, "fsw_host: tcsetattr(%s): %s\n", what, strerror(errno));
        return -1;
    }
    return 0;
}

int posix_serial_open(posix_serial_t *s, const char *path, long baud)
{
    int fd;
    memset(s, 0, sizeof *s);
    s->rx_fd = s->tx_fd = -1;
    s->pty_slave_fd = -1;
    do {
        fd = open(path, O_RDWR | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        fprintf(stderr, "fsw_host: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!isatty(fd)) {
        fprintf(stderr, "fsw_host: %s is not a tty\n", path);
        close(fd);
        return -1;
    }
    if (make_raw(fd, path, baud) != 0) {
        close(fd);
        return -1;
    }
    (void)tcflush(fd, TCIFLUSH); /* drop anything queued before we were ready */
    s->rx_fd = s->tx_fd = fd;
    s->owns_fd = 1;
    return 0;
}

int posix_serial_open_pty(posix_serial_t *s, char *slave_path, size_t slave_path_len)
{
    const char *name;
    int master;
    memset(s, 0, sizeof *s);
    s->pty_slave_fd = -1;
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 || (name = ptsname(master)) == NULL) {
        fprintf(stderr, "fsw_host: cannot create a pseudo-terminal: %s\n", strerror(errno));
        if (master >= 0)
            close(master);
        return -1;
    }
    if (strlen(name) + 1 > slave_path_len) {
        fprintf(stderr, "fsw_host: pty path too long: %s\n", name);
        close(master);
        return -1;
    }
    strcpy(slave_path, name);
    s->pty_slave_fd = open(slave_path, O_RDWR | O_NOCTTY);
    if (s->pty_slave_fd < 0 || make_raw(s->pty_slave_fd, slave_path, 0) != 0) {
        fprintf(stderr, "fsw_host: cannot open %s: %s\n", slave_path, strerror(errno));
        close(master);
        return -1;
    }
    s->rx_fd = s->tx_fd = master;
    s->owns_fd = 1;
    return 0;
}

int posix_serial_open_stdio(posix_serial_t *s)
{
    memset(s, 0, sizeof *s);
    s->pty_slave_fd = -1;
    s->rx_fd = STDIN_FILENO;
    s->tx_fd = STDOUT_FILENO;
    if (isatty(s->rx_fd) && make_raw(s->rx_fd, "stdin", 0) != 0)
        return -1;
    if (isatty(s->tx_fd) && s->tx_fd != s->rx_fd && make_raw(s->tx_fd, "stdout", 0) != 0)
        return -1;
    return 0;
}

void posix_serial_close(posix_serial_t *s)
{
    if (s->owns_fd && s->rx_fd >= 0) {
        close(s->rx_fd);
    }
    if (s->pty_slave_fd >= 0) {
        close(s->pty_slave_fd);
        s->pty_slave_fd = -1;
    }
    s->rx_fd = s->tx_fd = -1;
    s->owns_fd = 0;
}

static void write_all(posix_serial_t *s, const uint8_t *data, size_t n)
{
    if (s->tx_errno != 0)
        return; /* link already dead: the main loop reports it and exits */
    while (n > 0) {
        ssize_t w = write(s->tx_fd, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            s->tx_errno = errno;
            return;
        }
        if (w == 0) {
            s->tx_errno = EIO;
            return;
        }
        data += (size_t)w;
        n -= (size_t)w;
        s->tx_bytes += (uint64_t)w;
    }
}

/* Frames are collected and written with one write() per batch (posix_serial_flush), so a
 * COMMAND and its TELEMETRY reach the harness together: one wake-up instead of two. */
static void serial_tx(void *user, const uint8_t *data, size_t n)
{
    posix_serial_t *s = (posix_serial_t *)user;
    if (s->tx_len + n > sizeof s->tx_buf) {
        posix_serial_flush(s);
        if (n > sizeof s->tx_buf) {
            write_all(s, data, n);
            return;
        }
    }
    memcpy(s->tx_buf + s->tx_len, data, n);
    s->tx_len += n;
}

void posix_serial_flush(posix_serial_t *s)
{
    if (s->tx_len > 0) {
        write_all(s, s->tx_buf, s->tx_len);
        s->tx_len = 0;
    }
}

static uint64_t serial_now_us(void *user)
{
    struct timespec ts;
    (void)user;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void posix_serial_hal(posix_serial_t *s, fsw_hal_t *hal)
{
    hal->user = s;
    hal->tx = serial_tx;
    hal->now_us = serial_now_us;
}
