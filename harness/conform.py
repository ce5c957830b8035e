"""``fsil conform``: the protocol conformance checklist a team runs first against its flight code.

Each item drives the flight code over the rig's transport exactly as docs/protocol.md allows (or
deliberately breaks the rules on the harness side, for the bad-frame items), measures what comes
back and reports PASS, FAIL or SKIP with the measurement and, when it does not pass, a fix hint
naming the section of docs/protocol.md to read. docs/conformance.md describes every item.

The checks work at byte level (raw writes, frames split across writes, skipped sequence numbers,
answers that do not match), which ``FlightLink`` deliberately hides, so this module drives the
transport itself with the protocol codec (``harness.protocol``) and keeps a raw link log
(``harness.link.LinkLog``).

Items are independent: a check that needs a flight code that is configured and flying brings the
rig up afresh when an earlier item left it dead or deaf, so one defect fails one item.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness import protocol as p
from harness.errors import FsilError
from harness.frames import MOON_GM, MOON_RADIUS
from harness.link import LinkLog
from harness.params import CORE_PARAMS, load_param_table
from harness.safetext import printable
from harness.transports.base import TransportError

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

#: a parameter id no flight code knows (the first free one from here up in the registry)
UNKNOWN_PARAM_ID = 60000
DOC = "docs/protocol.md"

# The hovering lander every SENSORS frame describes: upright (body +z = local up = MCI +x),
# 100 m above the landing-site reference point, at rest, thrust balancing lunar gravity.
HOVER_ALT_M = 100.0             # m above the site reference
LRF_BELOW_COM_M = 0.6           # m, reference lander's LRF mount below the centre of mass (LRF_POS_Z)
CYCLE_US = 20000                # us, one 50 Hz flight-code cycle
_R0 = MOON_RADIUS + HOVER_ALT_M
G_HOVER = MOON_GM / (_R0 * _R0)  # m/s^2 at the hover point
_HOVER_PARAMS = {
    "NAV_R0_X": _R0, "NAV_R0_Y": 0.0, "NAV_R0_Z": 0.0,
    "NAV_V0_X": 0.0, "NAV_V0_Y": 0.0, "NAV_V0_Z": 0.0,
    # q_mci_body: a +90 deg turn about y takes body +z onto MCI +x (local up)
    "NAV_Q0_W": math.sqrt(0.5), "NAV_Q0_X": 0.0, "NAV_Q0_Y": math.sqrt(0.5), "NAV_Q0_Z": 0.0,
    "MASS0": 700.0, "SITE_R_X": MOON_RADIUS, "SITE_R_Y": 0.0, "SITE_R_Z": 0.0,
    "THRUST_MAX": 4000.0, "ISP": 320.0, "THROTTLE_MIN": 0.2, "GM": MOON_GM,
}
OUT_OF_RANGE_PARAM, OUT_OF_RANGE_VALUE = "MASS0", -100.0   # a negative mass: out of every range

_ERROR_COUNTERS = ("rx_crc_errors", "rx_framing_errors", "rx_length_errors", "rx_unknown_msgs")


# Results ---------------------------------------------------------------------------------
@dataclass
class ItemResult:
    """One checklist line: ``status`` PASS/FAIL/SKIP, ``detail`` what was measured."""

    id: str
    title: str
    status: str
    detail: str
    hint: str = ""
    duration_s: float = 0.0


@dataclass
class ConformReport:
    rig: str
    firmware: str
    items: list[ItemResult]
    cycle_timeout_s: float
    restarts: int = 0

    @property
    def failed(self) -> list[str]:
        return [i.id for i in self.items if i.status == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failed

    def table(self) -> str:
        """The checklist as a fixed-width table; each FAIL and SKIP is followed by its fix hint."""
        w_id = max(len(i.id) for i in self.items)
        lines = [f"fsil conform: rig {self.rig}, flight code {self.firmware}, cycle budget "
                 f"{self.cycle_timeout_s * 1e3:.0f} ms",
                 f"{'item':{w_id}s}  result  detail", f"{'-' * w_id}  ------  {'-' * 60}"]
        for i in self.items:
            lines.append(f"{i.id:{w_id}s}  {i.status:6s}  {i.detail}")
            if i.status != PASS and i.hint:
                lines.append(f"{'':{w_id}s}  {'':6s}  fix: {i.hint}")
        n = {s: sum(1 for i in self.items if i.status == s) for s in (PASS, FAIL, SKIP)}
        lines.append(f"{n[PASS]} passed, {n[FAIL]} failed, {n[SKIP]} skipped"
                     + (f"; the rig was brought up afresh {self.restarts} time(s)" if self.restarts else ""))
        return "\n".join(lines)

    def write_junit(self, path: Path | str) -> Path:
        """JUnit XML, one test case per item (junitparser writes the schema CI servers read)."""
        from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

        suite = TestSuite(f"fsil conform {self.rig}")
        suite.add_property("rig", self.rig)
        suite.add_property("firmware", self.firmware)
        suite.add_property("protocol_version", str(p.PROTOCOL_VERSION))
        suite.add_property("cycle_timeout_s", f"{self.cycle_timeout_s:g}")
        for i in self.items:
            case = TestCase(i.id, classname=f"conform.{self.rig}", time=round(i.duration_s, 6))
            if i.status == FAIL:
                fail = Failure(i.detail, "ConformanceFailure")
                fail.text = f"{i.title}\n{i.detail}\nfix: {i.hint}"
                case.result = [fail]
            elif i.status == SKIP:
                case.result = [Skipped(i.detail)]
            case.system_out = f"{i.title}: {i.detail}"
            suite.add_testcase(case)
        xml = JUnitXml()
        xml.add_testsuite(suite)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        xml.write(str(path), pretty=True)
        return path


# The probe: the harness end, at byte level -------------------------------------------------
@dataclass(eq=False)   # compared by identity: two cycles are never the same one
class Cycle:
    """One SENSORS sent and what answered it."""

    seq: int
    t_us: int
    sent_at: float
    commands: list = field(default_factory=list)   # (Frame, arrival wall time) of COMMANDs received
    telemetry: p.Telemetry | None = None
    ledger: dict = field(default_factory=dict)      # totals of frames sent up to and including this one

    @property
    def answered(self) -> bool:
        return bool(self.commands)

    @property
    def latency_s(self) -> float | None:
        return self.commands[0][1] - self.sent_at if self.commands else None


class FarEndGone(Exception):
    """The transport reported the far end closed (process exited, QEMU died, board unplugged)."""


@dataclass
class Session:
    """Everything received from one bring-up of the rig."""

    frames: list = field(default_factory=list)  # every good frame from F in arrival order
    cycles: list = field(default_factory=list)
    committed: bool = False


class Probe:
    """The harness side of the link for the checklist: numbered frames, raw writes, a receive
    loop that files every frame from the flight code, a ledger of what was sent (good frames and
    bad frames by the counter they should raise) to compare with the flight code's TELEMETRY."""

    def __init__(self, transport, *, cycle_timeout_s: float, log: LinkLog):
        self.transport = transport
        self.cycle_timeout_s = cycle_timeout_s
        self.log = log
        # HELLO bodies are kept raw so the name is judged as it came (Hello.unpack decodes it)
        self.decoder = p.FrameDecoder(raw_types=frozenset({p.MsgType.HELLO}))
        self.hello_body: bytes | None = None
        self.session = Session()
        self.tx_seq = 0
        self.t_us = 0
        self.sync = transport.synchronous
        self.ledger = {"good": 0, "rx_crc_errors": 0, "rx_framing_errors": 0, "rx_length_errors": 0,
                       "rx_unknown_msgs": 0, "any": 0}
        self.gone: str | None = None
        self.imu_dv_accum = [0.0, 0.0, 0.0]
        # generous waits for answers whose content is judged (timing is the latency item's job)
        self.answer_wait_s = max(1.0, 3.0 * cycle_timeout_s)
        self.ack_wait_s = max(2.0, cycle_timeout_s)
        self.tlm_wait_s = 0.0 if self.sync else 0.03

    # frames from the flight code the harness could not decode ---------------------------------
    def refused(self) -> dict[str, int]:
        """The harness decoder's error counters so far (frames from the flight code it dropped)."""
        return {k: v for k, v in self.decoder.counters.as_dict().items() if k != "frames_ok"}

    def refused_note(self, since: dict[str, int] | None) -> str:
        """'' or what the harness dropped of the flight code's frames since ``since`` (refused())
        with the last reason, e.g. "TELEMETRY body of 76 bytes, expected 84" or "CRC mismatch"."""
        now = self.refused()
        rose = {k: v - (since or {}).get(k, 0) for k, v in now.items() if v != (since or {}).get(k, 0)}
        if not rose:
            return ""
        last = self.decoder.errors[-1][1] if self.decoder.errors else "?"
        return (f"the harness dropped {sum(rose.values())} frame(s) from the flight code that it could not "
                f"decode ({', '.join(f'{k} {v}' for k, v in rose.items())}; last: {last})")

    # bytes out ------------------------------------------------------------------------------
    def write_raw(self, data: bytes, **expect: int) -> None:
        """Write bytes as they are; ``expect`` adds to the ledger (``good=1``, ``rx_crc_errors=1``...)."""
        for k, v in expect.items():
            self.ledger[k] += v
        self.log.record(b">", data)
        try:
            self.transport.write(data)
        except TransportError as exc:
            self._far_end_gone(str(exc))

    def next_seq(self) -> int:
        seq = self.tx_seq
        self.tx_seq = (seq + 1) & 0xFFFF
        return seq

    def send(self, msg: p.Message, t_us: int = 0) -> int:
        seq = self.next_seq()
        self.write_raw(p.encode_frame(msg, seq, t_us), good=1)
        return seq

    # bytes in -------------------------------------------------------------------------------
    def _far_end_gone(self, why: str) -> None:
        self.gone = why
        diag = getattr(self.transport, "diagnose", None)
        if diag is not None:
            try:
                self.gone += f"; {printable(diag(), 400)}"
            except Exception:  # a diagnosis must never hide the fault itself
                pass
        raise FarEndGone(self.gone)

    def poll(self, timeout_s: float) -> list[p.Frame]:
        """Read what arrives within ``timeout_s`` (at least one read), decode and file it."""
        if self.gone:
            raise FarEndGone(self.gone)
        try:
            data = self.transport.read(0.0 if self.sync else timeout_s)
        except TransportError as exc:
            self._far_end_gone(str(exc))
        if not data:
            return []
        now = time.perf_counter()
        self.log.record(b"<", data)
        frames = self.decoder.feed(data)
        for i, f in enumerate(frames):
            if f.msg_type == p.MsgType.HELLO:
                self.hello_body = f.msg
                f = frames[i] = f._replace(msg=p.Hello.unpack(f.msg))
            self.session.frames.append(f)
            self._file(f, now)
        return frames

    def _file(self, f: p.Frame, now: float) -> None:
        cycles = self.session.cycles
        if f.msg_type == p.MsgType.COMMAND and cycles:
            cycles[-1].commands.append((f, now))
        elif f.msg_type == p.MsgType.TELEMETRY and cycles:
            # the TELEMETRY reports the cycle whose SENSORS time it carries (else the latest one)
            for c in reversed(cycles[-50:]):
                if c.t_us == f.t_us:
                    c.telemetry = f.msg
                    return
            cycles[-1].telemetry = cycles[-1].telemetry or f.msg

    def wait_for(self, want: Callable[[p.Frame], bool], timeout_s: float) -> p.Frame | None:
        """The first frame received from now on for which ``want`` holds, or None at the time-out."""
        deadline = time.perf_counter() + timeout_s
        while True:
            for f in self.poll(max(0.0, min(0.05, deadline - time.perf_counter()))):
                if want(f):
                    return f
            if self.sync or time.perf_counter() >= deadline:
                return None

    def drain(self, quiet_s: float = 0.0) -> list[p.Frame]:
        """Everything already on the way (waits ``quiet_s`` of silence on a serial link)."""
        out = []
        while True:
            got = self.poll(quiet_s)
            out += got
            if not got:
                return out

    # protocol steps -------------------------------------------------------------------------
    def config(self, param_id: int, value: float, flags: int = 0) -> tuple[p.ConfigAck | None, float]:
        """One CONFIG; its CONFIG_ACK (None if none came within the wait) and the wait, s."""
        self.drain()
        t0 = time.perf_counter()
        self.send(p.Config(param_id, float(value), flags))
        f = self.wait_for(lambda fr: fr.msg_type == p.MsgType.CONFIG_ACK, self.ack_wait_s)
        return (f.msg if f else None), time.perf_counter() - t0

    def sensors(self, *, t_us: int, dt_us: int) -> p.Sensors:
        """The hovering lander's SENSORS for the interval ending at ``t_us`` (``dt_us`` long; 0
        for the first frame of a flight): thrust balances gravity, so the accelerometers read
        g dt up (body +z), no rotation, LRF straight down at the LRF's height above the site."""
        dv = G_HOVER * dt_us * 1e-6
        if dt_us:
            self.imu_dv_accum[2] += dv
        # the first frame has no interval behind it: IMU_VALID clear (docs/protocol.md, "The first SENSORS frame")
        flags = (p.SENSORS_IMU_VALID if dt_us else 0) | p.SENSORS_LRF_VALID | p.SENSORS_LRF_NEW
        return p.Sensors((0.0, 0.0, dv), (0.0, 0.0, 0.0), dt_us, HOVER_ALT_M - LRF_BELOW_COM_M, t_us, flags,
                         imu_dv_accum_body=tuple(self.imu_dv_accum), imu_dtheta_accum_body=(0.0, 0.0, 0.0))

    def start_flight(self) -> None:
        """The next SENSORS is the first of a flight: t = 0, no interval elapsed, zero sums."""
        self.t_us = -1
        self.imu_dv_accum = [0.0, 0.0, 0.0]

    def step(self, *, wait_s: float | None = None, lose: int = 0, write=None) -> Cycle:
        """One lockstep cycle: SENSORS for the next interval, then wait for a COMMAND (any: what it
        says is judged by the sequence items). ``lose`` SENSORS frames are skipped first (their
        numbers and intervals are used up but never sent). ``write(frame_bytes)`` sends the frame
        instead of one plain write (split writes)."""
        self.drain()
        for _ in range(lose):
            self.next_seq()
            self.sensors(t_us=self.t_us + CYCLE_US, dt_us=CYCLE_US)  # accumulates, is not sent
            self.t_us += CYCLE_US
        first = self.t_us < 0
        t_us = 0 if first else self.t_us + CYCLE_US
        msg = self.sensors(t_us=t_us, dt_us=0 if first else CYCLE_US)
        self.t_us = t_us
        seq = self.next_seq()
        frame = p.encode_frame(msg, seq, t_us)
        cyc = Cycle(seq, t_us, 0.0)
        self.session.cycles.append(cyc)
        self.ledger["good"] += 1
        cyc.ledger = dict(self.ledger)
        if write is None:
            cyc.sent_at = time.perf_counter()
            self.write_raw(frame)
        else:
            cyc.sent_at = write(frame)
        deadline = cyc.sent_at + (self.answer_wait_s if wait_s is None else wait_s)
        while not cyc.answered:
            self.poll(max(0.0, min(0.05, deadline - time.perf_counter())))
            if self.sync or time.perf_counter() >= deadline:
                break
        return cyc

    def snapshot(self, max_cycles: int = 25) -> Cycle | None:
        """Fly cycles until one of them brings its TELEMETRY; that cycle (its counters and the
        ledger at it), or None if none did within ``max_cycles`` (or a SENSORS went unanswered)."""
        start = len(self.session.cycles)
        for _ in range(max_cycles):
            cyc = self.step()
            if not cyc.answered:
                return None
            deadline = time.perf_counter() + self.tlm_wait_s
            while cyc.telemetry is None:
                self.poll(max(0.0, deadline - time.perf_counter()))
                if self.sync or time.perf_counter() >= deadline:
                    break
            got = [c for c in self.session.cycles[start:] if c.telemetry is not None]
            if got:
                return got[-1]
        return None


