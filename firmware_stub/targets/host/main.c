/*
 * main.c - host flight program: the portable flight code on a POSIX tty.
 *
 *   fsw_host [--baud N] [--quiet] TTY     (a pty slave or a serial device)
 *   fsw_host --stdio                      (frames on stdin/stdout)
 *   fsw_host --pty                        (creates a pty, prints "fsw_host: pty PATH" on
 *                                          stderr; the harness opens PATH like a serial port)
 *
 * Only protocol frames are written to the serial line; diagnostics go to
 * stderr. Exit status: 0 after end of file, hangup or SIGTERM/SIGINT (the
 * cause is printed on stderr), 1 on an I/O error, 2 on a usage error.
 */
#if !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsw_app.h"
#include "posix_serial.h"

static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig)
{
    g_stop_signal = sig;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fsw_host [--baud N] [--quiet] TTY\n"
            "       fsw_host [--quiet] --stdio\n"
            "       fsw_host [--quiet] --pty\n"
            "Runs the flight code on a tty (pty slave or serial device) speaking\n"
            "link protocol v2; diagnostics on stderr.\n");
}

int main(int argc, char **argv)
{
    static fsw_ctx_t ctx; /* the flight code's whole state */
    posix_serial_t ser;
    fsw_hal_t hal;
    const char *path = NULL;
    long baud = 0;
    int use_stdio = 0, use_pty = 0, quiet = 0, i, status = 0;
    char pty_path[128];
    struct sigaction sa;
    uint8_t buf[512];

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stdio") == 0) {
            use_stdio = 1;
        } else if (strcmp(argv[i], "--pty") == 0) {
            use_pty = 1;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "--baud") == 0 && i + 1 < argc) {
            char *end;
            baud = strtol(argv[++i], &end, 10);
            if (*end != '\0' || baud <= 0) {
                fprintf(stderr, "fsw_host: bad baud rate '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        } else if (argv[i][0] == '-' || path != NULL) {
            usage();
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (use_stdio + use_pty + (path != NULL) != 1) {
        usage();
        return 2;
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: read() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed pipe shows up as EPIPE from write() */

    if (use_pty) {
        if (posix_serial_open_pty(&ser, pty_path, sizeof pty_path) != 0)
            return 1;
        path = pty_path;
        fprintf(stderr, "fsw_host: pty %s\n", pty_path); /* the harness waits for this line */
        fflush(stderr);
    } else if (use_stdio) {
        path = "stdio";
        if (posix_serial_open_stdio(&ser) != 0)
            return 1;
    } else if (posix_serial_open(&ser, path, baud) != 0) {
        return 1;
    }
    posix_serial_hal(&ser, &hal);
    if (!quiet)
        fprintf(stderr, "fsw_host: flight code running on %s\n", path);

    fsw_init(&ctx, &hal); /* sends HELLO */
    posix_serial_flush(&ser);

    for (;;) {
        ssize_t n;
        if (ser.tx_errno != 0) {
            if (ser.tx_errno == EIO || ser.tx_errno == EPIPE) {
                fprintf(stderr, "fsw_host: hangup on %s: write failed (%s), the other end closed\n",
                        path, strerror(ser.tx_errno));
            } else {
                fprintf(stderr, "fsw_host: write to %s failed: %s\n", path, strerror(ser.tx_errno));
                status = 1;
            }
            break;
        }
        if (g_stop_signal != 0) {
            fprintf(stderr, "fsw_host: stopped by signal %d\n", (int)g_stop_signal);
            break;
        }
        n = read(ser.rx_fd, buf, sizeof buf);
        if (n > 0) {
            ser.rx_bytes += (uint64_t)n;
            fsw_rx_bytes(&ctx, buf, (size_t)n);
            posix_serial_flush(&ser);
        } else if (n == 0) {
            fprintf(stderr, "fsw_host: end of file on %s\n", path);
            break;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EIO) {
            fprintf(stderr, "fsw_host: hangup on %s: read failed (EIO), the other end closed\n", path);
            break;
        } else {
            fprintf(stderr, "fsw_host: read from %s failed: %s\n", path, strerror(errno));
            status = 1;
            break;
        }
    }
    if (!quiet)
        fprintf(stderr, "fsw_host: exiting (%llu bytes in, %llu bytes out)\n",
                (unsigned long long)ser.rx_bytes, (unsigned long long)ser.tx_bytes);
    posix_serial_close(&ser);
    return status;
}
