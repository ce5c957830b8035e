"""The one interface every transport implements."""
from __future__ import annotations

import abc

from harness.errors import FsilError


class TransportError(FsilError):
    """The transport failed; the message names the device and the cause."""


class TransportClosed(TransportError):
    """The other end went away (pty closed, process killed, QEMU died, USB unplugged)."""


class Transport(abc.ABC):
    """A byte pipe to the flight code.

    ``synchronous`` is True when every byte the flight code sends in answer to a write is
    available to the next ``read`` (the in-process loopback): the link then never waits.
    """

    name: str = "transport"
    synchronous: bool = False
    #: True once the answer to the last SENSORS written cannot come: the transport itself (the
    #: link-fault layer) dropped, held back or altered that SENSORS or its COMMAND. The link then
    #: counts the COMMAND lost at once instead of waiting its cycle time-out for it.
    answer_lost: bool = False
    #: set by the rig: ``() -> str`` saying what became of the far end (process exit status, ...)
    diagnose = None

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send all of ``data``."""

    @abc.abstractmethod
    def read(self, timeout_s: float) -> bytes:
        """Bytes received, waiting up to ``timeout_s`` for the first one; b"" on time-out.

        Raises TransportClosed when the other end is gone.
        """

    def close(self) -> None:
        """Release the device. Idempotent."""

    def describe(self) -> str:
        return self.name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
