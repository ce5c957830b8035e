"""`fsil conform`: the checklist passes on every rig that flies the reference flight code, and each
deliberately broken flight program (tests/broken_fsw/broken_fsw.c built with one -DBREAK_xxx,
flown through the `program` rig kind) fails exactly the item it breaks and nothing else."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import protocol as p
from harness.conform import FAIL, ITEM_IDS, PASS, SKIP, conform, garbage_burst
from harness.rigs import load_rig

REPO = Path(__file__).resolve().parent.parent
BROKEN_SRC = REPO / "tests" / "broken_fsw" / "broken_fsw.c"
CODEC = [REPO / "firmware_stub" / "fsw_protocol.c"]
EXAMPLE = REPO / "examples" / "simple_lander"   # broken_fsw opens and writes its port with its serial_port.[ch]
HEADERS = [REPO / "firmware_stub" / "fsw_protocol.h", REPO / "firmware_stub" / "fsw_params.def",
           EXAMPLE / "serial_port.h"]
CYCLES = 12  # latency cycles per run: the slow variant stalls 1 s on the 10th SENSORS after COMMIT

#: each variant of broken_fsw.c and the one checklist item it must fail (None: the correct build)
VARIANTS: dict[str, str | None] = {
    "NONE": None,
    "NO_HELLO_ANSWER": "hello",
    "HELLO_VERSION": "hello",
    "CORE_REFUSED": "config.core",
    "RANGE_APPLIED": "config.out_of_range",
    "UNKNOWN_ACCEPTED": "config.unknown_id",
    "COMMIT_ACCEPTED": "commit",
    "SLOW": "latency",
    "FRAMES_OK_STUCK": "telemetry.counters",
    "CRC_NOT_COUNTED": "frames.bad_crc",
    "OVERSIZE_DIES": "frames.oversize",
    "UNKNOWN_AS_LENGTH": "frames.unknown_type",
    "SPLIT": "frames.split",
    "LOST_IGNORED": "sensors.lost",
    "GAPS_NOT_COUNTED": "sensors.lost",
    "SENSORS_SEQ": "seq.sensors_seq",
    "T_US": "seq.t_us",
    "TX_SEQ": "seq.tx",
}


def _cc() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def _build_all(out_dir: Path) -> dict[str, Path]:
    """Compile every variant (in parallel), cached by a hash of sources, flags and compiler."""
    cc = _cc()
    sources = [BROKEN_SRC, *CODEC, EXAMPLE / "serial_port.c"]
    digest = hashlib.sha256()
    for f in [*sources, *HEADERS]:
        digest.update(f.read_bytes())
    digest.update(subprocess.run([cc, "--version"], capture_output=True).stdout)
    key = digest.hexdigest()[:16]
    procs, exes = {}, {}
    for variant in [*VARIANTS, "OLD_VERSION"]:
        exe = out_dir / f"broken_fsw-{variant.lower()}-{key}"
        exes[variant] = exe
        if not exe.exists():
            cmd = [cc, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{REPO / 'firmware_stub'}",
                   f"-I{EXAMPLE}", f"-DBREAK_{variant}", *map(str, sources), "-o", str(exe) + ".tmp"]
            procs[variant] = (subprocess.Popen(cmd, stderr=subprocess.PIPE), exe)
    for variant, (proc, exe) in procs.items():
        _, err = proc.communicate()
        assert proc.returncode == 0, f"broken_fsw -DBREAK_{variant} did not compile:\n{err.decode()}"
        os.replace(str(exe) + ".tmp", exe)
    return exes


@pytest.fixture(scope="session")
def broken_programs() -> dict[str, Path]:
    if _cc() is None:
        pytest.skip("no C compiler (cc or gcc) to build tests/broken_fsw")
    cache = Path(os.environ.get("FSIL_CACHE_DIR") or REPO / ".fsil-cache") / "broken_fsw"
    cache.mkdir(parents=True, exist_ok=True)
    return _build_all(cache)


def _program_rig(tmp: Path, variant: str, exe: Path) -> Path:
    """A `program` rig file that starts this variant on the pty fsil creates."""
    rig = tmp / f"broken-{variant.lower()}.toml"
    rig.write_text(f"""[rig]
