"""Serial transports through pyserial's ``serial_for_url``: tty paths, ptys, socket://, rfc2217://.

pyserial opens and configures the device (termios, exclusive lock, DTR/RTS); the bytes of the
lockstep loop then go straight through the file descriptor (or socket): one ``write`` per frame
and one ``poll`` + one ``read`` per wake-up. pyserial's own ``write`` waits in a ``select`` after
every write, and its ``read(n)`` costs a ``select`` per call plus the ``in_waiting`` ioctl: four
extra system calls per cycle, a tenth of a pty round trip (benchmarks/bench_rigs.py).
"""
from __future__ import annotations

import math
import os
import select
import socket
import time

import serial

from harness.transports.base import Transport, TransportClosed, TransportError

_READ_SIZE = 65536  # more than the kernel buffers of a pty (4 KiB) or a socket hold in one read
_POLLIN = select.POLLIN | select.POLLPRI


def _poll_ms(timeout_s: float) -> int:
    """poll()'s time-out in whole milliseconds, rounded up (never a shorter wait than asked)."""
    return math.ceil(timeout_s * 1000.0) if timeout_s > 0 else 0


class SerialTransport(Transport):
    """A serial device or serial-over-network URL.

    For ``socket://`` the client socket gets TCP_NODELAY (pyserial does not set it): without it
    Nagle plus delayed ACK turn a 3 ms frame exchange into about 44 ms.
    """

    def __init__(self, url: str, baudrate: int = 115200, exclusive: bool | None = None,
                 dtr: bool | None = None, rts: bool | None = None, write_timeout_s: float = 5.0):
        self.name = url
        kwargs = {"baudrate": baudrate, "timeout": 0, "write_timeout": write_timeout_s}
        if exclusive is not None and not url.startswith(("socket://", "rfc2217://", "loop://")):
            kwargs["exclusive"] = exclusive
        try:
            self.port = serial.serial_for_url(url, do_not_open=True, **kwargs)
            if dtr is not None:
                self.port.dtr = dtr
            if rts is not None:
                self.port.rts = rts
            self.port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open {url}: {exc}") from exc
        self._attach(write_timeout_s)

    @classmethod
    def from_port(cls, port, name: str | None = None, write_timeout_s: float = 5.0) -> "SerialTransport":
        """Wrap an already open pyserial port (e.g. the one that saw QEMU's boot banner)."""
        self = cls.__new__(cls)
        self.port = port
        self.name = name or port.name or "serial"
        port.timeout = 0
        self._attach(write_timeout_s)
        return self

    def _attach(self, write_timeout_s: float) -> None:
        """Find the descriptor the bytes go through: the tty fd, the socket, or none (pyserial's
        rfc2217:// and loop:// have no fd: their reads and writes stay pyserial's)."""
        self.write_timeout_s = write_timeout_s
        sock = getattr(self.port, "_socket", None)
        self._sock = sock if isinstance(sock, socket.socket) else None
        self._fd: int | None = None
        if self._sock is not None:
            if self._sock.family in (socket.AF_INET, socket.AF_INET6):
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock.setblocking(False)
            waitable = self._sock.fileno()
        else:
            waitable = self._fileno()
            if waitable is not None:
                os.set_blocking(waitable, False)  # pyserial opens ttys O_NONBLOCK; make sure
                self._fd = waitable
        self._poller = None
        if waitable is not None:
            self._poller = select.poll()
            self._poller.register(waitable, _POLLIN)
            self._waitable = waitable

    def describe(self) -> str:
        return self.name

    # writing ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send all of ``data``: one system call when the kernel takes it whole (the usual case)."""
        try:
            if self._fd is not None:
                n = os.write(self._fd, data)
            elif self._sock is not None:
                n = self._sock.send(data)
            else:
                self.port.write(data)
                return
        except BlockingIOError:
            n = 0
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(f"{self.name}: write failed, device gone? ({exc})") from exc
        if n != len(data):
            self._write_rest(memoryview(data)[n:])

    def _write_rest(self, view: memoryview) -> None:
        """The part of a write the kernel did not take at once: wait until the device drains,
        at most ``write_timeout_s`` in all."""
        waitable = self._fd if self._fd is not None else self._sock.fileno()
        out = select.poll()
        out.register(waitable, select.POLLOUT)
        deadline = time.monotonic() + self.write_timeout_s
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportClosed(f"{self.name}: write failed, device gone? (write blocked for "
                                      f"{self.write_timeout_s:g} s with {len(view)} bytes unsent: the other "
                                      f"end does not read)")
            try:
                out.poll(_poll_ms(min(left, 0.05)))
                n = os.write(self._fd, view) if self._fd is not None else self._sock.send(view)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise TransportClosed(f"{self.name}: write failed, device gone? ({exc})") from exc
            view = view[n:]

    # reading ---------------------------------------------------------------------------
    def read(self, timeout_s: float = 0.0) -> bytes:
        """Wait up to ``timeout_s`` for the first byte, then return everything that is there.

        poll() first, then one read of all that is buffered. (Not a read first: pyserial leaves
        a tty at VMIN 0, VTIME 0, where a read that finds nothing returns 0 bytes like an end of
        file would; after poll() said readable, 0 bytes is the end of file.)
        """
        if self._poller is None:
            return self._read_pyserial(timeout_s)
        try:
            if not self._poller.poll(math.ceil(timeout_s * 1000.0) if timeout_s > 0 else 0):
                return b""
            if self._fd is not None:
                data = os.read(self._fd, _READ_SIZE)
            else:
                data = self._sock.recv(_READ_SIZE)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise TransportClosed(f"{self.name}: read failed, the other end closed or the device vanished "
                                  f"({exc})") from exc
        if not data:  # end of file: the pty's other side or the socket's peer is gone
            if self._sock is not None:
                raise TransportClosed(f"{self.name}: connection closed by the other end")
            raise TransportClosed(f"{self.name}: read failed, the other end closed or the device vanished "
                                  f"(end of file)")
        return data

    def _read_pyserial(self, timeout_s: float) -> bytes:
        """rfc2217://, loop://: no descriptor to poll, pyserial waits."""
        try:
            self.port.timeout = timeout_s
            first = self.port.read(1)
            more = self.port.in_waiting if first else 0
            return first + self.port.read(more) if more else first
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(f"{self.name}: read failed, the other end closed or the device vanished "
                                  f"({exc})") from exc

    def _fileno(self):
        try:
            return self.port.fileno()
        except (AttributeError, NotImplementedError, serial.SerialException, OSError):
            return None

    def close(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