# Checks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    id: str
    title: str
    phase: str          # "boot"/"config": link up, not committed; "flight": committed and answering;
                        # "none": judges what earlier items recorded, sends nothing
    section: str        # docs/protocol.md section to read on a FAIL
    hint: str
    check: Callable     # (Conformance) -> (status, detail)


class Outcome(Exception):
    """Raised inside a check to end it with a status and detail."""

    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _ms(s: float) -> str:
    """A wall duration for the table: us below a millisecond, else ms."""
    return f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.1f} ms"


class Conformance:
    """Runs the checklist on a rig: ``Conformance(rig_spec, cycles=50).run() -> ConformReport``."""

    def __init__(self, spec, *, cycles: int = 50, log_path: Path | str | None = None,
                 only: list[str] | None = None):
        from harness.rigs import load_rig

        self.spec = spec if not isinstance(spec, (str, Path)) else load_rig(spec)
        self.cycles = cycles
        self.log = LinkLog(log_path)
        self.only = only
        self.table = load_param_table(self.spec.source_dir)
        self._rig_cm = None
        self.probe: Probe | None = None
        self.restarts = 0
        self.firmware = "?"
        self.sessions: list[Session] = []
        self.probes: list[Probe] = []       # one per bring-up, in order (each has its session)
        self.core_in_force: dict[str, float] = {}
        self.needs_restart = False
        self.abort_reason: str | None = None   # set: the remaining items cannot mean anything
        self.unflyable: str | None = None      # set: a fresh start did not give a flying flight code

    # rig lifecycle --------------------------------------------------------------------------
    def _up(self) -> None:
        from harness.rigs import open_rig

        self._down()
        self._rig_cm = open_rig(self.spec)
        rig = self._rig_cm.__enter__()
        self.probe = Probe(rig.transport, cycle_timeout_s=self.spec.cycle_timeout_s, log=self.log)
        self.probes.append(self.probe)
        self.sessions.append(self.probe.session)
        self.needs_restart = False

    def _down(self) -> None:
        if self._rig_cm is not None:
            cm, self._rig_cm = self._rig_cm, None
            try:
                cm.__exit__(None, None, None)
            except Exception:  # taking a dead rig down must not mask the checklist's result
                pass

    def _bring_to(self, phase: str) -> None:
        """Make sure the flight code is in ``phase``, bringing the rig up afresh when needed."""
        if phase == "none":
            return
        if self.unflyable:
            raise Outcome(SKIP, f"not run: {self.unflyable}")
        pr = self.probe
        fresh = pr is None or self.needs_restart or pr.gone is not None
        if not fresh and (phase != "flight" or pr.session.committed):
            return
        if fresh:
            if pr is None:
                self._up()   # the first bring-up: a rig that cannot start is the caller's error (exit 2)
            else:
                self.restarts += 1
                try:
                    self._up()
                except FsilError as exc:
                    self.unflyable = f"the rig could not be brought up afresh: {exc}"
                    raise Outcome(FAIL, self.unflyable) from None
            pr = self.probe
            # wait until the flight code is up (its boot banner, else the answer to a HELLO);
            # the hello item does its own exchange and judges it
            if phase != "boot" and not any(f.msg_type == p.MsgType.HELLO for f in pr.drain(0.05)):
                pr.send(p.Hello(p.PROTOCOL_VERSION, 0, "fsil-conform"))
                pr.wait_for(lambda f: f.msg_type == p.MsgType.HELLO, self.spec.hello_timeout_s)
        if phase == "flight" and not pr.session.committed:
            for name, value in self._config_values():
                pr.config(self.table[name].id, value)
            pr.config(p.COMMIT_PARAM_ID, 0.0, p.CONFIG_COMMIT)
            pr.session.committed = True
            pr.start_flight()
            if not pr.step().answered:
                self.unflyable = (f"after a fresh start, configuration and COMMIT, the first SENSORS got no COMMAND "
                                  f"within {_ms(pr.answer_wait_s)}")
                raise Outcome(FAIL, f"could not bring the flight code to flying: {self.unflyable}")

    def _config_values(self) -> list[tuple[str, float]]:
        rig_params = [(k, float(v)) for k, v in self.spec.flight_params.items()]
        return [(n, _HOVER_PARAMS[n]) for n in CORE_PARAMS] + rig_params

    # the run --------------------------------------------------------------------------------
    def run(self) -> ConformReport:
        results = []
        try:
            for item in ITEMS:
                if self.only and item.id not in self.only:
                    continue
                t0 = time.perf_counter()
                if self.abort_reason:
                    results.append(ItemResult(item.id, item.title, SKIP, f"not run: {self.abort_reason}"))
                    continue
                probe, refused = self.probe, (self.probe.refused() if self.probe else None)
                try:
                    self._bring_to(item.phase)
                    status, detail = item.check(self)
                except Outcome as o:
                    status, detail = o.status, o.detail
                except FarEndGone as exc:
                    status, detail = FAIL, f"the flight code's end of the link went away: {exc}"
                    self.needs_restart = True
                if status != PASS and self.probe is not None:
                    # a missing answer is often a frame that came but could not be decoded: say so
                    note = self.probe.refused_note(refused if self.probe is probe else None)
                    if note and note not in detail:
                        detail = f"{detail}; {note}"
                results.append(ItemResult(item.id, item.title, status, printable(detail, 600),
                                          f"{item.hint} (see {DOC}, {item.section})" if status != PASS else "",
                                          time.perf_counter() - t0))
        finally:
            self._down()
            self.log.close()
        return ConformReport(self.spec.name, self.firmware, results, self.spec.cycle_timeout_s, self.restarts)

    # shared helpers for the checks -----------------------------------------------------------
    def expect_answered(self, cyc: Cycle, what: str) -> None:
        if not cyc.answered:
            self.needs_restart = True
            raise Outcome(FAIL, f"{what}: the next SENSORS (seq {cyc.seq}) got no COMMAND within "
                                f"{_ms(self.probe.answer_wait_s)}")

    def bad_frame_check(self, what: str, send_bad: Callable[[Probe], None], counter: str | None) -> tuple[str, str]:
        """Snapshot the counters, send a bad frame, check the next SENSORS is answered and the
        counters rose by exactly the ledger's amounts (``counter`` None: any one error counter)."""
        pr = self.probe
        before = pr.snapshot()
        send_bad(pr)
        cyc = pr.step()
        self.expect_answered(cyc, f"after the {what}")
        after = pr.snapshot()
        survived = f"survived (next SENSORS answered in {_ms(cyc.latency_s)})"
        if before is None or after is None or before.telemetry is None or after.telemetry is None:
            return SKIP, f"{survived}; counting not checked: no TELEMETRY from the flight code"
        got = {c: getattr(after.telemetry, c) - getattr(before.telemetry, c) for c in _ERROR_COUNTERS}
        want = {c: after.ledger[c] - before.ledger[c] for c in _ERROR_COUNTERS}
        if any(getattr(t, c) == 0xFFFF for t in (before.telemetry, after.telemetry) for c in _ERROR_COUNTERS):
            return SKIP, f"{survived}; an error counter is saturated at 65535, counting not checked"
        if counter is None:
            n_any = after.ledger["any"] - before.ledger["any"]
            total = sum(got.values())
            which = ", ".join(f"{c} +{v}" for c, v in got.items() if v) or "none"
            if total != n_any + sum(want.values()):
                return FAIL, f"{survived}, but the error counters rose by {total} ({which}) for {n_any} bad frame(s)"
            return PASS, f"counted ({which}), {survived}"
        wrong = {c: (got[c], want[c]) for c in _ERROR_COUNTERS if got[c] != want[c]}
        if wrong:
            return FAIL, (f"{survived}, but counted wrong: " +
                          ", ".join(f"{c} +{g} (expected +{w})" for c, (g, w) in wrong.items()))
        return PASS, f"{counter} +{want[counter]}, other error counters unchanged; {survived}"


