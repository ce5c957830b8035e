"""loopback://: the C flight code in-process through cffi, fed bytes exactly as a UART delivers them."""
from __future__ import annotations

from harness.transports.base import Transport, TransportClosed

_DRAIN_CAP = 16384


class LoopbackTransport(Transport):
    """In-process flight code. ``write`` runs the C parser (and, for SENSORS, one GNC cycle)."""

    synchronous = True

    def __init__(self, source_dir=None):
        from harness.targets import load_flight_code

        self.ffi, self.lib = load_flight_code(source_dir)
        self._mem = self.ffi.new("uint8_t[]", self.lib.fsw_loopback_size())
        self._lb = self.ffi.cast("fsw_loopback_t *", self._mem)
        self._out = self.ffi.new("uint8_t[]", _DRAIN_CAP)
        self._closed = False
        self.name = f"loopback://{source_dir or ''}"
        self.lib.fsw_loopback_init(self._lb)  # boots the flight code: HELLO is queued

    def write(self, data: bytes) -> None:
        if self._closed:
            raise TransportClosed(f"{self.name}: write after close")
        self.lib.fsw_loopback_feed(self._lb, data, len(data))

    def read(self, timeout_s: float = 0.0) -> bytes:
        if self._closed:
            raise TransportClosed(f"{self.name}: read after close")
        n = self.lib.fsw_loopback_drain(self._lb, self._out, _DRAIN_CAP)
        return self.ffi.buffer(self._out, n)[:] if n else b""

    def close(self) -> None:
        self._closed = True
