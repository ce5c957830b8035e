"""loopback://: the C flight code in-process through cffi, fed bytes exactly as a UART delivers them."""
from __future__ import annotations

import weakref

from harness.transports.base import Transport, TransportClosed, TransportError

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
        self._held = b""  # bytes the flight code sent that a lockstep call took and handed back
        # the lockstep contexts of the links on it (~100 kB each), while a link holds them: a rig flies
        # many runs, each with its own link
        self._locksteps: weakref.WeakSet[InProcessLockstep] = weakref.WeakSet()
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
        held = self._held
        n = self.lib.fsw_loopback_drain(self._lb, self._out, _DRAIN_CAP)
        if held:
            self._held = b""
            return held + self.ffi.buffer(self._out, n)[:] if n else held
        return self.ffi.buffer(self._out, n)[:] if n else b""

    def close(self) -> None:
        self._closed = True
        for lockstep in self._locksteps:  # their C calls now refuse, as write does
            lockstep.ctx.lb = self.ffi.NULL

    def in_process_lockstep(self) -> "InProcessLockstep | None":
        """The whole SENSORS -> COMMAND round in one C call (``FlightLink`` uses it), or None
        when a subclass changes what ``write`` or ``read`` do (their bytes must then go through
        them)."""
        cls = type(self)
        if cls.write is not LoopbackTransport.write or cls.read is not LoopbackTransport.read:
            return None
        lockstep = InProcessLockstep(self)
        self._locksteps.add(lockstep)
        return lockstep


class InProcessLockstep:
    """One lockstep cycle of the loopback rig in C (``harness/targets/loopback_link.[ch]``).

    ``call(ctx, packet, n)``, with ``packet`` the SENSORS header + body the harness packed,
    frames it with the project's C codec, feeds it to the flight code's own byte input, drains
    its answer and checks it. It returns 1 when the answer is the regular one; ``result`` then
    holds (little-endian, see ``loopback_link.h``) the good frames in it, the bytes sent and
    received, the TELEMETRY bytes held, and the COMMAND packet; the TELEMETRY packets are held
    in C until ``take_telemetry``. It returns 0 for any other answer (missing, late or extra
    COMMAND, a bad frame, a frame cut short, HELLO...): ``hand_back`` then returns the received
    bytes to the transport, whose next ``read`` delivers them to the Python decoder.
    """

    def __init__(self, transport: LoopbackTransport):
        ffi, lib = transport.ffi, transport.lib
        self._transport = transport
        self._ffi = ffi
        self.ctx = ffi.new("fsil_link_t *")
        lib.fsil_link_init(self.ctx, transport._lb)
        self.call = lib.fsil_link_exchange
        self.call_reading_then = lib.fsil_link_exchange_reading_then
        self.call_cycle = lib.fsil_link_cycle
        #: what fsil_link_cycle counted (``fsil_link_tally_t``: the link takes it, harness/link.py)
        self.tally = self.ctx.tally
        self.null = ffi.NULL  # no consumer of the COMMAND for call_reading_then / call_cycle
        self.result = ffi.buffer(self.ctx.result)
        self._tx, self._rx, self._tlm = self.ctx.tx, self.ctx.rx, self.ctx.tlm
        self.telemetry_packet = int(lib.FSIL_LINK_TLM_PACKET)
        #: take the TELEMETRY out of C once this many bytes are held (room for 64 more cycles' worth)
        self.telemetry_high_water = int(lib.FSIL_LINK_TLM_HIGH_WATER)

    def pointer_to(self, array) -> object:
        """A ``double *`` to a C-contiguous float64 numpy array, for ``call_reading_then`` (the array
        must stay alive while it is used)."""
        if array.dtype != "float64" or not array.flags.c_contiguous:
            raise ValueError("the IMU reading must be a C-contiguous float64 array")
        return self._ffi.from_buffer("double[]", array)  # holds the array while it lives

    def then(self, address: int, block, history, dt_s: float, n: int) -> object:
        """The ``fsil_then_t`` for ``call_reading_then``: the C function at ``address`` (a
        ``fsil_cycle_fn``) and the float64 arrays it works on (held while it lives)."""
        ffi = self._ffi
        then = ffi.new("fsil_then_t *")
        keep = (ffi.from_buffer("double[]", block), ffi.from_buffer("double[]", history))
        then.fn = ffi.cast("fsil_cycle_fn", address)
        then.block, then.history = keep
        then.rows, then.dt_s, then.n, then.done = history.shape[0], dt_s, n, -1
        self._then_keep = (then, keep)  # the arrays' buffers outlive the struct that points at them
        return then

    def refused(self, code: int) -> Exception:
        """The error of a call that returned ``code`` < 0 (nothing was fed to the flight code)."""
        if code == -2:
            return TransportClosed(f"{self._transport.name}: write after close")
        return TransportError(f"{self._transport.name}: the lockstep call cannot frame this SENSORS packet "
                              f"(code {code})")

    def tx_bytes(self) -> bytes:
        """The SENSORS frame of the last call, as fed to the flight code."""
        return self._ffi.buffer(self._tx, self.ctx.tx_len)[:]

    def rx_bytes(self) -> bytes:
        """Every byte the flight code sent during the last call."""
        return self._ffi.buffer(self._rx, self.ctx.rx_len)[:]

    def hand_back(self) -> None:
        """After a call that returned 0: the next ``read`` of the transport starts with its bytes."""
        self._transport._held += self.rx_bytes()

    def take_telemetry(self) -> list[bytes]:
        """The TELEMETRY packets held (header + body + CRC, checked), in arrival order, back to back
        in one bytes object (``[]`` when none is held; not cut into packets: nothing needs them
        one by one); C's buffer emptied."""
        n = self.ctx.tlm_len
        if not n:
            return []
        data = self._ffi.buffer(self._tlm, n)[:]
        self.ctx.tlm_len = 0
        return [data]