# --- the items -----------------------------------------------------------------------------
def _check_hello(c: Conformance):
    pr = c.probe
    banner = [f for f in pr.drain(0.1) if f.msg_type == p.MsgType.HELLO]
    answers, waits = [], []
    for _ in range(2):  # two requests: the second can only be answered, never be the boot banner
        t0 = time.perf_counter()
        pr.send(p.Hello(p.PROTOCOL_VERSION, 0, "fsil-conform"))
        f = pr.wait_for(lambda fr: fr.msg_type == p.MsgType.HELLO, c.spec.hello_timeout_s)
        if f is None and pr.decoder.foreign_version is not None:
            version, msg_type = pr.decoder.foreign_version
            c.abort_reason = (f"the flight code speaks protocol {version} (header version byte of its frames, "
                              f"e.g. type 0x{msg_type:02x}), the harness speaks {p.PROTOCOL_VERSION}")
            raise Outcome(FAIL, c.abort_reason)
        if f is None:
            seen = "a boot banner was seen, but " if banner or answers else ""
            raise Outcome(FAIL, f"{seen}HELLO request {len(answers) + 1} of 2 got no HELLO within "
                                f"{c.spec.hello_timeout_s:g} s")
        answers.append(f)
        waits.append(time.perf_counter() - t0)
    hello: p.Hello = answers[-1].msg
    name_bytes = pr.hello_body[8:24]   # firmware_name, char[16] at offset 8 of the body
    c.firmware = printable(name_bytes.rstrip(b"\x00").decode("ascii", "backslashreplace"), 40) or "?"
    problems = []
    if hello.protocol_version != p.PROTOCOL_VERSION:
        problems.append(f"protocol_version {hello.protocol_version}, the harness speaks {p.PROTOCOL_VERSION}")
    text = name_bytes.split(b"\x00", 1)[0]
    if not text:
        problems.append("firmware_name is empty")
    elif any(b < 0x20 or b > 0x7E for b in text):
        problems.append(f"firmware_name {printable(text)!r} holds bytes outside printable ASCII")
    elif name_bytes[len(text):].strip(b"\x00"):
        problems.append("firmware_name has bytes after its terminating NUL (must be NUL padded)")
    detail = (f"answered 2 of 2 requests (slowest {_ms(max(waits))}): protocol {hello.protocol_version}, "
              f"firmware_id 0x{hello.firmware_id:08x}, name {c.firmware!r}")
    if problems:
        return FAIL, "; ".join(problems) + f" ({detail})"
    return PASS, detail


