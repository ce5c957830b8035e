"""Rigs: where the flight code runs (resource), how to talk to it (driver), how to bring it up (strategy).

A rig is a TOML file in ``rigs/`` (or any path). Tests ask for a role (``fly``), the rig
supplies the device. Five kinds ship with fsil:

==========  ==============================  =====================  ===============================
rig kind    resource                        driver (transport)     strategy
==========  ==============================  =====================  ===============================
loopback    in-process                      cffi byte pipe         load the cffi build
host-pty    a pseudo-terminal               pyserial on the pty    build + start the host program
qemu-m4     QEMU mps2-an386 UART0           pyserial socket://     build firmware + start QEMU
usb-mcu     /dev/ttyACM0 or VID:PID+serial  pyserial on the tty    open, DTR policy, reset, banner
program     a pty (or TCP port) fsil makes  pty master / socket    build + start YOUR program
==========  ==============================  =====================  ===============================

The rig file's schema is the pydantic model ``RigFile`` below (every key, its default, its
allowed values and the kinds that use it); docs/rigs.md is generated from it
(``python -m harness.rigs schema``). Every rig is flown through ``open_rig(...)`` and
``Rig.fly``, so its ``[timing]`` and ``[flight_code]`` settings hold on every path (CLI, demo,
scenario table, pytest fixture, campaign worker).
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import tty
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional, get_args, get_origin

from pydantic import Field

from harness.errors import ConfigError, FsilError
from harness.safetext import printable, safe_component
from harness.transports.base import Transport, TransportClosed, TransportError
from harness.validation import Model, key_text, read_toml, validate

REPO = Path(__file__).resolve().parent.parent
KINDS = ("loopback", "host-pty", "qemu-m4", "usb-mcu", "program")
PACINGS = ("lockstep", "realtime")
RESETS = ("none", "dtr-pulse", "rts-pulse")
LOST_COMMAND_POLICIES = ("hold", "engine-off", "fail")
PROCESS_KINDS = ("host-pty", "qemu-m4", "program")
REFERENCE_KINDS = ("loopback", "host-pty", "qemu-m4")  # kinds that build firmware_stub-style sources
PLACEHOLDERS = {"pty": "port", "tcp": "tcp_port"}  # program.link -> the placeholder that tells the port


class RigError(FsilError):
    """A rig could not be brought up; the message names the rig and the cause."""


# Schema ---------------------------------------------------------------------------------
# Every rig-file key is a pydantic field: type, default, bounds and ``kinds`` (which rig kinds
# read it). pydantic does the type/range/unknown-key checks (strict: no "1.0" strings taken for
# numbers, no true for 1) and ``rig_from_dict`` turns its errors into one ConfigError naming the
# file, the key and the allowed values. Times are finite and > 0 (nan and inf are refused).
def _key(default, doc: str, kinds=KINDS, **bounds):
    return Field(default, description=doc, json_schema_extra={"kinds": list(kinds)}, **bounds)


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]


class _Table(Model):
    """A rig-file table (harness.validation.Model: unknown keys refused, strict types, no NaN/inf)."""


class RigTable(_Table):
    kind: Literal["loopback", "host-pty", "qemu-m4", "usb-mcu", "program"] = _key(
        ..., "how the flight code is reached and brought up (required)")
    name: Optional[str] = _key(None, "rig name shown in verdicts and reports (letters, digits, _ . + @ -); "
                                     "default: the file name without .toml", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+@-]{0,63}$")
    description: str = _key("", "one line for `fsil rigs`")
    capabilities: list[str] = _key([], "free words tests can require with @pytest.mark.requires(...), e.g. "
                                       "hardware, deterministic, cortex-m4, reference-fsw")


class FlightCodeTable(_Table):
    source_dir: Optional[str] = _key(None, "folder of a flight-code source tree laid out like firmware_stub/ "
                                           "(sources.txt, fsw_params.def with the core ids 1-18, fsw_app.h; "
                                           "loopback also hal_loopback.h and .c; yours: docs/flight-code.md, "
                                           "\"Swapping in your own flight code\"); relative to the repository "
                                           "for files in rigs/, else to the rig file's folder; default "
                                           "firmware_stub", REFERENCE_KINDS)
    params: dict[str, FiniteNumber] = _key({}, "flight-code parameters (fsw_params.def names) the rig sends "
                                               "on every flight; a scenario's own flight_params win")


class PortTable(_Table):
    path: Optional[str] = _key(None, "device path, e.g. /dev/ttyACM0", ("usb-mcu",))
    vid: Optional[int] = _key(None, "USB vendor id (with pid: find the board by enumeration)", ("usb-mcu",),
                              ge=0, le=0xFFFF)
    pid: Optional[int] = _key(None, "USB product id", ("usb-mcu",), ge=0, le=0xFFFF)
    serial_number: Optional[str] = _key(None, "USB serial number, to choose among boards", ("usb-mcu",))
    baud: int = _key(115200, "line speed in bit/s (a pty or USB CDC ignores it)", ("host-pty", "usb-mcu"), gt=0)
    exclusive: bool = _key(True, "refuse to share the port (TIOCEXCL)", ("usb-mcu",))
    dtr: bool = _key(True, "DTR level after opening", ("usb-mcu",))
    rts: bool = _key(False, "RTS level after opening", ("usb-mcu",))
    reset: Literal["none", "dtr-pulse", "rts-pulse"] = _key("none", "reset the board on open", ("usb-mcu",))
    boot_delay_s: NonNegSeconds = _key(0.0, "wait after open/reset before expecting HELLO, s", ("usb-mcu",))
    reconnect_s: Seconds = _key(10.0, "how long to look for a board that re-enumerates after a reset, s",
                                ("usb-mcu",))


class QemuTable(_Table):
    attach: Literal["socket", "pty"] = _key("socket", "UART0 on a TCP socket (nodelay) or a pty", ("qemu-m4",))
    machine: Literal["mps2-an386"] = _key("mps2-an386", "the emulated board", ("qemu-m4",))


class TimingTable(_Table):
    pacing: Literal["lockstep", "realtime"] = _key("lockstep", "lockstep: the plant waits for each COMMAND; "
                                                               "realtime: cycles follow the wall clock")
    cycle_timeout_s: Seconds = _key(2.0, "wall time one COMMAND may take before the cycle counts as lost, s")
    stall_cycles: int = _key(25, "lost COMMANDs in a row that end the run as stalled", gt=0)
    hello_timeout_s: Seconds = _key(10.0, "wall time to wait for the flight code's HELLO, s")
    test_timeout_s: Seconds = _key(300.0, "pytest-timeout default of tests flown on this rig, s")
    lost_command: Literal["hold", "engine-off", "fail"] = _key(
        "hold", "what the plant does in a cycle whose COMMAND was lost: keep the last one, engine off, "
                "or end the run (docs/protocol.md); a scenario may override it")


class ProgramTable(_Table):
    command: list[str] = _key(..., "the program and its arguments (required); {port} is replaced by the pty "
                                   "slave path fsil creates (link = pty), {tcp_port} by the TCP port the "
                                   "program must listen on at 127.0.0.1 (link = tcp)", ("program",), min_length=1)
    cwd: Optional[str] = _key(None, "working folder of build and command, relative to the rig file's folder "
                                    "(for a file in a rigs/ folder: the folder above it); default: that folder",
                              ("program",))
    build: Optional[list[str]] = _key(None, "command run (in cwd) before every start, e.g. [\"make\"]; its "
                                            "output goes to build.log in the artefacts", ("program",),
                                      min_length=1)
    build_timeout_s: Seconds = _key(600.0, "longest the build may take, s", ("program",))
    env: dict[str, str] = _key({}, "extra environment variables ({port}/{tcp_port} are replaced here too)",
                               ("program",))
    link: Literal["pty", "tcp"] = _key("pty", "pty: fsil creates a pseudo-terminal (raw mode) and passes its "
                                              "slave path; tcp: the program listens on 127.0.0.1:{tcp_port}",
                                       ("program",))
    startup_timeout_s: Seconds = _key(10.0, "wall time for the program to open its port (pty) or accept "
                                            "the connection (tcp), s", ("program",))
    stop_timeout_s: Seconds = _key(3.0, "after SIGTERM at the end, wait this long before SIGKILL, s",
                                   ("program",))


class RigFile(_Table):
    """A whole rig file: one model per table."""

    rig: RigTable
    flight_code: FlightCodeTable = FlightCodeTable()
    port: PortTable = PortTable()
    qemu: QemuTable = QemuTable()
    timing: TimingTable = TimingTable()
    program: Optional[ProgramTable] = None


_TABLES: dict[str, type[_Table]] = {"rig": RigTable, "flight_code": FlightCodeTable, "port": PortTable,
                                    "qemu": QemuTable, "timing": TimingTable, "program": ProgramTable}


def _allowed(table: str | None, key: str | None) -> str:
    """Allowed values of a rig-file key, in words, from its schema field."""
    if table not in _TABLES:
        return "tables " + ", ".join(f"[{t}]" for t in _TABLES)
    model = _TABLES[table]
    if key not in model.model_fields:
        return f"keys of [{table}]: " + ", ".join(model.model_fields)
    return _describe_type(model.model_fields[key])


def _describe_type(info) -> str:
    ann = info.annotation
    if get_origin(ann) is Optional or (get_origin(ann) is not None and type(None) in get_args(ann)):
        ann = next(a for a in get_args(ann) if a is not type(None))
    if get_origin(ann) is Literal:
        return ", ".join(str(a) for a in get_args(ann))
    bounds = []
    metas = list(info.metadata)
    if get_origin(ann) is Annotated:
        base, *extra = get_args(ann)
        for e in extra:
            metas += list(getattr(e, "metadata", [])) or [e]
        ann = base
    for m in metas:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            v = getattr(m, attr, None)
            if v is not None:
                bounds.append(f"{sym} {v:#x}" if isinstance(v, int) and v > 255 else f"{sym} {v}")
    if ann is float or (get_origin(ann) is Annotated and get_args(ann)[0] is float):
        what = "a finite number"
    elif ann is int:
        what = "an integer"
    elif ann is bool:
        what = "true or false"
    elif ann is str:
        what = "a string"
    elif get_origin(ann) is list:
        what = "a list of strings"
    elif get_origin(ann) is dict:
        what = "a table of " + ("numbers" if table_of_numbers(ann) else "strings")
    else:
        what = str(ann)
    return what + (" " + " and ".join(bounds) if bounds else "")


def table_of_numbers(ann) -> bool:
    args = get_args(ann)
    return len(args) == 2 and (args[1] is float or get_origin(args[1]) is Annotated)


def _show(value) -> str:
    return printable(repr(value), 80)


def schema_markdown() -> str:
    """The rig-file reference table (docs/rigs.md): every key, default, allowed values, kinds."""
    lines = ["| key | default | allowed | kinds | what |", "|---|---|---|---|---|"]
    for table, model in _TABLES.items():
        for key, info in model.model_fields.items():
            default = "required" if info.is_required() else json.dumps(info.default)
            kinds = (info.json_schema_extra or {}).get("kinds", KINDS)
            kinds_s = "all" if list(kinds) == list(KINDS) else ", ".join(kinds)
            lines.append(f"| `{table}.{key}` | `{default}` | {_allowed(table, key)} | {kinds_s} | "
                         f"{info.description} |")
    return "\n".join(lines)


# The loaded rig -------------------------------------------------------------------------
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
class ProgramSpec:
    """A user's flight program: how to build it and start it (paths resolved against the rig file)."""

    command: tuple[str, ...]
    cwd: Path
    build: tuple[str, ...] | None = None
    build_timeout_s: float = 600.0
    env: tuple[tuple[str, str], ...] = ()
    link: str = "pty"
    startup_timeout_s: float = 10.0
    stop_timeout_s: float = 3.0

    def executable(self) -> str:
        """The program's path as it will be started (relative names are taken in ``cwd``)."""
        exe = self.command[0]
        return str(self.cwd / exe) if "/" in exe else exe


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
    lost_command: str = "hold"
    program: ProgramSpec | None = None
    path: Path | None = None

    def settings(self) -> dict:
        """The settings a flight on this rig uses (written as rig.json next to its artefacts)."""
        d = {"name": self.name, "kind": self.kind, "file": str(self.path) if self.path else None,
             "pacing": self.pacing, "cycle_timeout_s": self.cycle_timeout_s, "stall_cycles": self.stall_cycles,
             "hello_timeout_s": self.hello_timeout_s, "lost_command": self.lost_command,
             "flight_params": dict(self.flight_params),
             "source_dir": str(self.source_dir) if self.source_dir else None}
        if self.program is not None:
            d["program"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.program).items()}
        return d

    def requirements(self) -> list[str]:
        """What this rig needs that is missing here (tools, ports, the program); empty when ready."""
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
        if self.kind == "program":
            missing += _program_requirements(self.program)
        return missing


