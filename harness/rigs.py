"""Rigs: where the flight code runs and how to bring it up (extended by the rigs issue)."""
from __future__ import annotations

from contextlib import contextmanager

from harness.errors import ConfigError


class Rig:
    """A brought-up rig: a name and an open transport to its flight code."""

    def __init__(self, name: str, transport, teardown=None):
        self.name = name
        self.transport = transport
        self._teardown = teardown

    def close(self) -> None:
        self.transport.close()
        if self._teardown:
            self._teardown()


@contextmanager
def open_rig(name: str = "loopback"):
    if name != "loopback":
        raise ConfigError(f"rig {name!r}: only 'loopback' is available in this build")
    from harness.transports import open_transport

    rig = Rig("loopback", open_transport("loopback://"))
    try:
        yield rig
    finally:
        rig.close()