def _check_config_core(c: Conformance):
    pr = c.probe
    bad, waits = [], []
    for name in CORE_PARAMS:
        spec = c.table[name]
        value = _HOVER_PARAMS[name]
        ack, wait = pr.config(spec.id, value)
        waits.append(wait)
        if ack is None:
            bad.append(f"{name} (id {spec.id}): no CONFIG_ACK within {c.probe.ack_wait_s:g} s")
            if len(bad) == 2 and len(waits) == 2:
                return FAIL, f"no CONFIG_ACK for the first two core parameters (NAV_R0_X, NAV_R0_Y) within " \
                             f"{c.probe.ack_wait_s:g} s each: the rest were not sent"
            continue
        if ack.param_id == spec.id:
            c.core_in_force[name] = ack.value
        if ack.param_id != spec.id or ack.status != p.ConfigStatus.ACCEPTED or ack.value != value:
            bad.append(f"{name} (id {spec.id}) = {value:g} {spec.unit}: ack id {ack.param_id}, status "
                       f"{p.status_name(ack.status)}, value {ack.value:g}")
    if bad:
        return FAIL, f"{len(bad)} of {len(CORE_PARAMS)} core parameters not accepted as sent: " + "; ".join(bad[:4])
    return PASS, (f"{len(CORE_PARAMS)} of {len(CORE_PARAMS)} core parameters ACCEPTED with their values echoed "
                  f"(slowest ack {_ms(max(waits))})")