def _program_requirements(prog: ProgramSpec) -> list[str]:
    missing = []
    if not prog.cwd.is_dir():
        return [f"program.cwd {prog.cwd} is not a folder"]
    exe = prog.executable()
    if prog.build is not None:
        tool = prog.build[0]
        found = (prog.cwd / tool).exists() if "/" in tool else shutil.which(tool)
        if not found:
            missing.append(f"build tool {tool!r} (program.build) not found")
        return missing  # the executable is made by the build
    if "/" in exe:
        if not os.path.exists(exe):
            missing.append(f"program {exe} does not exist (and the rig has no program.build to make it)")
        elif not os.path.isfile(exe) or not os.access(exe, os.X_OK):
            missing.append(f"program {exe} is not an executable file (chmod +x?)")
    elif not shutil.which(exe):
        missing.append(f"program {exe!r} not found on PATH")
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
            raise ConfigError(f"unknown rig {printable(str(name_or_path))!r}; known: "
                              f"{', '.join(sorted(rigs)) or 'none'}, or a path to a .toml rig file "
                              f"(searched {', '.join(str(d) for d in rig_search_path())})")
        p = rigs[str(name_or_path)]
    return rig_from_dict(read_toml(p, what="rig file"), p)


def _base_dir(src: Path) -> Path:
    """Folder relative paths of a rig file are taken in: the repository for files in ``rigs/``."""
    src = Path(src).resolve() if str(src) != "<memory>" else Path.cwd() / "<memory>"
    return src.parent.parent if src.parent.name == "rigs" else src.parent


