"""The `program` rig kind: fsil builds and starts a flight program of the user's, on a pty (or TCP
port) it creates, and says exactly what became of it (exit status, signal, stopped), with the last
lines of its stderr; plus the far-end diagnosis of every process rig and `fsil rigs`.

The far end is a real process (tests/far_end/scripted_fsw.py) on a real pty."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.rigs import RigError, load_rig, open_rig, process_state, rig_from_dict
from harness.scenario_files import terminal_descent

FAR_END = Path(__file__).parent / "far_end" / "scripted_fsw.py"
SHORT = terminal_descent(t_max_s=2.0)
RELAXED = {"cycle_timeout_s": 1.5, "stall_cycles": 7}  # a far end that should fly to the end, even on a busy machine


def program_rig(tmp_path, mode, *, link="pty", timing=None, build=None, name="scripted", far_end=FAR_END):
    port = "{port}" if link == "pty" else "tcp:{tcp_port}"
    lines = [f'[rig]\nname = "{name}"\nkind = "program"\n', "[program]",
             f"command = {json.dumps([sys.executable, str(far_end), port, mode])}",
             f'link = "{link}"', "startup_timeout_s = 10.0", "stop_timeout_s = 1.0"]
    if build is not None:
        lines.append(f"build = {json.dumps(build)}")
    t = {"cycle_timeout_s": 0.2, "stall_cycles": 3, "hello_timeout_s": 10.0, **(timing or {})}
    lines.append("[timing]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in t.items()))
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_program_that_exits_gives_its_status_and_the_last_stderr_lines_escaped(tmp_path):
    with open_rig(program_rig(tmp_path, "exit3")) as up:
        res = up.fly(SHORT, artifacts=tmp_path / "run")
    assert res.outcome == "link-failure"
    assert "exited with status 3" in res.error, res.error
    assert "fatal: IMU self-test failed" in res.error and "calibrating IMU" in res.error
    # the terminal escape from the program's stderr is shown escaped, never raw
    assert "\x1b" not in res.error and "\\x1b[31mred" in res.error
    # stdout and stderr are in the run's artefacts
    assert "mode exit3" in (tmp_path / "run" / "program.stdout.txt").read_text()
    assert "IMU self-test failed" in (tmp_path / "run" / "program.stderr.txt").read_text()


def test_a_program_that_ends_before_opening_its_port_fails_the_bring_up_naming_why(tmp_path):
    with pytest.raises(RigError) as err:
        with open_rig(program_rig(tmp_path, "exit-early")):
            pass
    msg = str(err.value)
    assert "rig scripted: the program ended before opening /dev/pts/" in msg
    assert "exited with status 3" in msg and "fatal: no licence file" in msg


def test_a_program_that_never_says_hello_is_named_alive_with_its_stderr(tmp_path):
    with open_rig(program_rig(tmp_path, "mute", timing={"hello_timeout_s": 1.0})) as up:
        res = up.fly(SHORT)
        proc = up.process
    assert res.outcome == "link-failure"
    assert "HandshakeError" in res.error and "no HELLO from the flight code within 1.0 s" in res.error
    assert "is still running (alive but not answering)" in res.error and "waiting for the GNSS fix" in res.error
    assert proc.returncode == 0  # stopped at the end: its SIGTERM handler ran


def test_a_program_killed_by_a_signal_is_named_by_the_signal(tmp_path):
    with open_rig(program_rig(tmp_path, "segv")) as up:
        res = up.fly(SHORT)
    assert res.outcome == "link-failure"
    assert "was killed by SIGSEGV" in res.error, res.error


def test_a_stopped_program_is_called_stopped_not_running_and_is_still_ended_at_the_end(tmp_path):
    with open_rig(program_rig(tmp_path, "stop")) as up:
        res = up.fly(SHORT, artifacts=tmp_path / "run")
        proc = up.process
    assert res.outcome == "link-failure"
    assert "FlightCodeStalled" in res.error and "no COMMAND for 3 consecutive cycles" in res.error
    assert "is stopped (SIGSTOP)" in res.error and "still running" not in res.error, res.error
    assert "about to stop" in res.error  # the last stderr line
    # taken down cleanly: SIGTERM (+SIGCONT) reached the stopped program and it exited on its own
    assert proc.returncode == 0
    assert "got SIGTERM, bye" in (tmp_path / "run" / "program.stderr.txt").read_text()


def test_a_program_that_ignores_sigterm_is_killed_after_the_stop_timeout(tmp_path):
    with open_rig(program_rig(tmp_path, "deaf-to-term", timing=RELAXED)) as up:
        res = up.fly(SHORT)
        proc = up.process
    assert res.outcome in ("timeout", "crashed", "hard-landing", "off-site"), res.verdict()  # flew to the end
    assert proc.returncode == -signal.SIGKILL


def test_rig_settings_hold_on_the_program_rig_and_the_far_end_is_serviced_over_tcp(tmp_path):
    with open_rig(program_rig(tmp_path, "serve", link="tcp", timing=RELAXED)) as up:
        res = up.fly(SHORT, artifacts=tmp_path / "run")
        proc = up.process
    assert res.error is None and res.link_stats["exchanges"] > 90
    assert proc.returncode == 0  # SIGTERM handler ran
    settings = json.loads((tmp_path / "run" / "rig.json").read_text())
    assert settings["cycle_timeout_s"] == 1.5 and settings["stall_cycles"] == 7
    assert settings["program"]["link"] == "tcp"


def test_process_state_after_sigkill_is_never_still_running():
    """issue 13: the diagnosis polled without waiting and said "still running" after SIGKILL."""
    for _ in range(10):
        proc = subprocess.Popen(["sleep", "30"])
        os.kill(proc.pid, signal.SIGKILL)
        assert process_state(proc, "sleep") == f"sleep (pid {proc.pid}) was killed by SIGKILL"


def test_process_state_of_a_stopped_and_of_a_running_process():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert f"(pid {proc.pid}) is stopped (SIGSTOP)" in process_state(proc, "sleep")
        assert f"(pid {proc.pid}) is stopped (SIGSTOP)" in process_state(proc, "sleep")  # asked twice: same
        os.kill(proc.pid, signal.SIGCONT)
        assert "is still running" in process_state(proc, "sleep", wait_s=0.05)
    finally:
        proc.kill()
        proc.wait()


def test_a_failing_build_reports_its_status_and_last_output_lines(tmp_path):
    script = "import sys; print('cc -c fsw.c'); sys.stderr.write('fsw.c:3:5: error: expected ; before }\\n'); sys.exit(2)"
    rig = program_rig(tmp_path, "serve", build=[sys.executable, "-c", script])
    with pytest.raises(RigError) as err:
        with open_rig(rig):
            pass
    msg = str(err.value)
    assert "build" in msg and "failed (exit status 2)" in msg, msg
    assert "fsw.c:3:5: error: expected ; before }" in msg and "cc -c fsw.c" in msg


def test_a_missing_build_tool_or_program_is_missing_for_fsil_rigs_and_open_rig(tmp_path):
    rig = program_rig(tmp_path, "serve", build=["no-such-build-tool-fsil"])
    assert load_rig(rig).requirements() == ["build tool 'no-such-build-tool-fsil' (program.build) not found"]
    with pytest.raises(RigError, match="no-such-build-tool-fsil"):
        with open_rig(rig):
            pass
    (tmp_path / "fsw").write_text("#!/bin/sh\n")  # exists, not executable
    spec = rig_from_dict({"rig": {"kind": "program"}, "program": {"command": ["./fsw", "{port}"]}},
                         tmp_path / "plain.toml")
    assert spec.requirements() == [f"program {tmp_path / 'fsw'} is not an executable file (chmod +x?)"]
    spec = rig_from_dict({"rig": {"kind": "program"}, "program": {"command": ["./nope", "{port}"]}},
                         tmp_path / "plain.toml")
    assert "does not exist" in spec.requirements()[0]


def _fsil(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def test_fsil_rigs_exit_status_ready_missing_broken(tmp_path):
    ok = _fsil("rigs", "loopback")
    assert ok.returncode == 0 and " ready " in ok.stdout, ok.stdout + ok.stderr
    missing = tmp_path / "missing.toml"
    missing.write_text('[rig]\nkind = "program"\n[program]\ncommand = ["./not-built-yet", "{port}"]\n')
    out = _fsil("rigs", "loopback", missing)
    assert out.returncode == 1 and "MISSING" in out.stdout and "not-built-yet does not exist" in out.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text('[rig]\nkind = "loopback"\n[timing]\ncycle_timeout_s = nan\n')
    out = _fsil("rigs", broken, missing)
    assert out.returncode == 2 and "BROKEN" in out.stdout and "cycle_timeout_s = nan" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    unknown = _fsil("rigs", "no-such-rig")
    assert unknown.returncode == 2 and "unknown rig 'no-such-rig'" in unknown.stdout


def test_a_host_pty_source_dir_without_the_reference_layout_is_refused_at_load_time(tmp_path):
    """issue 12: a user's folder as source_dir gave "ready", then a FileNotFoundError traceback."""
    (tmp_path / "my_fsw").mkdir()
    (tmp_path / "my_fsw" / "main.c").write_text("int main(void) { return 0; }\n")
    rig = tmp_path / "mine.toml"
    rig.write_text('[rig]\nkind = "host-pty"\n[flight_code]\nsource_dir = "my_fsw"\n')
    with pytest.raises(ConfigError) as err:
        load_rig(rig)
    assert "lacks fsw_params.def, sources.txt, fsw_app.h" in str(err.value) and 'kind = "program"' in str(err.value)
    out = _fsil("rigs", rig)
    assert out.returncode == 2 and "BROKEN" in out.stdout and "lacks" in out.stdout