def _optional_param(c: Conformance) -> tuple[str, float]:
    core = set(CORE_PARAMS)
    for name, value in c.spec.flight_params.items():
        if name not in core:
            return name, float(value)
    spec = min((s for s in c.table.values() if s.name not in core), key=lambda s: s.id)
    return spec.name, spec.default


def _check_config_optional(c: Conformance):
    name, value = _optional_param(c)
    spec = c.table[name]
    ack, wait = c.probe.config(spec.id, value)
    if ack is None:
        return FAIL, f"{name} (id {spec.id}) = {value:g}: no CONFIG_ACK within {c.probe.ack_wait_s:g} s"
    unit = f" {spec.unit}" if spec.unit != "-" else ""
    said = f"{name} (id {spec.id}) = {value:g}{unit}: {p.status_name(ack.status)}, value {ack.value:g}, {_ms(wait)}"
    if ack.param_id != spec.id:
        return FAIL, f"{said}, but the ack names id {ack.param_id}"
    if ack.status == p.ConfigStatus.ACCEPTED:
        if ack.value != value:
            return FAIL, f"{said}: ACCEPTED must echo the value now in force, {value:g}"
        return PASS, said
    if ack.status in (p.ConfigStatus.UNKNOWN_ID, p.ConfigStatus.OUT_OF_RANGE):
        return PASS, f"{said} (refused: allowed for an optional parameter, the run notes it)"
    return FAIL, f"{said}: a parameter CONFIG is answered with 0, 1 or 2"


def _check_out_of_range(c: Conformance):
    spec = c.table[OUT_OF_RANGE_PARAM]
    old = c.core_in_force.get(OUT_OF_RANGE_PARAM, _HOVER_PARAMS[OUT_OF_RANGE_PARAM])
    ack, wait = c.probe.config(spec.id, OUT_OF_RANGE_VALUE)
    what = f"{OUT_OF_RANGE_PARAM} = {OUT_OF_RANGE_VALUE:g} {spec.unit} (allowed [{spec.min:g}, {spec.max:g}])"
    if ack is None:
        return FAIL, f"{what}: no CONFIG_ACK within {c.probe.ack_wait_s:g} s"
    said = f"{what}: status {p.status_name(ack.status)}, ack.value {ack.value:g}"
    if ack.param_id != spec.id:
        return FAIL, f"{said}, but the ack names id {ack.param_id}"
    if ack.status != p.ConfigStatus.OUT_OF_RANGE:
        return FAIL, f"{said}: expected OUT_OF_RANGE (2)"
    if ack.value == OUT_OF_RANGE_VALUE:
        return FAIL, f"{said}: ack.value must be the value in force, {old:g}, not the refused one"
    if ack.value != old:
        return FAIL, f"{said}: the value in force must stay {old:g} (not applied)"
    return PASS, f"{said} (old value kept), {_ms(wait)}"


def _check_unknown_id(c: Conformance):
    taken = {s.id for s in c.table.values()}
    pid = next(i for i in range(UNKNOWN_PARAM_ID, 0x10000) if i not in taken)  # never assigned in the registry
    ack, wait = c.probe.config(pid, 1.0)
    if ack is None:
        return FAIL, f"id {pid}: no CONFIG_ACK within {c.probe.ack_wait_s:g} s"
    said = f"id {pid}: status {p.status_name(ack.status)}"
    if ack.param_id != pid:
        return FAIL, f"{said}, but the ack names id {ack.param_id}"
    if ack.status != p.ConfigStatus.UNKNOWN_ID:
        return FAIL, f"{said}: expected UNKNOWN_ID (1)"
    return PASS, f"{said}, {_ms(wait)}"