def rig_from_dict(data: dict, src: Path | str = "<memory>") -> RigSpec:
    """Validate a parsed rig file (see ``RigFile``) and resolve it into a RigSpec; ConfigError names
    the file, the key and the allowed values."""
    src = Path(src)
    doc = validate(RigFile, data, str(src))
    kind = doc.rig.kind
    # keys set in a table no kind of this rig reads are mistakes (e.g. [program] in a host-pty rig)
    for table, model in _TABLES.items():
        for key in (data.get(table) or {}):
            kinds = (model.model_fields[key].json_schema_extra or {}).get("kinds", KINDS)
            if kind not in kinds:
                raise ConfigError(f"{src}: {key_text((table, key))} is not used by kind = {kind!r}; "
                                  f"allowed: remove it (it is read by kind {', '.join(kinds)})")
    port_d = doc.port
    if kind == "usb-mcu" and port_d.path is None and port_d.vid is None:
        raise ConfigError(f"{src}: a usb-mcu rig needs [port] path, or [port] vid + pid")
    if (port_d.vid is None) != (port_d.pid is None):
        raise ConfigError(f"{src}: [port] vid and pid go together (set both or neither)")
    port = PortSpec(**port_d.model_dump())
    if port.path is not None and "://" in port.path:
        raise ConfigError(f"{src}: [port] path = {_show(port.path)} is invalid; allowed: a usb-mcu port is a device path such as "
                          f"/dev/ttyACM0, not a URL")
    source_dir = None
    if doc.flight_code.source_dir is not None:
        source_dir = Path(doc.flight_code.source_dir)
        if not source_dir.is_absolute():
            source_dir = _base_dir(src) / source_dir
        _check_source_dir(src, source_dir, kind)
    program = None
    if kind == "program":
        if doc.program is None:
            raise ConfigError(f"{src}: a program rig needs a [program] table with command = [...]; "
                              f"allowed keys: {', '.join(ProgramTable.model_fields)}")
        program = _program_spec(src, doc.program)
    return RigSpec(
        name=doc.rig.name if doc.rig.name is not None else safe_component(src.stem, what="rig file name"), kind=kind, description=doc.rig.description,
        capabilities=tuple(doc.rig.capabilities), source_dir=source_dir, port=port,
        flight_params=_rig_params(src, dict(doc.flight_code.params), source_dir),
        qemu_attach=doc.qemu.attach, pacing=doc.timing.pacing, cycle_timeout_s=doc.timing.cycle_timeout_s,
        stall_cycles=doc.timing.stall_cycles, hello_timeout_s=doc.timing.hello_timeout_s,
        test_timeout_s=doc.timing.test_timeout_s, lost_command=doc.timing.lost_command, program=program, path=src)


