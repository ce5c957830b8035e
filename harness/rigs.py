"""Rigs: where the flight code runs (resource), how to talk to it (driver), how to bring it up (strategy).

A rig is a TOML file in ``rigs/`` (or any path). Tests ask for a role (``fly``), the rig
supplies the device. Four kinds ship with fsil:

==========  ==============================  =====================  ===============================
rig         resource                        driver (transport)     strategy
==========  ==============================  =====================  ===============================
loopback    in-process                      cffi byte pipe         load the cffi build
host-pty    a pseudo-terminal               pyserial on the pty    build + start the host program
qemu-m4     QEMU mps2-an386 UART0           pyserial socket://     build firmware + start QEMU
usb-mcu     /dev/ttyACM0 or VID:PID+serial  pyserial on the tty    open, DTR policy, reset, banner
==========  ==============================  =====================  ===============================

Schema (every table optional except ``[rig]``; unknown keys are errors)::

    [rig]        name, description, kind = loopback|host-pty|qemu-m4|usb-mcu, capabilities = [..]
    [flight_code] source_dir = "firmware_stub"         (relative to the rig file's repository)
    [port]       path = "/dev/ttyACM0" | vid = 0x1209, pid = 0x0001, serial_number = "..",
                 baud = 115200, exclusive = true, dtr = true, rts = false,
                 reset = "none"|"dtr-pulse"|"rts-pulse", boot_delay_s = 0.5, reconnect_s = 10
    [qemu]       attach = "socket"|"pty", machine = "mps2-an386"
    [timing]     pacing = "lockstep"|"realtime", cycle_timeout_s, stall_cycles, hello_timeout_s,
                 test_timeout_s (pytest-timeout default for tests on this rig)
"""
from __future__ import annotations

import os
import shutil
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, FsilError

REPO = Path(__file__).resolve().parent.parent
KINDS = ("loopback", "host-pty", "qemu-m4", "usb-mcu")
PACINGS = ("lockstep", "realtime")
RESETS = ("none", "dtr-pulse", "rts-pulse")

_SCHEMA: dict[str, dict[str, tuple]] = {
    "rig": {"name": (str,), "description": (str,), "kind": (str,), "capabilities": (list,)},
    "flight_code": {"source_dir": (str,), "params": (dict,)},
    "port": {"path": (str,), "vid": (int,), "pid": (int,), "serial_number": (str,), "baud": (int,),
             "exclusive": (bool,), "dtr": (bool,), "rts": (bool,), "reset": (str,), "boot_delay_s": (int, float),
             "reconnect_s": (int, float)},
    "qemu": {"attach": (str,), "machine": (str,)},
    "timing": {"pacing": (str,), "cycle_timeout_s": (int, float), "stall_cycles": (int,),
               "hello_timeout_s": (int, float), "test_timeout_s": (int, float)},
}


class RigError(FsilError):
    """A rig could not be brought up; the message names the rig and the cause."""


@dataclass(frozen=True)
class PortSpec:
    """Where a serial device is: a path, or a USB VID:PID (+ serial number) found by enumeration."""

    path: str | None = None
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    baud: int = 115200
    exclusive: bool = True
    dtr: bool | None = True
    rts: bool | None = False
    reset: str = "none"
    boot_delay_s: float = 0.0
    reconnect_s: float = 10.0

    def describe(self) -> str:
        if self.vid is not None:
            sn = f" serial {self.serial_number}" if self.serial_number else ""
            return f"USB {self.vid:04x}:{self.pid:04x}{sn}"
        return self.path or "?"


@dataclass(frozen=True)
class RigSpec:
    name: str
    kind: str
    description: str = ""
    capabilities: tuple[str, ...] = ()
    source_dir: Path | None = None
    flight_params: dict = field(default_factory=dict)
    port: PortSpec = field(default_factory=PortSpec)
    qemu_attach: str = "socket"
    pacing: str = "lockstep"
    cycle_timeout_s: float = 2.0
    stall_cycles: int = 25
    hello_timeout_s: float = 10.0
    test_timeout_s: float = 300.0
    path: Path | None = None

    def requirements(self) -> list[str]:
        """What this rig needs that is missing here (tools, ports); empty when ready."""
        missing = []
        if self.kind in ("loopback", "host-pty") and not shutil.which(os.environ.get("CC", "cc")) \
                and not shutil.which("gcc"):
            missing.append("a C compiler (cc or gcc) to build the flight code")
        if self.kind == "qemu-m4":
            from harness.targets import missing_tools

            missing += [f"{t} (Debian package {_DEBIAN.get(t, t)})" for t in missing_tools("qemu")]
        if self.kind == "usb-mcu":
            try:
                find_port(self.port)
            except RigError as exc:
                missing.append(str(exc))
        return missing


