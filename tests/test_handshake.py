"""Protocol v2 contract, harness side: the handshake (core / optional / required parameters,
COMMIT), a v1 flight code, the HELLO name on a terminal, and the lost-command policies.

Misbehaving flight codes are the real C flight code (in-process loopback) behind a transport
wrapper that rewrites or drops its frames and re-encodes them with a good CRC, so the harness
sees exactly the bytes such a flight code would send.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness import protocol as p
from harness.faults import LinkDrop
from harness.runner import fly
from harness.scenario_files import terminal_descent
from harness.transports.loopback import LoopbackTransport


class Rewriting(LoopbackTransport):
    """The loopback flight code, with every frame it sends passed through ``rewrite(frame) ->
    frame | None`` (None: the frame is lost) and every frame it is sent through ``inbound``."""

    def __init__(self, rewrite=None, inbound=None):
        super().__init__()
        self.rewrite = rewrite or (lambda f: f)
        self.inbound = inbound or (lambda f: f)
        self.sensors_written = 0

    def write(self, data: bytes) -> None:
        out = []
        for chunk in data.split(b"\x00")[:-1] if data.endswith(b"\x00") else [data]:
            if not chunk:
                out.append(b"\x00")
                continue
            fr = p.decode_frame(chunk)
            if fr.msg_type == p.MsgType.SENSORS:
                self.sensors_written += 1
            fr = self.inbound(fr)
            if fr is not None:
                out.append(p.encode_frame(fr.msg, fr.seq, fr.t_us))
        if out:
            super().write(b"".join(out))

    def read(self, timeout_s: float = 0.0) -> bytes:
        data = super().read(timeout_s)
        out = []
        for chunk in data.split(b"\x00")[:-1]:
            fr = self.rewrite(p.decode_frame(chunk))
            if fr is not None:
                out.append(p.encode_frame(fr.msg, fr.seq, fr.t_us) if isinstance(fr, p.Frame) else fr)
        return b"".join(out)


def _ack_status(param_id: int, status: int, value: float = 0.0):
    def rewrite(fr):
        if fr.msg_type == p.MsgType.CONFIG_ACK and fr.msg.param_id == param_id:
            return fr._replace(msg=p.ConfigAck(param_id, status, value))
        return fr
    return rewrite


SHORT: dict = {}  # the nominal terminal descent (127 s simulated, about a second on loopback)


def _scenario(**kw):
    return terminal_descent(**{**SHORT, **kw})


# ------------------------------------------------------------------------------- handshake
def test_refused_optional_parameter_flies_and_is_listed(tmp_path):
    """A flight code answering UNKNOWN_ID to an id it does not use (LRF_BORE_X, id 31) flies;
    the verdict and summary.txt name the parameter and the status."""
    res = fly(_scenario(), Rewriting(_ack_status(31, p.ConfigStatus.UNKNOWN_ID)), artifacts=tmp_path)
    assert res.outcome == "landed", res.verdict()
    assert len(res.params_refused) == 1
    assert "LRF_BORE_X (id 31)" in res.params_refused[0] and "UNKNOWN_ID" in res.params_refused[0]
    assert res.params_refused[0].startswith("LRF_BORE_X (id 31) = 0: UNKNOWN_ID"), res.params_refused  # unit "-"
    summary = (tmp_path / "summary.txt").read_text()
    assert "refused 1 optional parameter" in summary and "LRF_BORE_X (id 31)" in summary
    assert "UNKNOWN_ID" in res.verdict()


def test_all_accepted_lists_nothing():
    res = fly(_scenario(), LoopbackTransport())
    assert res.outcome == "landed" and res.params_refused == []
    assert "refused" not in res.verdict()


@pytest.mark.parametrize("status", [p.ConfigStatus.UNKNOWN_ID, p.ConfigStatus.OUT_OF_RANGE])
def test_refused_core_parameter_fails_naming_it(tmp_path, status):
    res = fly(_scenario(), Rewriting(_ack_status(11, status, 700.0)), artifacts=tmp_path)
    assert res.outcome == "link-failure"
    assert res.error.startswith("HandshakeError") and "MASS0" in res.error and "id 11" in res.error
    assert "core parameter" in res.error and status.name in res.error
    assert (tmp_path / "summary.txt").exists() and (tmp_path / "link.log").stat().st_size > 8  # artefacts kept


def test_refused_scenario_required_parameter_fails_naming_it():
    sc = _scenario(required_params=("LRF_BORE_X",))
    res = fly(sc, Rewriting(_ack_status(31, p.ConfigStatus.UNKNOWN_ID)))
    assert res.outcome == "link-failure"
    assert "HandshakeError" in res.error and "LRF_BORE_X" in res.error and "required" in res.error
    assert "UNKNOWN_ID" in res.error


def test_required_parameter_not_sent_is_a_config_error():
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="NAV_SIGMA_H0"):
        fly(_scenario(required_params=("NAV_SIGMA_H0",)), LoopbackTransport())


@pytest.mark.parametrize("status,value,words", [
    (p.ConfigStatus.ACCEPTED, 0.0, ["ACCEPTED"]),
    (p.ConfigStatus.COMMIT_REFUSED, 11.0, ["COMMIT_REFUSED", "first offending parameter id 11"]),
    (9, 0.0, ["9 (undefined)"]),
])
def test_commit_not_committed_fails_naming_the_handshake(status, value, words):
    """Today's failure: a flight code that acknowledged COMMIT with the wrong status was flown
    anyway (and crashed). Now nothing is flown: the run fails before the first SENSORS."""
    fc = Rewriting(_ack_status(p.COMMIT_PARAM_ID, status, value))
    res = fly(_scenario(), fc)
    assert res.outcome == "link-failure" and fc.sensors_written == 0
    assert res.error.startswith("HandshakeError: handshake failed: COMMIT")
    for w in words:
        assert w in res.error


def test_commit_is_its_own_frame_after_every_parameter():
    seen = []

    def inbound(fr):
        if fr.msg_type == p.MsgType.CONFIG:
            seen.append(fr.msg)
        return fr

    res = fly(_scenario(), Rewriting(inbound=inbound))
    assert res.outcome == "landed"
    assert seen[-1] == p.Config(0, 0.0, p.CONFIG_COMMIT)
    assert all(c.flags == 0 and c.param_id != 0 for c in seen[:-1]) and len(seen) > 18
    assert {c.param_id for c in seen[:-1]} >= set(range(1, 19))  # the whole core set is sent


def test_v1_flight_code_is_refused_naming_both_versions():
    def as_v1(fr):
        if fr.msg_type == p.MsgType.HELLO:
            pkt = bytearray(p.encode_packet(fr.msg._replace(protocol_version=1), fr.seq, fr.t_us)[:-2])
            pkt[0] = 1
            return p.cobs_encode(bytes(pkt) + p.CRC.pack(p.crc16(bytes(pkt)))) + b"\x00"
        return fr

    res = fly(_scenario(), Rewriting(as_v1), hello_timeout_s=5.0)
    assert res.outcome == "link-failure" and res.wall_time_s < 4.0
    assert "HandshakeError" in res.error and "protocol 1" in res.error and "protocol 2" in res.error


def test_hello_name_with_terminal_escapes_is_shown_escaped(tmp_path):
    evil = "\x1b[2J\x1b]0;x\x07pwn"

    def rename(fr):
        return fr._replace(msg=fr.msg._replace(firmware_name=evil)) if fr.msg_type == p.MsgType.HELLO else fr

    res = fly(_scenario(), Rewriting(rename), artifacts=tmp_path)
    text = res.verdict() + (tmp_path / "summary.txt").read_text()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in res.firmware and "pwn" in res.firmware


# ------------------------------------------------------------------------- lost COMMANDs
class DropsCommands(Rewriting):
    """Loses the COMMAND of every cycle in ``cycles`` (0-based count of SENSORS sent)."""

    def __init__(self, cycles):
        super().__init__(self._drop)
        self.cycles = set(cycles)

    def _drop(self, fr):
        if fr.msg_type == p.MsgType.COMMAND and self.sensors_written - 1 in self.cycles:
            return None
        return fr


LOST = range(100, 400, 7)  # about 43 cycles with the engine burning


def _lost_rows(res):
    t = res.telemetry["t_s"]
    return [int(i) for i in np.nonzero(np.isin(np.rint(t * 50).astype(int), list(LOST)))[0]]


def test_policy_hold_keeps_applying_the_last_command():
    res = fly(_scenario(), DropsCommands(LOST), lost_command="hold")
    tm = res.telemetry
    rows = _lost_rows(res)
    assert res.link_stats["lost_commands"] == len(rows) == len(LOST)
    assert res.link_stats["lost_command_policy"] == "hold"
    for i in rows:
        assert tm["throttle_cmd"][i] == tm["throttle_cmd"][i - 1] and tm["engine_on"][i] == tm["engine_on"][i - 1]
    assert sum(tm["engine_on"][i] for i in rows) == len(rows)  # the engine kept burning through them
    assert f"lost COMMANDs: {len(LOST)} (policy hold" in res.verdict()


def test_policy_engine_off_cuts_the_engine_for_each_lost_cycle():
    res = fly(_scenario(), DropsCommands(LOST), lost_command="engine-off")
    tm = res.telemetry
    rows = _lost_rows(res)
    assert res.link_stats["lost_commands"] == len(LOST)
    assert all(tm["engine_on"][i] == 0 and tm["throttle_cmd"][i] == 0.0 for i in rows)
    assert all(tm["engine_on"][i + 1] == 1 for i in rows)  # the next COMMAND is flown again
    assert "policy engine-off" in res.verdict()


def test_policy_fail_ends_the_run_naming_the_cycle(tmp_path):
    res = fly(_scenario(), DropsCommands([150]), lost_command="fail", artifacts=tmp_path)
    assert res.outcome == "link-failure" and res.error.startswith("CommandLost")
    assert "cycle 150" in res.error and "t=3.000 s" in res.error and "'fail'" in res.error
    assert res.telemetry["t_s"][-1] == pytest.approx(3.0) and (tmp_path / "telemetry.csv").exists()


def test_scenario_policy_overrides_the_rigs():
    res = fly(_scenario(lost_command="engine-off"), DropsCommands(LOST), lost_command="hold")
    assert res.link_stats["lost_command_policy"] == "engine-off"
    assert all(res.telemetry["engine_on"][i] == 0 for i in _lost_rows(res))


def test_unknown_policy_is_refused():
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="hold, engine-off, fail"):
        fly(_scenario(), LoopbackTransport(), lost_command="coast")


def test_commands_dropped_by_a_link_fault_are_counted_under_the_policy():
    """The faults module's link drop on COMMAND frames: every dropped COMMAND is a lost one."""
    import re

    drop = LinkDrop(direction="down", message="COMMAND", prob=0.05)
    res = fly(_scenario(faults=(drop,), seed=3), LoopbackTransport(), lost_command="engine-off")
    (note,) = [n for n in res.notes if n.startswith("fault link_drop")]
    dropped = int(re.search(r"(\d+) effects", note).group(1))
    assert dropped > 5
    assert res.link_stats["lost_commands"] == res.link_stats["missed_cycles"] == dropped