def _check_source_dir(src: Path, source_dir: Path, kind: str) -> None:
    """A reference-style source tree must hold what the reference build compiles; say what is missing
    now, not with a traceback at fly time."""
    if not source_dir.is_dir():
        raise ConfigError(f"{src}: [flight_code] source_dir = {source_dir} is not a folder")
    need = ["fsw_params.def", "sources.txt", "fsw_app.h"]
    if kind == "loopback":   # the in-process module's HAL and the header its cffi declarations come from
        need += ["hal_loopback.h", "hal_loopback.c"]
    lacking = [n for n in need if not (source_dir / n).is_file()]
    if not lacking:
        for line in (source_dir / "sources.txt").read_text(errors="replace").splitlines():
            name = line.split("#", 1)[0].strip()
            if name and not (source_dir / name).is_file():
                lacking.append(f"{name} (listed in sources.txt)")
    if lacking:
        raise ConfigError(
            f"{src}: [flight_code] source_dir = {source_dir} lacks {', '.join(lacking)}, which the reference "
            f"build of a {kind} rig needs (a source tree laid out like firmware_stub/: sources.txt, "
            f"fsw_params.def, fsw_app.h with the fsw_init/fsw_rx_bytes API"
            + (", hal_loopback.[ch] with the fsw_loopback_* API" if kind == "loopback" else "")
            + "; docs/flight-code.md, \"Swapping in your own flight code\"). For flight code of your own "
            f"with any other layout, use kind = \"program\" with a [program] command (docs/your-flight-code.md)")
    from harness.params import load_param_table

    try:
        load_param_table(source_dir)
    except ConfigError as exc:
        raise ConfigError(f"{src}: [flight_code] source_dir: {exc}") from None


