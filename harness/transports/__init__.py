"""Transports: how bytes reach the flight code. One small module per kind, one interface.

Like pyserial's URL handlers: ``open_transport(url)`` picks the module by scheme.

* ``loopback://[SRC_DIR]``: the C flight code built in-process with cffi (harness/targets/loopback.py)
* ``/dev/ttyACM0``, ``/dev/pts/N``, ``socket://HOST:PORT``, ``rfc2217://HOST:PORT``, ``loop://``:
  anything ``serial.serial_for_url`` opens (harness/transports/serial_port.py)
"""
from __future__ import annotations

from harness.transports.base import Transport, TransportClosed, TransportError

__all__ = ["Transport", "TransportClosed", "TransportError", "open_transport"]


def open_transport(url: str, **options) -> Transport:
    """Open a transport from a URL (see module docstring)."""
    if url.startswith("loopback://") or url == "loopback":
        from harness.transports.loopback import LoopbackTransport

        src = url[len("loopback://"):] if url.startswith("loopback://") else ""
        return LoopbackTransport(src or None, **options)
    from harness.transports.serial_port import SerialTransport

    return SerialTransport(url, **options)
