"""The one build module (harness/targets): content-keyed atomic cache, and compile errors that name
the file and the compiler's first error lines, as an FsilError (``fsil: error: ...``, exit 2)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import protocol as p
from harness.errors import FsilError
from harness.targets import BuildError, build_host_program, load_flight_code, missing_tools

ROOT = Path(__file__).resolve().parent.parent
BROKEN_LINE = "\nstatic int unused_and_broken(void) { return undeclared_symbol_xyz; }\n"


def _copy_src(tmp_path) -> Path:
    src = tmp_path / "fw"
    shutil.copytree(ROOT / "firmware_stub", src, ignore=shutil.ignore_patterns("targets", "*.o", "*.md"))
    return src


def _break(src: Path) -> None:
    nav = src / "fsw_nav.c"
    nav.write_text(nav.read_text() + BROKEN_LINE)


def _hello_name(ffi, lib) -> str:
    lb = ffi.new("fsw_loopback_t *")
    lib.fsw_loopback_init(lb)  # boots the flight code: its HELLO banner is queued
    out = ffi.new("uint8_t[]", 4096)
    n = lib.fsw_loopback_drain(lb, out, 4096)
    (hello,) = p.FrameDecoder().feed(bytes(ffi.buffer(out, n)))
    return hello.msg.firmware_name


def test_build_cache_rebuilds_on_source_change(tmp_path, monkeypatch):
    monkeypatch.setenv("FSIL_CACHE_DIR", str(tmp_path / "cache"))
    src = _copy_src(tmp_path)
    ffi1, lib1 = load_flight_code(src)
    assert _hello_name(ffi1, lib1) == "fsil-ref"
    assert load_flight_code(src)[1] is lib1  # same sources: same module, no rebuild
    app_h = src / "fsw_app.h"
    app_h.write_text(app_h.read_text().replace('"fsil-ref"', '"fsil-changed"'))
    ffi2, lib2 = load_flight_code(src)
    assert lib2 is not lib1 and _hello_name(ffi2, lib2) == "fsil-changed"
    # (the unchanged copy may have been served from this process's already-loaded module:
    # the key is content-addressed) the changed one was built into the new cache, no temp dirs left
    built = sorted((tmp_path / "cache" / "cffi").iterdir())
    assert 1 <= len(built) <= 2 and all(d.is_dir() and d.name.startswith("_fsil_fsw_") for d in built)
    assert all(len(list(d.glob("_fsil_fsw_*.so"))) == 1 for d in built)


def test_compile_error_is_an_fsil_error_naming_file_and_first_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("FSIL_CACHE_DIR", str(tmp_path / "cache"))
    src = _copy_src(tmp_path)
    _break(src)
    with pytest.raises(BuildError) as ei:
        load_flight_code(src)
    msg = str(ei.value)
    assert isinstance(ei.value, FsilError)
    assert f"in {src / 'fsw_nav.c'}" in msg and "undeclared_symbol_xyz" in msg
    # the first error line is quoted right after the headline, not buried below the command line
    assert msg.splitlines()[1].startswith(f"{src / 'fsw_nav.c'}:") and "error:" in msg.splitlines()[1]
    assert not list((tmp_path / "cache" / "cffi").glob("*/*.so"))  # nothing half-built in the cache


def test_host_program_compile_error_names_the_file(tmp_path):
    if missing_tools("host"):
        pytest.skip(f"{missing_tools('host')[0]} not found")
    src = _copy_src(tmp_path)
    _break(src)
    with pytest.raises(BuildError, match=r"\(host program\) failed \(exit 1\) in .*fsw_nav\.c:\n.*undeclared_symbol_xyz"):
        build_host_program(src, out_dir=tmp_path / "cache")
    assert not [d for d in (tmp_path / "cache").iterdir() if not d.name.startswith(".")]


def test_cli_reports_a_compile_error_cleanly(tmp_path):
    """`fsil run` on a rig whose flight code does not compile: `fsil: error: ...`, exit 2, no traceback."""
    src = _copy_src(tmp_path)
    _break(src)
    rig = tmp_path / "broken.toml"
    rig.write_text(f'[rig]\nname = "broken"\nkind = "loopback"\n\n[flight_code]\nsource_dir = "{src}"\n')
    env = dict(os.environ, FSIL_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", "nominal-terminal-descent", "--rig", str(rig),
                          "--out", str(tmp_path / "runs")], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("fsil: error: "), res.stderr
    assert "Traceback" not in res.stderr
    assert "fsw_nav.c" in res.stderr and "undeclared_symbol_xyz" in res.stderr


def test_build_concurrent_processes_share_the_cache(tmp_path):
    env = dict(os.environ, FSIL_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    src = _copy_src(tmp_path)
    code = ("import sys; from harness.targets import load_flight_code; "
            "ffi, lib = load_flight_code(sys.argv[1]); print(lib.fsw_crc16(b'123456789', 9))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(src)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outs
    assert [o[0].strip() for o in outs] == [str(0x29B1)] * 4
    entries = list((tmp_path / "cache" / "cffi").iterdir())
    assert len(entries) == 1 and entries[0].is_dir()