def _program_spec(src: Path, t: ProgramTable) -> ProgramSpec:
    cwd = Path(t.cwd) if t.cwd is not None else Path(".")
    cwd = cwd if cwd.is_absolute() else (_base_dir(src) / cwd)
    wanted = PLACEHOLDERS[t.link]
    seen = set()
    for where, texts in (("[program] command", t.command), ("[program] env", list(t.env.values()))):
        for text in texts:
            try:
                names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise ConfigError(f"{src}: {where}: {_show(text)}: {exc} (write {{{{ and }}}} for literal "
                                  f"braces)") from None
            bad = names - set(PLACEHOLDERS.values())
            if bad:
                raise ConfigError(f"{src}: {where}: unknown placeholder {{{sorted(bad)[0]}}} in {_show(text)}; "
                                  f"allowed: {{port}} (link = \"pty\"), {{tcp_port}} (link = \"tcp\")")
            seen |= names
    if wanted not in seen:
        raise ConfigError(f"{src}: [program] command never tells the program its port: with link = "
                          f"{t.link!r} put {{{wanted}}} in [program] command (or env)")
    other = (seen & set(PLACEHOLDERS.values())) - {wanted}
    if other:
        raise ConfigError(f"{src}: [program] command uses {{{other.pop()}}} but [program] link = {t.link!r} "
                          f"(allowed placeholder: {{{wanted}}})")
    return ProgramSpec(command=tuple(t.command), cwd=cwd, build=tuple(t.build) if t.build else None,
                       build_timeout_s=t.build_timeout_s, env=tuple(sorted(t.env.items())), link=t.link,
                       startup_timeout_s=t.startup_timeout_s, stop_timeout_s=t.stop_timeout_s)


def _rig_params(src, params: dict, source_dir) -> dict:
    from harness.params import check_params, load_param_table

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
    """A brought-up rig: its spec, an open transport to the flight code, and how to take it down.

    ``logs``: name -> file of what the far end wrote (build output, stdout, stderr); copied into
    the artefact folder of every flight (again at close, so the end of the files is kept too).
    """

    def __init__(self, spec: RigSpec, transport, teardown=(), diagnose=None, logs=None, cleanup=()):
        self.spec = spec
        self.name = spec.name
        self.transport = transport
        self._teardown = list(teardown)
        self._cleanup = list(cleanup)
        self.logs: dict[str, Path] = dict(logs or {})
        self._artifact_dirs: list[Path] = []
        self.diagnose = diagnose
        if diagnose is not None:
            transport.diagnose = diagnose

    def fly(self, scenario, artifacts=None, **kwargs):
        """Fly a scenario with this rig's pacing, time-outs, lost-command policy and flight-code
        parameters (keyword arguments override them; the scenario's own flight_params win over the
        rig's). The only place fsil calls ``harness.runner.fly``."""
        from harness.runner import fly

        opts = {"rig": self.name, "pacing": self.spec.pacing, "cycle_timeout_s": self.spec.cycle_timeout_s,
                "stall_cycles": self.spec.stall_cycles, "hello_timeout_s": self.spec.hello_timeout_s,
                "source_dir": self.spec.source_dir, "lost_command": self.spec.lost_command}
        opts.update(kwargs)
        if self.spec.flight_params:  # the rig's settings (e.g. telemetry decimation); the scenario's win
            scenario = scenario.with_(flight_params={**self.spec.flight_params, **scenario.flight_params})
        res = fly(scenario, self.transport, artifacts=artifacts, **opts)
        settings = self.spec.settings()
        settings.update({k: v for k, v in opts.items() if k in settings and k != "source_dir"})
        res.rig_settings = settings
        if artifacts:
            folder = Path(artifacts)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "rig.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
            self._artifact_dirs.append(folder)
            self._copy_logs()
        return res

    def _copy_logs(self) -> None:
        for folder in self._artifact_dirs:
            for name, path in self.logs.items():
                try:
                    shutil.copyfile(path, folder / name)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.transport.close()
        finally:
            try:
                for fn in reversed(self._teardown):
                    fn()
            finally:
                self._teardown.clear()
                self._copy_logs()
                for fn in reversed(self._cleanup):
                    fn()
                self._cleanup.clear()