def test_scenario_file_keys_required_params_and_lost_command(tmp_path):
    from harness.errors import ConfigError
    from harness.scenario_files import load_scenario

    good = tmp_path / "ok.toml"
    good.write_text('[scenario]\nname = "ok"\nrequired_params = ["LRF_GATE_POLICY"]\nlost_command = "engine-off"\n')
    sc = load_scenario(good)
    assert sc.required_params == ("LRF_GATE_POLICY",) and sc.lost_command == "engine-off"
    assert load_scenario("nominal-terminal-descent").lost_command is None  # None: the rig's policy
    for body, words in (('required_params = ["NO_SUCH"]', ("required_params", "LRF_GATE_POLICY")),
                        ('lost_command = "coast"', ("lost_command", "hold, engine-off, fail"))):
        bad = tmp_path / "bad.toml"
        bad.write_text(f'[scenario]\nname = "bad"\n{body}\n')
        with pytest.raises(ConfigError) as ei:
            load_scenario(bad)
        assert str(bad) in str(ei.value) and all(w in str(ei.value) for w in words)


def _library():
    from harness.scenario_files import library_names, variants

    return [f"{n}:{v}" if v else n for n in library_names() for v in (variants(n) or [None])]


@pytest.mark.parametrize("name", _library())
def test_a_flight_code_refusing_every_optional_id_flies_every_library_scenario(name):
    """Issue 12: a flight code that answers UNKNOWN_ID to every id outside the core set gets
    through the handshake of every library scenario (first 2 s flown) and is told what it refused."""
    from harness.params import CORE_PARAMS
    from harness.scenario_files import load_scenario

    def refuse_optional(fr):
        if fr.msg_type == p.MsgType.CONFIG_ACK and fr.msg.param_id not in CORE_PARAMS.values() \
                and fr.msg.param_id != p.COMMIT_PARAM_ID:
            return fr._replace(msg=p.ConfigAck(fr.msg.param_id, p.ConfigStatus.UNKNOWN_ID, 0.0))
        return fr

    sc = load_scenario(name)
    res = fly(sc.with_(t_max_s=2.0), Rewriting(refuse_optional))
    assert res.outcome == "timeout", res.verdict()
    refused = {r.split(" (id")[0] for r in res.params_refused}
    assert {"LRF_BORE_X", "LRF_POS_Z"} | set(sc.flight_params) <= refused


def test_flight_code_counters_and_fault_flags_reach_the_verdict():
    def flag(fr):
        if fr.msg_type == p.MsgType.TELEMETRY:
            return fr._replace(msg=fr.msg._replace(sensors_gaps=3, sensors_rejected=2, fault_flags=0x5))
        return fr

    res = fly(_scenario(t_max_s=1.0), Rewriting(flag))
    assert (res.flight_counters["sensors_gaps"], res.flight_counters["sensors_rejected"]) == (3, 2)
    v = res.verdict()
    assert "'sensors_gaps': 3" in v and "'sensors_rejected': 2" in v and "fault flags 0x00000005" in v