def test_a_non_utf8_rig_file_is_a_clear_error(tmp_path):
    rig = tmp_path / "latin1.toml"
    rig.write_bytes('[rig]\nkind = "loopback"\ndescription = "caf\xe9"\n'.encode("latin-1"))
    out = _fsil("run", "nominal-terminal-descent", "--rig", rig, "--out", tmp_path / "runs")
    assert out.returncode == 2 and "latin1.toml" in out.stderr and "UTF-8" in out.stderr
    assert "Traceback" not in out.stderr


def test_docs_rigs_md_holds_the_generated_schema_table():
    """docs/rigs.md is the complete rig-file reference: its key table is the schema's."""
    from harness.rigs import schema_markdown

    doc = (Path(__file__).parents[1] / "docs" / "rigs.md").read_text()
    begin, end = "(generated: python -m harness.rigs schema) -->\n", "\n<!-- rig-schema:end -->"
    assert doc[doc.index(begin) + len(begin):doc.index(end)] == schema_markdown()
    for key in ("timing.lost_command", "program.command", "program.startup_timeout_s", "port.reconnect_s"):
        assert f"| `{key}` |" in doc


def test_fsil_run_detects_a_stall_with_the_rig_files_timing(tmp_path):
    """issue 12: `fsil run --rig FILE` ignored [timing] (a stall took 54 s instead of the rig's 1 s).
    Here the rig says 3 cycles of 0.2 s: the CLI run names exactly that, and the stopped program."""
    rig = program_rig(tmp_path, "stop")
    out = _fsil("run", "nominal-terminal-descent", "--rig", rig, "--out", tmp_path / "runs")
    assert out.returncode == 1, out.stderr
    assert "no COMMAND for 3 consecutive cycles" in out.stdout and "(limit 3 cycles, 0.20 s wall each)" in out.stdout
    assert "is stopped (SIGSTOP)" in out.stdout