# The far end: exit status, signal, stopped -------------------------------------------------
def _proc_state_letter(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, D, T, t, Z, ...), None without /proc or process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:][:1] or None


def _stop_signal(proc: subprocess.Popen) -> str:
    """Name of the signal that stopped ``proc`` (asked once with waitpid(WUNTRACED), then remembered)."""
    sig = getattr(proc, "_fsil_stop_signal", None)
    if sig is None:
        try:
            pid, status = os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED)
        except ChildProcessError:
            pid, status = 0, 0
        if pid and os.WIFSTOPPED(status):
            sig = signal.Signals(os.WSTOPSIG(status)).name
        elif pid:  # it ended between the two looks: keep its status for Popen
            proc.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            return ""
        else:
            sig = "SIGSTOP"  # stopped, its stop already reported once; SIGSTOP is what a debugger/kill sends
        proc._fsil_stop_signal = sig  # type: ignore[attr-defined]
    return sig


def process_state(proc: subprocess.Popen, name: str, wait_s: float = 1.0) -> str:
    """What became of a far-end process, exactly: 'NAME (pid N) exited with status 3', '... was killed
    by SIGKILL', '... is stopped (SIGSTOP)', or '... is still running'. An exit in progress (SIGKILL
    just sent) is waited for up to ``wait_s`` instead of being called "still running"."""
    from harness.targets import describe_exit

    if proc.poll() is None:
        if _proc_state_letter(proc.pid) in ("T", "t"):
            sig = _stop_signal(proc)
            if sig:
                return f"{name} (pid {proc.pid}) is stopped ({sig}); `kill -CONT {proc.pid}` resumes it"
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        if _proc_state_letter(proc.pid) in ("T", "t"):
            return f"{name} (pid {proc.pid}) is stopped ({_stop_signal(proc) or 'SIGSTOP'})"
        return f"{name} (pid {proc.pid}) is still running (alive but not answering)"
    return describe_exit(proc, name)


