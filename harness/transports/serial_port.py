"""Serial transports through pyserial's ``serial_for_url``: tty paths, ptys, socket://, rfc2217://."""
from __future__ import annotations

import select
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

    @classmethod
    def from_port(cls, port, name: str | None = None) -> "SerialTransport":
        """Wrap an already open pyserial port (e.g. the one that saw QEMU's boot banner)."""
        self = cls.__new__(cls)
        self.port = port
        self.name = name or port.name or "serial"
        port.timeout = 0
        sock = getattr(port, "_socket", None)
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def describe(self) -> str:
        return self.name

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(f"{self.name}: write failed, device gone? ({exc})") from exc

    def read(self, timeout_s: float = 0.0) -> bytes:
        """Wait up to ``timeout_s`` for the first byte, then return everything that is there.

        Waits with select() on the tty fd or socket (pyserial's ``read(n)`` blocks for all n
        bytes, and changing its ``timeout`` reconfigures the tty on every call).
        """
        try:
            sock = getattr(self.port, "_socket", None)
            waitable = sock if sock is not None else self._fileno()
            if waitable is None:  # rfc2217://, loop://: no fd to select on
                self.port.timeout = timeout_s
                first = self.port.read(1)
                more = self.port.in_waiting if first else 0
                return first + self.port.read(more) if more else first
            ready, _, _ = select.select([waitable], [], [], timeout_s)
            if not ready:
                return b""
            if sock is not None:
                data = sock.recv(65536)
                if not data:
                    raise TransportClosed(f"{self.name}: connection closed by the other end")
                return data
            return self.port.read(self.port.in_waiting or 1)
        except TransportClosed:
            raise
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