name = "broken-{variant.lower()}"
kind = "program"
description = "tests/broken_fsw/broken_fsw.c -DBREAK_{variant}"

[program]
command = ["{exe}", "{{port}}"]
startup_timeout_s = 5.0
stop_timeout_s = 1.0

[timing]
cycle_timeout_s = 0.5
hello_timeout_s = 1.5
""")
    return rig


# --- the reference flight code on every rig ---------------------------------------------------
@pytest.mark.parametrize("reference_rig", ["loopback", "host-pty", "qemu-m4"])
def test_reference_flight_code_passes_every_item(reference_rig, tmp_path):
    spec = load_rig(reference_rig)
    missing = spec.requirements()
    if missing:
        pytest.skip(f"rig {reference_rig} cannot run here: missing {'; '.join(missing)}")
    report = conform(spec, cycles=10, junit_xml=tmp_path / "conform.xml", log_path=tmp_path / "link.log")
    assert [(i.id, i.status) for i in report.items] == [(i, PASS) for i in ITEM_IDS], report.table()
    assert report.firmware == "fsil-ref"
    # the JUnit file says the same, one test case per item, none failed
    from junitparser import JUnitXml

    suites = list(JUnitXml.fromfile(str(tmp_path / "conform.xml")))
    cases = [c for s in suites for c in s]
    assert [c.name for c in cases] == list(ITEM_IDS)
    assert all(c.is_passed for c in cases)
    assert (tmp_path / "link.log").stat().st_size > 1000  # both directions logged


def test_example_program_passes_every_item(tmp_path):
    spec = load_rig(REPO / "examples" / "simple_lander" / "rig.toml")
    missing = spec.requirements()
    if missing:
        pytest.skip(f"rig {spec.name} cannot run here: missing {'; '.join(missing)}")
    report = conform(spec, cycles=10)
    assert report.failed == [], report.table()


# --- broken flight programs through the program rig -------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_broken_program_fails_exactly_its_item(variant, broken_programs, tmp_path):
    rig = _program_rig(tmp_path, variant, broken_programs[variant])
    report = conform(rig, cycles=CYCLES, junit_xml=tmp_path / "conform.xml")
    want = VARIANTS[variant]
    assert set(report.failed) == ({want} if want else set()), report.table()
    assert not [i.id for i in report.items if i.status == SKIP], report.table()
    if want:
        item = next(i for i in report.items if i.id == want)
        assert "docs/protocol.md" in item.hint  # every FAIL names the section to read
        from junitparser import JUnitXml

        cases = [c for s in JUnitXml.fromfile(str(tmp_path / "conform.xml")) for c in s]
        assert [c.name for c in cases if not c.is_passed] == [want]


def test_a_flight_code_of_another_version_is_named_and_nothing_else_runs(broken_programs, tmp_path):
    rig = _program_rig(tmp_path, "OLD_VERSION", broken_programs["OLD_VERSION"])
    report = conform(rig, cycles=3)
    hello = report.items[0]
    assert hello.id == "hello" and hello.status == FAIL
    assert f"speaks protocol {p.PROTOCOL_VERSION - 1}" in hello.detail and \
        f"harness speaks {p.PROTOCOL_VERSION}" in hello.detail
    assert [i.status for i in report.items[1:]] == [SKIP] * (len(ITEM_IDS) - 1)
    assert report.restarts == 0


def test_a_dead_program_is_named_with_its_signal(broken_programs, tmp_path):
    """The program that dies on an oversize frame: the FAIL says how it ended, and the items after
    it pass because the rig is brought up afresh."""
    rig = _program_rig(tmp_path, "OVERSIZE_DIES", broken_programs["OVERSIZE_DIES"])
    report = conform(rig, cycles=3)
    item = next(i for i in report.items if i.id == "frames.oversize")
    assert item.status == FAIL and "SIGABRT" in item.detail, item.detail
    assert report.restarts == 1
    assert "line buffer overflow" in item.detail  # the program's last stderr line


def test_a_rig_that_will_not_come_back_is_said_once(broken_programs, tmp_path):
    """The program dies on the oversize frame and its second start fails: the next item says why
    the rig could not be brought up afresh, every later item that needs the link is not run, and
    the report keeps everything measured before."""
    once = tmp_path / "started-once"
    exe = broken_programs["OVERSIZE_DIES"]
    rig = tmp_path / "once.toml"
    rig.write_text(f"""[rig]