_DEBIAN = {"qemu-system-arm": "qemu-system-arm", "arm-none-eabi-gcc": "gcc-arm-none-eabi",
           "newlib": "libnewlib-arm-none-eabi"}


# Loading --------------------------------------------------------------------------------
def rig_search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("FSIL_RIG_PATH", "").split(os.pathsep) if p]
    return extra + [Path.cwd() / "rigs", REPO / "rigs"]


def available_rigs() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in rig_search_path():
        for f in sorted(d.glob("*.toml")) if d.is_dir() else ():
            found.setdefault(f.stem, f)
    return found


def load_rig(name_or_path: str | Path) -> RigSpec:
    """A rig by name (a file ``NAME.toml`` on the rig search path) or by path to a TOML file."""
    p = Path(name_or_path)
    if p.suffix != ".toml":
        rigs = available_rigs()
        if str(name_or_path) not in rigs:
            raise ConfigError(f"unknown rig {name_or_path!r}; known: {', '.join(sorted(rigs)) or 'none'} "
                              f"(searched {', '.join(str(d) for d in rig_search_path())})")
        p = rigs[str(name_or_path)]
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read rig file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return rig_from_dict(data, p)


def _check(data: dict, src: Path) -> None:
    for table, body in data.items():
        if table not in _SCHEMA:
            raise ConfigError(f"{src}: unknown table [{table}]; allowed: {', '.join('[' + t + ']' for t in _SCHEMA)}")
        if not isinstance(body, dict):
            raise ConfigError(f"{src}: [{table}] must be a table")
        for key, value in body.items():
            if key not in _SCHEMA[table]:
                raise ConfigError(f"{src}: unknown key {table}.{key}; allowed: {', '.join(_SCHEMA[table])}")
            types = _SCHEMA[table][key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ConfigError(f"{src}: {table}.{key} = {value!r} must be "
                                  f"{' or '.join(t.__name__ for t in types)}")


def _choice(src, key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{src}: {key} = {value!r}; allowed: {', '.join(allowed)}")
    return value


def _positive(src, key, value):
    if value <= 0:
        raise ConfigError(f"{src}: {key} = {value} must be > 0")
    return value


def rig_from_dict(data: dict, src: Path | str = "<memory>") -> RigSpec:
    src = Path(src)
    _check(data, src)
    rig = data.get("rig")
    if not rig or "kind" not in rig:
        raise ConfigError(f"{src}: missing rig.kind; allowed: {', '.join(KINDS)}")
    kind = _choice(src, "rig.kind", rig["kind"], KINDS)
    port_d = data.get("port", {})
    port = PortSpec(
        path=port_d.get("path"), vid=port_d.get("vid"), pid=port_d.get("pid"),
        serial_number=port_d.get("serial_number"), baud=_positive(src, "port.baud", port_d.get("baud", 115200)),
        exclusive=port_d.get("exclusive", True), dtr=port_d.get("dtr", True), rts=port_d.get("rts", False),
        reset=_choice(src, "port.reset", port_d.get("reset", "none"), RESETS),
        boot_delay_s=float(port_d.get("boot_delay_s", 0.0)), reconnect_s=float(port_d.get("reconnect_s", 10.0)))
    if kind == "usb-mcu" and port.path is None and port.vid is None:
        raise ConfigError(f"{src}: a usb-mcu rig needs port.path or port.vid + port.pid")
    if (port.vid is None) != (port.pid is None):
        raise ConfigError(f"{src}: port.vid and port.pid go together")
    timing = data.get("timing", {})
    fc = data.get("flight_code", {})
    source_dir = None
    if "source_dir" in fc:
        source_dir = Path(fc["source_dir"])
        if not source_dir.is_absolute():
            source_dir = (src.parent.parent if src.parent.name == "rigs" else src.parent) / source_dir
        if not (source_dir / "fsw_params.def").exists():
            raise ConfigError(f"{src}: flight_code.source_dir {source_dir} holds no fsw_params.def")
    return RigSpec(
        name=rig.get("name", src.stem), kind=kind, description=rig.get("description", ""),
        capabilities=tuple(rig.get("capabilities", ())), source_dir=source_dir, port=port,
        flight_params=_rig_params(src, fc.get("params", {}), source_dir),
        qemu_attach=_choice(src, "qemu.attach", data.get("qemu", {}).get("attach", "socket"), ("socket", "pty")),
        pacing=_choice(src, "timing.pacing", timing.get("pacing", "lockstep"), PACINGS),
        cycle_timeout_s=_positive(src, "timing.cycle_timeout_s", float(timing.get("cycle_timeout_s", 2.0))),
        stall_cycles=_positive(src, "timing.stall_cycles", int(timing.get("stall_cycles", 25))),
        hello_timeout_s=_positive(src, "timing.hello_timeout_s", float(timing.get("hello_timeout_s", 10.0))),
        test_timeout_s=_positive(src, "timing.test_timeout_s", float(timing.get("test_timeout_s", 300.0))),
        path=src)


def _rig_params(src, params: dict, source_dir) -> dict:
    from harness.params import check_params, load_param_table

    for k, v in params.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ConfigError(f"{src}: flight_code.params.{k} = {v!r} must be a number")
    check_params(params, load_param_table(source_dir), str(src))
    return dict(params)


# USB port matching ----------------------------------------------------------------------
def list_ports():
    """Serial ports as pyserial enumerates them (``ListPortInfo``: device, vid, pid, serial_number)."""
    from serial.tools import list_ports as lp

    return list(lp.comports())


def find_port(spec: PortSpec, ports=None) -> str:
    """Device path of the port a PortSpec names. VID:PID (+ serial number) is matched against the
    enumeration, so a board that re-enumerates under a new node is found again.

    ``ports``: the enumeration to search (a list, or a callable returning one); default pyserial's.
    """
    if spec.vid is None:
        if spec.path and os.path.exists(spec.path):
            return spec.path
        raise RigError(f"serial port {spec.path} not present (is the board plugged in? "
                       f"`python -m serial.tools.list_ports -v` lists what is)")
    ports = list_ports() if ports is None else (ports() if callable(ports) else ports)
    hits = [p for p in ports if p.vid == spec.vid and p.pid == spec.pid
            and (spec.serial_number is None or p.serial_number == spec.serial_number)]
    if not hits:
        seen = ", ".join(f"{p.device} ({p.vid or 0:04x}:{p.pid or 0:04x} {p.serial_number or ''})" for p in ports)
        raise RigError(f"no serial port matches {spec.describe()}; present: {seen or 'none'}")
    if len(hits) > 1:
        raise RigError(f"{len(hits)} ports match {spec.describe()} ({', '.join(p.device for p in hits)}): "
                       f"set port.serial_number to choose one")
    return hits[0].device


# Bringing a rig up ----------------------------------------------------------------------
class Rig:
    """A brought-up rig: its spec, an open transport to the flight code, and how to take it down."""

    def __init__(self, spec: RigSpec, transport, teardown=(), diagnose=None):
        self.spec = spec
        self.name = spec.name
        self.transport = transport
        self._teardown = list(teardown)
        if diagnose is not None:
            transport.diagnose = diagnose

    def fly(self, scenario, **kwargs):
        """Fly a scenario with this rig's pacing and time-outs (keyword arguments override)."""
        from harness.runner import fly

        opts = {"rig": self.name, "pacing": self.spec.pacing, "cycle_timeout_s": self.spec.cycle_timeout_s,
                "stall_cycles": self.spec.stall_cycles, "hello_timeout_s": self.spec.hello_timeout_s,
                "source_dir": self.spec.source_dir}
        opts.update(kwargs)
        if self.spec.flight_params:  # the rig's settings (e.g. telemetry decimation); the scenario's win
            scenario = scenario.with_(flight_params={**self.spec.flight_params, **scenario.flight_params})
        return fly(scenario, self.transport, **opts)

    def close(self) -> None:
        try:
            self.transport.close()
        finally:
            for fn in reversed(self._teardown):
                fn()
            self._teardown.clear()


def _bring_up_loopback(spec: RigSpec) -> Rig:
    from harness.transports.loopback import LoopbackTransport

    return Rig(spec, LoopbackTransport(spec.source_dir))


def _bring_up_host_pty(spec: RigSpec) -> Rig:
    from harness.targets import describe_exit, start_host_program_pty, stop_process
    from harness.transports.serial_port import SerialTransport

    proc, pty_path = start_host_program_pty(src_dir=spec.source_dir)

    def down():
        stop_process(proc)
        try:
            os.unlink(proc.stderr_path)
        except OSError:
            pass

    try:
        transport = SerialTransport(pty_path, baudrate=spec.port.baud, exclusive=True)
    except Exception:
        down()
        raise
    transport.name = f"host flight program on {pty_path}"

    def diagnose() -> str:
        rc = proc.poll()
        state = describe_exit(proc, "host flight program") if rc is not None else \
            f"host flight program (pid {proc.pid}) still running"
        try:
            err = Path(proc.stderr_path).read_text(errors="replace").strip()[-800:]
        except OSError:
            err = ""
        return state + (f"; its stderr: {err}" if err else "")

    rig = Rig(spec, transport, teardown=[down], diagnose=diagnose)
    rig.process = proc
    return rig


def _bring_up_qemu(spec: RigSpec) -> Rig:
    from harness.targets import build_qemu_firmware, describe_exit, start_qemu
    from harness.transports.serial_port import SerialTransport

    target = start_qemu(build_qemu_firmware(spec.source_dir), attach=spec.qemu_attach, keep_open=True)
    transport = SerialTransport.from_port(target.serial, name=f"QEMU mps2-an386 UART0 at {target.url}")
    target.serial = None  # the transport owns it now

    def diagnose() -> str:
        if target.alive():
            return f"QEMU (pid {target.process.pid}) still running"
        return f"QEMU {describe_exit(target.process, 'qemu-system-arm')}; stderr: {target.stderr().strip()[-800:]}"

    rig = Rig(spec, transport, teardown=[target.close], diagnose=diagnose)
    rig.process = target.process
    return rig


def _bring_up_usb(spec: RigSpec, ports=None) -> Rig:
    """Open the board's port (by path or VID:PID), apply the DTR/RTS policy, reset it if asked
    (re-finding it by VID:PID when it re-enumerates), wait the boot delay. The runner then
    waits for the HELLO banner."""
    port = spec.port
    transport = reconnect_usb(spec, ports, timeout_s=0.0)
    if port.reset != "none":
        line = "dtr" if port.reset == "dtr-pulse" else "rts"
        setattr(transport.port, line, False)
        time.sleep(0.05)
        setattr(transport.port, line, True)
        if port.vid is not None:
            transport.close()
            time.sleep(0.1)
            transport = reconnect_usb(spec, ports)
    if port.boot_delay_s:
        time.sleep(port.boot_delay_s)
    return Rig(spec, transport, diagnose=lambda: f"board {port.describe()} on {transport.name}: "
                                                 f"{'present' if _present(transport.name) else 'gone (unplugged or reset?)'}")


def _present(device: str) -> bool:
    return os.path.exists(device)


def reconnect_usb(spec: RigSpec, ports=None, timeout_s: float | None = None):
    """Wait until the board named by ``spec.port`` is enumerated again and open it (a transport)."""
    from harness.transports.serial_port import SerialTransport

    port = spec.port
    deadline = time.monotonic() + (port.reconnect_s if timeout_s is None else timeout_s)
    last = None
    while True:
        try:
            device = find_port(port, ports)
            return SerialTransport(device, baudrate=port.baud, exclusive=port.exclusive, dtr=port.dtr, rts=port.rts)
        except FsilError as exc:
            last = exc
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    if timeout_s == 0:
        raise RigError(f"{spec.name}: {last}")
    raise RigError(f"{spec.name}: {port.describe()} not back within "
                   f"{port.reconnect_s if timeout_s is None else timeout_s} s ({last})")


_BRING_UP = {"loopback": _bring_up_loopback, "host-pty": _bring_up_host_pty, "qemu-m4": _bring_up_qemu,
             "usb-mcu": _bring_up_usb}


@contextmanager
def open_rig(rig: str | Path | RigSpec = "loopback"):
    """Bring a rig up, yield it (``.transport``, ``.fly(scenario)``), take it down."""
    spec = rig if isinstance(rig, RigSpec) else load_rig(rig)
    missing = spec.requirements() if spec.kind != "usb-mcu" else []
    if missing:
        raise RigError(f"rig {spec.name} cannot start here: missing {'; '.join(missing)}")
    up = _BRING_UP[spec.kind](spec)
    try:
        yield up
    finally:
        up.close()
