"""Serial transports through pyserial's ``serial_for_url``: tty paths, ptys, socket://, rfc2217://."""
from __future__ import annotations

import socket

import serial

from harness.transports.base import Transport, TransportClosed, TransportError


class SerialTransport(Transport):
    """A serial device or serial-over-network URL.

    For ``socket://`` the client socket gets TCP_NODELAY (pyserial does not set it): without it
    Nagle plus delayed ACK turn a 3 ms frame exchange into about 44 ms.
    """

    def __init__(self, url: str, baudrate: int = 115200, exclusive: bool | None = None,
                 dtr: bool | None = None, rts: bool | None = None):
        self.name = url
        kwargs = {"baudrate": baudrate, "timeout": 0, "write_timeout": 5.0}
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
        sock = getattr(self.port, "_socket", None)
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(f"{self.name}: write failed, device gone? ({exc})") from exc

    def read(self, timeout_s: float = 0.0) -> bytes:
        try:
            waiting = self.port.in_waiting
            if waiting:
                return self.port.read(waiting)
            self.port.timeout = timeout_s
            first = self.port.read(1)
            if not first:
                return b""
            more = self.port.in_waiting
            return first + self.port.read(more) if more else first
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(f"{self.name}: read failed, the other end closed or the device vanished "
                                  f"({exc})") from exc

    def close(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