name = "once"
kind = "program"
[program]
command = ["/bin/sh", "-c", "if [ -e {once} ]; then echo 'second start refused' >&2; exit 3; fi; touch {once}; exec {exe} $0", "{{port}}"]
stop_timeout_s = 1.0
[timing]
cycle_timeout_s = 0.5
hello_timeout_s = 1.5
""")
    report = conform(rig, cycles=3)
    status = {i.id: i for i in report.items}
    ids = list(ITEM_IDS)
    after = ids[ids.index("frames.oversize") + 1]
    assert status["frames.oversize"].status == FAIL
    assert status[after].status == FAIL and "could not be brought up afresh" in status[after].detail
    assert "exited with status 3" in status[after].detail and "second start refused" in status[after].detail
    flying_later = [i for i in ids[ids.index(after) + 1:] if not i.startswith("seq.")]
    assert all(status[i].status == SKIP for i in flying_later), report.table()
    assert all(status[i].status == PASS for i in ids[:ids.index("frames.oversize")]), report.table()


# --- the CLI ------------------------------------------------------------------------------------
def _cli(capsys, *args) -> tuple[int, str, str]:
    from harness.cli import main

    try:
        rc = main(["conform", *args])
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_exit_codes(broken_programs, tmp_path, capsys):
    rc, out, err = _cli(capsys, "--rig", "loopback", "--cycles", "3", "--junit-xml", str(tmp_path / "ok.xml"))
    assert rc == 0, out + err
    assert "20 passed, 0 failed" in out and (tmp_path / "ok.xml").exists()
    rig = _program_rig(tmp_path, "CRC_NOT_COUNTED", broken_programs["CRC_NOT_COUNTED"])
    rc, out, err = _cli(capsys, "--rig", str(rig), "--cycles", "3")
    assert rc == 1, out + err
    line = next(ln for ln in out.splitlines() if ln.startswith("frames.bad_crc"))
    assert "FAIL" in line and "rx_crc_errors +0 (expected +1)" in line
    assert "fix: drop a frame whose CRC does not match" in out
    for args in (["--rig", "no-such-rig"], ["--rig", "loopback", "--cycles", "0"], []):
        rc, out, err = _cli(capsys, *args)
        assert rc == 2, (args, out, err)
        assert "Traceback" not in err
    # a program that ends at once: the checklist cannot run at all; the message says how it ended
    quits = tmp_path / "quits.toml"
    quits.write_text('[rig]\nname = "quits"\nkind = "program"\n[program]\n'
                     f'command = ["{shutil.which("false")}", "{{port}}"]\n')
    rc, out, err = _cli(capsys, "--rig", str(quits))
    assert rc == 2 and "exited with status 1" in err, out + err


# --- the measurements are sound -----------------------------------------------------------------
def test_garbage_burst_holds_no_frame_and_no_oversize_run():
    burst = garbage_burst()
    dec = p.FrameDecoder()
    assert dec.feed(burst) == []
    assert dec.counters.errors == sum(1 for ch in burst.split(b"\x00") if ch)
    assert max(len(ch) for ch in burst.split(b"\x00")) < p.MAX_RUN  # oversize is its own item


def test_every_fix_hint_names_a_real_protocol_section_and_every_item_is_documented():
    from harness.conform import ITEMS

    headings = [ln.lstrip("#").strip() for ln in (REPO / "docs" / "protocol.md").read_text().splitlines()
                if ln.startswith("#")]
    for item in ITEMS:
        assert any(h.startswith(item.section) for h in headings), (item.id, item.section)
    doc = (REPO / "docs" / "conformance.md").read_text()
    for item in ITEMS:
        assert f"| `{item.id}` |" in doc, item.id
    for variant, want in VARIANTS.items():
        assert variant == "NONE" or f"`BREAK_{variant}`" in doc, variant