def _check_commit(c: Conformance):
    pr = c.probe
    for name, value in c._config_values()[len(CORE_PARAMS):]:   # the rig's own settings, not judged here
        pr.config(c.table[name].id, value)
    pr.start_flight()
    early = pr.step(wait_s=c.spec.cycle_timeout_s)
    early_cmd = early.commands[0][0].msg if early.answered else None
    ack, wait = pr.config(p.COMMIT_PARAM_ID, 0.0, p.CONFIG_COMMIT)
    pr.session.committed = True
    problems = []
    if early_cmd is not None and (early_cmd.flags & p.COMMAND_ENGINE_ON or early_cmd.throttle != 0.0):
        problems.append(f"a SENSORS before COMMIT was answered with the engine on (throttle {early_cmd.throttle:g}, "
                        f"flags 0x{early_cmd.flags:02x}): nothing may fly before COMMIT")
    if ack is None:
        problems.append(f"no CONFIG_ACK to COMMIT within {pr.ack_wait_s:g} s")
    elif ack.param_id != p.COMMIT_PARAM_ID or ack.status != p.ConfigStatus.COMMITTED:
        refused = (f" (first offending parameter id {ack.value:g})"
                   if ack.status == p.ConfigStatus.COMMIT_REFUSED and ack.value else "")
        problems.append(f"COMMIT answered with status {p.status_name(ack.status)}{refused} for param_id "
                        f"{ack.param_id}, expected COMMITTED (3) for param_id {p.COMMIT_PARAM_ID}")
    pr.start_flight()
    cyc = pr.step()
    if not cyc.answered:
        c.needs_restart = True
        problems.append(f"the first SENSORS after COMMIT got no COMMAND within {_ms(pr.answer_wait_s)}")
    before = "not answered" if early_cmd is None else "answered with the engine off"
    if problems:
        return FAIL, "; ".join(problems)
    return PASS, (f"COMMITTED in {_ms(wait)}; SENSORS before COMMIT {before}, first SENSORS after it answered "
                  f"in {_ms(cyc.latency_s)}")


def _check_latency(c: Conformance):
    import numpy as np

    pr = c.probe
    cycles = [pr.step() for _ in range(c.cycles)]
    lat = np.array([cy.latency_s for cy in cycles if cy.answered])
    missed = sum(1 for cy in cycles if not cy.answered)
    budget = c.spec.cycle_timeout_s
    if not lat.size:
        c.needs_restart = True
        return FAIL, f"none of {c.cycles} SENSORS answered within {_ms(pr.answer_wait_s)}"
    p50, p99, worst = np.percentile(lat, 50), np.percentile(lat, 99), lat.max()
    late = int((lat > budget).sum())
    said = (f"{c.cycles} cycles: p50 {_ms(p50)}, p99 {_ms(p99)}, max {_ms(worst)} against the budget "
            f"{_ms(budget)} (rig timing.cycle_timeout_s)")
    if missed or late:
        return FAIL, f"{said}; {late + missed} answer(s) over budget ({missed} never came)"
    return PASS, said


def _check_counters(c: Conformance):
    pr = c.probe
    refused = pr.refused()
    before = pr.snapshot()
    for _ in range(5):
        c.expect_answered(pr.step(), "telemetry check")
    after = pr.snapshot()
    if before is None or after is None:
        note = pr.refused_note(refused)
        if note:   # TELEMETRY sent but undecodable (e.g. a v1 76-byte body) is a defect, not an absence
            return FAIL, f"no decodable TELEMETRY from the flight code within 25 cycles: {note}"
        return SKIP, "no TELEMETRY from the flight code within 25 cycles: its counters cannot be checked"
    a, b = after.telemetry, before.telemetry
    sent = after.ledger["good"] - before.ledger["good"]
    got = (a.rx_frames_ok - b.rx_frames_ok) & 0xFFFF
    rose = {k: getattr(a, k) - getattr(b, k) for k in (*_ERROR_COUNTERS, "sensors_gaps", "sensors_rejected")
            if getattr(a, k) != getattr(b, k)}
    window = pr.session.cycles[pr.session.cycles.index(before) + 1:pr.session.cycles.index(after) + 1]
    flagged = sum(1 for cy in window for f, _ in cy.commands if f.msg.flags & p.COMMAND_SENSORS_REJECTED)
    if got != sent:
        return FAIL, f"rx_frames_ok rose by {got} while {sent} good frames were sent"
    if rose or flagged:
        return FAIL, (f"rx_frames_ok +{got} for {sent} good frames, but on a clean link with plausible SENSORS "
                      f"(a lander hovering 100 m up) counters rose: {rose or 'none'}; {flagged} COMMAND(s) "
                      f"flagged SENSORS_REJECTED")
    return PASS, (f"rx_frames_ok +{got} for {sent} good frames; error, sensors_gaps and sensors_rejected "
                  f"counters unchanged on a clean link")


def _sensors_frame(pr: Probe, *, seq: int = 0xABCD) -> bytes:
    """A SENSORS packet (header + body + CRC) that is not numbered in the harness's sequence."""
    return p.encode_packet(pr.sensors(t_us=max(pr.t_us, 0), dt_us=0), seq, max(pr.t_us, 0))


def _send_bad_crc(pr: Probe):
    packet = bytearray(_sensors_frame(pr))
    packet[20] ^= 0x40   # one flipped bit in the body: the CRC no longer matches
    pr.write_raw(p.cobs_encode(bytes(packet)) + p.DELIMITER, rx_crc_errors=1)


def _send_truncated(pr: Probe):
    packet = _sensors_frame(pr)[:9]   # cut inside the header: shorter than header + CRC
    pr.write_raw(p.cobs_encode(packet) + p.DELIMITER, rx_framing_errors=1)


def _send_oversize(pr: Probe):
    pr.write_raw(bytes((i % 255) + 1 for i in range(300)) + p.DELIMITER, rx_framing_errors=1)


def _send_bad_length(pr: Probe):
    packet = _sensors_frame(pr)
    short = packet[:-2 - 8]  # a SENSORS whose body is 8 bytes short, with a valid CRC
    pr.write_raw(p.cobs_encode(short + p.CRC.pack(p.crc16(short))) + p.DELIMITER, rx_length_errors=1)


def _send_unknown_type(pr: Probe):
    data = p.HEADER.pack(p.PROTOCOL_VERSION, 0x7E, 0xABCD, max(pr.t_us, 0)) + bytes(12)
    pr.write_raw(p.cobs_encode(data + p.CRC.pack(p.crc16(data))) + p.DELIMITER, rx_unknown_msgs=1)


GARBAGE = b"fsw dbg: printf on the data line\r\n"   # no 0x00: one bad frame up to the next delimiter


def _send_garbage(pr: Probe):
    pr.write_raw(GARBAGE + p.DELIMITER, any=1)