def stderr_tail(path, lines: int = 12, limit: int = 1500) -> str:
    """The last lines of a far end's stderr file, control bytes escaped (safetext.printable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    tail = [printable(ln, 240) for ln in text.splitlines() if ln.strip()][-lines:]
    text = " | ".join(tail)
    return text if len(text) <= limit else "..." + text[-limit:]


def _diagnosis(proc, name: str, stderr_path) -> str:
    state = process_state(proc, name)
    err = stderr_tail(stderr_path)
    return state + (f"; last stderr lines: {err}" if err else "; nothing on stderr")


def _stop(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM (and SIGCONT, so a stopped program can act on it), wait ``timeout_s``, then SIGKILL;
    reaps the process. One SIGTERM only: a second one could hit the program's own exit path."""
    if proc.poll() is not None:
        return
    try:
        proc.terminate()
        os.kill(proc.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _bring_up_loopback(spec: RigSpec) -> Rig:
    from harness.transports.loopback import LoopbackTransport

    return Rig(spec, LoopbackTransport(spec.source_dir))


def _bring_up_host_pty(spec: RigSpec) -> Rig:
    from harness.targets import start_host_program_pty
    from harness.transports.serial_port import SerialTransport

    proc, pty_path = start_host_program_pty(src_dir=spec.source_dir)

    def down():
        _stop(proc, 3.0)

    def remove():
        try:
            os.unlink(proc.stderr_path)
        except OSError:
            pass

    try:
        transport = SerialTransport(pty_path, baudrate=spec.port.baud, exclusive=True)
    except Exception:
        down()
        remove()
        raise
    transport.name = f"host flight program on {pty_path}"
    rig = Rig(spec, transport, teardown=[down], cleanup=[remove],
              diagnose=lambda: _diagnosis(proc, "host flight program", proc.stderr_path),
              logs={"fsw_host.stderr.txt": Path(proc.stderr_path)})
    rig.process = proc
    return rig


def _bring_up_qemu(spec: RigSpec) -> Rig:
    from harness.targets import build_qemu_firmware, start_qemu
    from harness.transports.serial_port import SerialTransport

    target = start_qemu(build_qemu_firmware(spec.source_dir), attach=spec.qemu_attach, keep_open=True)
    transport = SerialTransport.from_port(target.serial, name=f"QEMU mps2-an386 UART0 at {target.url}")
    target.serial = None  # the transport owns it now
    log_copy = Path(tempfile.mkstemp(prefix="qemu-", suffix=".log")[1])

    def down():
        _stop(target.process, 3.0)
        try:
            shutil.copyfile(target.stderr_path, log_copy)
        except OSError:
            pass
        target.close()

    rig = Rig(spec, transport, teardown=[down], cleanup=[lambda: log_copy.unlink(missing_ok=True)],
              diagnose=lambda: _diagnosis(target.process, "QEMU (qemu-system-arm)", target.stderr_path),
              logs={"qemu.log": log_copy})
    rig.process = target.process
    return rig


class PtyMasterTransport(Transport):
    """The harness's end of a pseudo-terminal it created for a program (raw mode, no echo).

    The harness keeps the slave open too, so a program that closes and reopens its port loses
    nothing; a program that ends is seen by polling the process when no bytes come.
    """

    def __init__(self, master_fd: int, slave_fd: int, proc: subprocess.Popen, name: str,
                 write_timeout_s: float = 5.0):
        self.master_fd, self.slave_fd, self.proc, self.name = master_fd, slave_fd, proc, name
        self.write_timeout_s = write_timeout_s
        os.set_blocking(master_fd, False)

    def describe(self) -> str:
        return self.name

    def _gone(self):
        return TransportClosed(f"{self.name}: the program ended (how: see the diagnosis that follows)")

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + self.write_timeout_s
        while view:
            if self.proc.poll() is not None:
                raise self._gone()
            try:
                n = os.write(self.master_fd, view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise TransportClosed(f"{self.name}: write failed ({exc})") from exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(f"{self.name}: write blocked for {self.write_timeout_s} s: the program "
                                     f"does not read its port")
            select.select([], [self.master_fd], [], min(left, 0.05))

    def read(self, timeout_s: float = 0.0) -> bytes:
        ready, _, _ = select.select([self.master_fd], [], [], max(0.0, timeout_s))
        if ready:
            try:
                return os.read(self.master_fd, 65536)
            except BlockingIOError:
                return b""
            except OSError as exc:
                raise TransportClosed(f"{self.name}: read failed ({exc})") from exc
        if self.proc.poll() is not None:
            raise self._gone()
        return b""

    def close(self) -> None:
        for fd in (self.master_fd, self.slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master_fd = self.slave_fd = -1

def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_BUILT: set[tuple] = set()  # (build command, cwd) already built successfully by this process


def run_build(spec: RigSpec, log_path: Path | None = None) -> str:
    """Run a program rig's ``build`` command in its cwd (once per process); return its output.
    RigError with the exit status and the last lines of output when it fails."""
    prog = spec.program
    if prog is None or prog.build is None:
        return ""
    key = (prog.build, str(prog.cwd))
    if key in _BUILT:
        return ""
    cmd = " ".join(prog.build)
    try:
        out = subprocess.run(list(prog.build), cwd=prog.cwd, capture_output=True, timeout=prog.build_timeout_s,
                             stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise RigError(f"rig {spec.name}: build tool {prog.build[0]!r} not found "
                       f"(program.build = {list(prog.build)} in {spec.path})") from exc
    except NotADirectoryError as exc:
        raise RigError(f"rig {spec.name}: program.cwd {prog.cwd} is not a folder") from exc
    except subprocess.TimeoutExpired as exc:
        raise RigError(f"rig {spec.name}: build `{cmd}` in {prog.cwd} took longer than "
                       f"program.build_timeout_s = {prog.build_timeout_s} s") from exc
    text = (out.stdout + out.stderr).decode("utf-8", errors="replace")
    if log_path is not None:
        Path(log_path).write_text(f"$ {cmd}   (in {prog.cwd})\n{text}")
    if out.returncode != 0:
        tail = [printable(ln, 300) for ln in text.splitlines() if ln.strip()][-15:]
        status = (f"killed by {signal.Signals(-out.returncode).name}" if out.returncode < 0
                  else f"exit status {out.returncode}")
        raise RigError(f"rig {spec.name}: build `{cmd}` in {prog.cwd} failed ({status}); last lines:\n  "
                       + "\n  ".join(tail or ["(no output)"]))
    _BUILT.add(key)
    return text


def _bring_up_program(spec: RigSpec) -> Rig:
    """Build (if asked), make the pty (or pick the TCP port), start the program with its command
    line, wait until it has opened the pty (or accepts the connection). The runner then waits for
    its HELLO."""
    from harness.transports.serial_port import SerialTransport

    prog = spec.program
    tmp = Path(tempfile.mkdtemp(prefix=f"fsil-{safe_component(spec.name)}-"))
    logs = {}
    cleanup = [lambda: shutil.rmtree(tmp, ignore_errors=True)]
    try:
        if prog.build is not None:
            logs["build.log"] = tmp / "build.log"
            run_build(spec, tmp / "build.log")
        master = slave = -1
        if prog.link == "pty":
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line discipline, before the program even starts
            where = os.ttyname(slave)
            values = {"port": where, "tcp_port": ""}
        else:
            tcp = _free_tcp_port()
            where = f"socket://127.0.0.1:{tcp}"
            values = {"port": "", "tcp_port": str(tcp)}
        argv = [a.format(**values) for a in prog.command]
        if "/" in argv[0]:
            argv[0] = prog.executable()
        env = dict(os.environ)
        env.update({k: v.format(**values) for k, v in prog.env})
        out_path, err_path = tmp / "program.stdout.txt", tmp / "program.stderr.txt"
        logs.update({"program.stdout.txt": out_path, "program.stderr.txt": err_path})
        exe_name = Path(argv[0]).name
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(argv, cwd=prog.cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err)
            except OSError as exc:
                for fd in (master, slave):
                    if fd >= 0:
                        os.close(fd)
                raise RigError(f"rig {spec.name}: cannot start {argv[0]} in {prog.cwd}: "
                               f"{exc.strerror or exc}") from exc
    except BaseException:
        for fn in cleanup:
            fn()
        raise
    diagnose = lambda: _diagnosis(proc, exe_name, err_path)  # noqa: E731

    def fail(why: str):
        state = diagnose()
        _stop(proc, prog.stop_timeout_s)
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
        for fn in cleanup:
            fn()
        raise RigError(f"rig {spec.name}: {why}: {state}")

    deadline = time.monotonic() + prog.startup_timeout_s
    transport = None
    if prog.link == "pty":
        fd_dir = Path(f"/proc/{proc.pid}/fd")
        target = os.path.realpath(where)
        while fd_dir.is_dir():
            if proc.poll() is not None:
                fail(f"the program ended before opening {where}")
            try:
                if any(os.path.realpath(p) == target for p in fd_dir.iterdir()):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail(f"the program did not open its port {where} within program.startup_timeout_s = "
                     f"{prog.startup_timeout_s} s (is {{port}} in its command line used?)")
            time.sleep(0.005)
        transport = PtyMasterTransport(master, slave, proc, f"{exe_name} on {where}")
    else:
        while transport is None:
            if proc.poll() is not None:
                fail(f"the program ended before accepting a connection on {where}")
            try:
                transport = SerialTransport(where)
            except FsilError:
                if time.monotonic() > deadline:
                    fail(f"nothing accepted a connection on {where} within program.startup_timeout_s = "
                         f"{prog.startup_timeout_s} s (does the program listen on 127.0.0.1:{{tcp_port}}?)")
                time.sleep(0.02)
        transport.name = f"{exe_name} on {where}"
    rig = Rig(spec, transport, teardown=[lambda: _stop(proc, prog.stop_timeout_s)], cleanup=cleanup,
              diagnose=diagnose, logs=logs)
    rig.process = proc
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
             "usb-mcu": _bring_up_usb, "program": _bring_up_program}


@contextmanager
def open_rig(rig: str | Path | RigSpec = "loopback"):
    """Bring a rig up, yield it (``.transport``, ``.fly(scenario, artifacts=...)``), take it down."""
    spec = rig if isinstance(rig, RigSpec) else load_rig(rig)
    missing = spec.requirements() if spec.kind != "usb-mcu" else []
    if missing:
        raise RigError(f"rig {spec.name} cannot start here: missing {'; '.join(missing)}")
    up = _BRING_UP[spec.kind](spec)
    try:
        yield up
    finally:
        up.close()


def main(argv=None) -> int:
    """``python -m harness.rigs schema``: the rig-file reference table (Markdown)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m harness.rigs")
    ap.add_argument("what", choices=("schema",))
    ap.parse_args(argv)
    print(schema_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