def _check_bad(what, send, counter):
    return lambda c: c.bad_frame_check(what, send, counter)


def _check_split(c: Conformance):
    pr = c.probe
    pause = 0.0 if pr.sync else 0.02

    def split_write(frame: bytes) -> float:
        cuts = [1, len(frame) // 2, len(frame) - 1]   # 1 byte, half, all but the delimiter, the delimiter
        pieces = [frame[a:b] for a, b in zip([0] + cuts, cuts + [len(frame)])]
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(pause)
                if pr.poll(0.0) and pr.session.cycles[-1].answered:
                    raise Outcome(FAIL, f"answered before the frame was complete (after piece {i} of {len(pieces)})")
            t = time.perf_counter()
            pr.write_raw(piece)
        return t

    return _split(c, split_write)


def _split(c: Conformance, split_write):
    pr = c.probe
    before = pr.snapshot()
    cyc = pr.step(write=split_write)
    c.expect_answered(cyc, "after a SENSORS split across 4 writes")
    after = pr.snapshot()
    said = f"a SENSORS in 4 writes was answered {_ms(cyc.latency_s)} after its last byte"
    if before is None or after is None:
        return SKIP, f"{said}; counting not checked: no TELEMETRY"
    errs = {k: getattr(after.telemetry, k) - getattr(before.telemetry, k) for k in _ERROR_COUNTERS}
    rose = {k: v for k, v in errs.items() if v}
    if rose:
        return FAIL, f"{said}, but error counters rose: {rose}"
    return PASS, f"{said}; no error counted"


def garbage_burst(seed: int = 12, n: int = 2048) -> bytes:
    """Line noise: ``n`` random bytes with a 0x00 at least every 200 (no oversize run: that is
    its own item), ending with a delimiter. None of its chunks decodes as a frame."""
    import random

    rnd = random.Random(seed)
    out, run = bytearray(), 0
    for _ in range(n):
        b = rnd.randrange(256)
        if run >= 199:
            b = 0
        run = 0 if b == 0 else run + 1
        out.append(b)
    out.append(0)
    return bytes(out)


def _check_burst(c: Conformance):
    pr = c.probe
    burst = garbage_burst()
    ref = p.FrameDecoder()
    assert not ref.feed(burst), "the garbage burst must not hold a valid frame"
    chunks = sum(1 for ch in burst.split(b"\x00") if ch)
    before = pr.snapshot()
    pr.write_raw(burst)
    if not pr.sync:
        time.sleep(0.02)   # the noise ends, the line is quiet, then the frames come
    follow = [pr.step() for _ in range(5)]
    missed = [cy.seq for cy in follow if not cy.answered]
    if missed:
        c.needs_restart = True
        return FAIL, (f"after {len(burst)} bytes of noise ({chunks} delimited chunks), SENSORS seq "
                      f"{', '.join(map(str, missed))} got no COMMAND: the receiver did not resynchronise")
    after = pr.snapshot()
    said = f"{len(burst)} noise bytes, then 5 of 5 SENSORS answered"
    if before is None or after is None:
        return SKIP, f"{said}; counting not checked: no TELEMETRY"
    total = sum(getattr(after.telemetry, k) - getattr(before.telemetry, k) for k in _ERROR_COUNTERS)
    if not 1 <= total <= chunks:
        return FAIL, (f"{said}, but {total} errors were counted for {chunks} bad chunks "
                      f"(between 1 and {chunks} expected; the reference decoder counts {ref.counters.errors})")
    return PASS, f"{said}; {total} errors counted for {chunks} bad chunks (reference decoder: {ref.counters.errors})"


def _check_lost(c: Conformance):
    pr = c.probe
    before = pr.snapshot()
    cyc = pr.step(lose=1)
    c.expect_answered(cyc, "after a lost SENSORS")
    said = f"SENSORS seq {cyc.seq} after a lost one answered in {_ms(cyc.latency_s)}"
    after = pr.snapshot()
    if before is None or after is None:
        return SKIP, f"{said}; sensors_gaps not checked: no TELEMETRY"
    gaps = after.telemetry.sensors_gaps - before.telemetry.sensors_gaps
    if gaps != 1:
        return FAIL, f"{said}, but sensors_gaps rose by {gaps} for 1 missing SENSORS"
    return PASS, f"{said}; sensors_gaps +1"


def _all_cycles(c: Conformance) -> list[Cycle]:
    return [cy for s in c.sessions for cy in s.cycles if cy.answered]


def _check_sensors_seq(c: Conformance):
    cycles = _all_cycles(c)
    if not cycles:
        return SKIP, "no SENSORS was answered: nothing to check"
    wrong = [(cy.seq, f.msg.sensors_seq) for cy in cycles for f, _ in cy.commands[:1] if f.msg.sensors_seq != cy.seq]
    extra = [cy.seq for cy in cycles if len(cy.commands) > 1]
    if wrong:
        shown = ", ".join(f"SENSORS seq {s} answered with sensors_seq {g}" for s, g in wrong[:3])
        return FAIL, f"{len(wrong)} of {len(cycles)} COMMANDs name the wrong SENSORS: {shown}"
    if extra:
        return FAIL, f"{len(extra)} SENSORS answered by more than one COMMAND (seq {', '.join(map(str, extra[:5]))})"
    return PASS, f"{len(cycles)} of {len(cycles)} COMMANDs carry the seq of the SENSORS they answer, one each"


def _check_t_us(c: Conformance):
    cycles = _all_cycles(c)
    if not cycles:
        return SKIP, "no SENSORS was answered: nothing to check"
    wrong = [(cy.t_us, f.t_us) for cy in cycles for f, _ in cy.commands[:1] if f.t_us != cy.t_us]
    if wrong:
        shown = ", ".join(f"SENSORS t_us {s} answered with t_us {g}" for s, g in wrong[:3])
        return FAIL, f"{len(wrong)} of {len(cycles)} COMMANDs do not repeat the SENSORS time: {shown}"
    return PASS, f"{len(cycles)} of {len(cycles)} COMMANDs repeat the t_us of the SENSORS they answer"


def _check_tx_seq(c: Conformance):
    n, jumps = 0, []
    for s in c.sessions:
        prev = None
        for f in s.frames:
            if prev is not None:
                n += 1
                if f.seq != (prev.seq + 1) & 0xFFFF:
                    jumps.append(f"{p.MsgType(f.msg_type).name} seq {f.seq} after "
                                 f"{p.MsgType(prev.msg_type).name} seq {prev.seq}")
            prev = f
    if not n:
        return SKIP, "fewer than two frames received from the flight code"
    if jumps:
        dropped = "; ".join(note for note in (pr.refused_note(None) for pr in c.probes) if note)
        why = f" (the numbers of dropped frames are missing here: {dropped})" if dropped else ""
        return FAIL, f"{len(jumps)} of {n} consecutive frames not numbered +1: {'; '.join(jumps[:3])}{why}"
    return PASS, f"{n + len(c.sessions)} frames from the flight code, each numbered one more than the last"


ITEMS: tuple[Item, ...] = (
    Item("hello", "HELLO answered, protocol version, printable name", "boot", "HELLO (0x01)",
         "answer every HELLO request with your HELLO (protocol_version as the harness, firmware_name printable "
         "ASCII, NUL padded)", _check_hello),
    Item("config.core", "CONFIG of every core parameter ACCEPTED", "config",
         "Parameters: core, optional, required",
         "accept every core parameter (ids 1-18) in its range with status 0 and echo the value in force",
         _check_config_core),
    Item("config.optional", "CONFIG of an optional parameter answered", "config",
         "Parameters: core, optional, required",
         "answer an optional parameter you use with 0 (value echoed), one you do not with 1", _check_config_optional),
    Item("config.out_of_range", "out-of-range CONFIG refused, old value kept", "config", "CONFIG_ACK (0x03)",
         "range-check every CONFIG: answer status 2 and leave the old value in force (ack.value = old value)",
         _check_out_of_range),
    Item("config.unknown_id", "unknown parameter id refused", "config", "CONFIG_ACK (0x03)",
         "answer a CONFIG whose id you do not know with status 1 and apply nothing", _check_unknown_id),
    Item("commit", "COMMIT acknowledged COMMITTED; flying starts only after it", "config", "Handshake, step by step",
         "answer CONFIG param_id 0 with flags COMMIT by CONFIG_ACK param_id 0 status 3, then answer SENSORS",
         _check_commit),
    Item("latency", "answer latency within the cycle budget", "flight", "Lockstep, timing and sequence numbers",
         "answer every SENSORS with its COMMAND within the rig's cycle_timeout_s: do the cycle's work before "
         "anything slow (logging, telemetry), never block on I/O", _check_latency),
    Item("telemetry.counters", "TELEMETRY rx_frames_ok counts good frames, nothing else moves", "flight",
         "TELEMETRY (0x12)", "count every good frame in rx_frames_ok (wrapping); on a clean link with plausible "
         "SENSORS no error, sensors_gaps or sensors_rejected count may rise",
         _check_counters),
    Item("frames.bad_crc", "bad CRC counted and survived", "flight", "Error counters and resynchronisation",
         "drop a frame whose CRC does not match, count it in rx_crc_errors, resume at the next 0x00",
         _check_bad("frame with a bad CRC", _send_bad_crc, "rx_crc_errors")),
    Item("frames.truncated", "truncated frame counted and survived", "flight", "Error counters and resynchronisation",
         "a packet shorter than header + CRC is a framing error: count rx_framing_errors, resume at the next 0x00",
         _check_bad("truncated frame", _send_truncated, "rx_framing_errors")),
    Item("frames.oversize", "oversize frame counted and survived", "flight", "Error counters and resynchronisation",
         "bound the receive buffer: more than 253 bytes without a 0x00 is one framing error, then discard up "
         "to the next 0x00", _check_bad("oversize frame (300 bytes without a delimiter)", _send_oversize,
                                        "rx_framing_errors")),
    Item("frames.bad_length", "known type with a wrong length counted and survived", "flight",
         "Error counters and resynchronisation", "check each body length against the message table: count "
         "rx_length_errors", _check_bad("SENSORS 8 bytes short", _send_bad_length, "rx_length_errors")),
    Item("frames.unknown_type", "unknown message type counted and survived", "flight",
         "Error counters and resynchronisation", "count a well-formed frame of an unknown type in rx_unknown_msgs "
         "and carry on", _check_bad("frame of unknown type 0x7e", _send_unknown_type, "rx_unknown_msgs")),
    Item("frames.garbage", "garbage between frames counted once and survived", "flight",
         "Error counters and resynchronisation", "bytes that are no frame cost one counted error up to the next 0x00, "
         "never the good frame after it", _check_bad("garbage between frames", _send_garbage, None)),
    Item("frames.split", "frame split across writes reassembled", "flight", "Framing",
         "keep a partial frame across reads until its 0x00: a UART delivers bytes in any chunking",
         _check_split),
    Item("recovery.garbage_burst", "recovery after a garbage burst", "flight", "Error counters and resynchronisation",
         "after noise, resynchronise at the next 0x00 and answer the next SENSORS", _check_burst),
    Item("sensors.lost", "lost SENSORS: the next one answered (and counted in sensors_gaps)", "flight",
         "Lost and late frames, each direction", "answer a SENSORS whatever its seq; count the missing numbers in "
         "sensors_gaps", _check_lost),
    Item("seq.sensors_seq", "COMMAND.sensors_seq names the SENSORS answered", "none",
         "Lockstep, timing and sequence numbers",
         "copy the answered SENSORS' header seq into COMMAND.sensors_seq; one COMMAND per SENSORS",
         _check_sensors_seq),
    Item("seq.t_us", "COMMAND t_us repeats the SENSORS t_us", "none",
         "Lockstep, timing and sequence numbers",
         "stamp each COMMAND header with the t_us of the SENSORS it answers", _check_t_us),
    Item("seq.tx", "the flight code numbers its frames +1 each", "none",
         "Lockstep, timing and sequence numbers",
         "number every frame you send one more than the last (wrapping at 65536), whatever its type",
         _check_tx_seq),
)
ITEM_IDS = tuple(i.id for i in ITEMS)


def conform(rig, *, cycles: int = 50, junit_xml: Path | str | None = None, log_path: Path | str | None = None,
            only: list[str] | None = None) -> ConformReport:
    """Run the checklist on a rig (name, path or RigSpec); write JUnit XML if asked."""
    if cycles < 1:
        from harness.errors import ConfigError

        raise ConfigError(f"--cycles {cycles}: at least 1 cycle is needed")
    report = Conformance(rig, cycles=cycles, log_path=log_path, only=only).run()
    if junit_xml:
        report.write_junit(junit_xml)
    return report
