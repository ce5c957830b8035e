"""The drop-in codec: firmware_stub/fsw_protocol.[ch] copied ALONE into an empty folder (as a team
copies it into its firmware) and compiled there with a small C test program, against the shared
vectors (tests/vectors/protocol_v2.json): every packet and frame byte-exact, every stream decoded
with the expected frames and error counters. Also compiled for Cortex-M4 with arm-none-eabi-gcc:
no heap, no stdio, no mutable static state (data + bss = 0)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODEC = [ROOT / "firmware_stub" / "fsw_protocol.c", ROOT / "firmware_stub" / "fsw_protocol.h"]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "protocol_v2.json").read_text())
MEMBER = {0x01: "hello", 0x02: "config", 0x03: "config_ack", 0x10: "sensors", 0x11: "command", 0x12: "telemetry"}
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wconversion"]
HEAP_OR_STDIO = {"malloc", "free", "calloc", "realloc", "_sbrk", "printf", "sprintf", "snprintf", "puts"}


def _c(v) -> str:
    if isinstance(v, list):
        return "{" + ", ".join(_c(x) for x in v) + "}"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    return f"{v}u" if v >= 0 else str(v)


def _bytes(hexstr: str) -> str:
    return "{" + ", ".join(f"0x{b:02x}" for b in bytes.fromhex(hexstr)) + "}" if hexstr else "{0}"


def _test_program() -> str:
    """A C program checking the codec on every vector and stream (generated from the JSON)."""
    out = ['#include <stdio.h>', '#include <string.h>', '#include "fsw_protocol.h"', "",
           "static int failures;",
           "#define CHECK(c, what) do { if (!(c)) { failures++; printf(\"FAIL %s: %s\\n\", what, #c); } } while (0)",
           "static void count_cb(void *user, const fsw_msg_t *m) { unsigned char *t = (unsigned char *)user;"
           " t[t[0] + 1] = m->hdr.msg_type; t[0]++; }", "", "int main(void) {",
           "    uint8_t buf[FSW_MAX_FRAME + 8]; size_t n; fsw_msg_t m, u; fsw_parser_t p; unsigned char seen[16];",
           "    static const uint8_t check[] = \"123456789\";",
           f"    CHECK(fsw_crc16(check, 9) == 0x{VECTORS['crc_check_123456789']}u, \"crc check value\");"]
    for v in VECTORS["vectors"]:
        name, t = v["name"], v["msg_type"]
        fields = ", ".join(f".{k} = {_c(x)}" for k, x in v["fields"].items())
        out += [f"    {{ /* {name} */",
                f"        static const uint8_t packet[] = {_bytes(v['packet_hex'])};",
                f"        static const uint8_t frame[] = {_bytes(v['frame_hex'])};",
                "        memset(&m, 0, sizeof m);",
                f"        m.hdr.version = FSW_PROTO_VERSION; m.hdr.msg_type = {t}u; m.hdr.seq = {v['seq']}u;"
                f" m.hdr.t_us = {v['t_us']}ull;",
                f"        {{ const fsw_{MEMBER[t]}_t b = {{ {fields} }}; m.body.{MEMBER[t]} = b; }}",
                "        n = fsw_msg_pack(&m, buf, sizeof buf);",
                f"        CHECK(n == sizeof packet && memcmp(buf, packet, n) == 0, \"{name}: pack\");",
                "        n = fsw_msg_encode_frame(&m, buf, sizeof buf);",
                f"        CHECK(n == sizeof frame && memcmp(buf, frame, n) == 0, \"{name}: encode frame\");",
                "        memset(&u, 0xA5, sizeof u);",
                f"        CHECK(fsw_msg_unpack(packet, sizeof packet, &u) == FSW_RX_OK, \"{name}: unpack\");",
                "        n = fsw_msg_pack(&u, buf, sizeof buf);  /* every field came back: same bytes */",
                f"        CHECK(n == sizeof packet && memcmp(buf, packet, n) == 0, \"{name}: unpack round trip\");",
                f"        CHECK(u.hdr.seq == {v['seq']}u && u.hdr.t_us == {v['t_us']}ull, \"{name}: header\");",
                "    }"]
    names = {v["name"]: v["msg_type"] for v in VECTORS["vectors"]}
    for s in VECTORS["streams"]:
        exp = [names[f] for f in s["expect_frames"]]
        c = s["expect_counters"]
        out += [f"    {{ /* {s['name']}: fed one byte at a time */",
                f"        static const uint8_t stream[] = {_bytes(s['stream_hex'])};",
                "        size_t i; memset(seen, 0, sizeof seen); fsw_parser_init(&p);",
                "        for (i = 0; i < sizeof stream; i++) fsw_parser_feed(&p, &stream[i], 1, count_cb, seen);",
                f"        CHECK(seen[0] == {len(exp)}u, \"{s['name']}: frame count\");"]
        out += [f"        CHECK(seen[{i + 1}] == {t}u, \"{s['name']}: frame {i} type\");" for i, t in enumerate(exp)]
        out += [f"        CHECK(p.{k} == {val}u, \"{s['name']}: {k}\");" for k, val in c.items()]
        out += ["    }"]
    out += ['    printf("%d failures\\n", failures);', "    return failures != 0;", "}"]
    return "\n".join(out) + "\n"


@pytest.fixture
def alone(tmp_path):
    """An empty folder holding only the two codec files (nothing else of firmware_stub/ to lean on)."""
    for f in CODEC:
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not found")
def test_the_codec_alone_passes_the_shared_vectors_in_c(alone):
    (alone / "test_codec.c").write_text(_test_program())
    build = subprocess.run(["gcc", *WARNINGS, "-O2", "test_codec.c", "fsw_protocol.c", "-o", "test_codec"],
                           cwd=alone, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(alone / "test_codec")], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and run.stdout.strip().endswith("0 failures"), run.stdout
    n_vec, n_stream = len(VECTORS["vectors"]), len(VECTORS["streams"])
    assert n_vec >= 14 and n_stream >= 9


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not found")
def test_the_generated_check_can_fail(alone):
    """The C check is not vacuous: one flipped byte of a vector's frame fails it."""
    src = _test_program()
    frame = VECTORS["vectors"][7]["frame_hex"]
    bad = frame[:20] + ("00" if frame[20:22] != "00" else "01") + frame[22:]
    (alone / "test_codec.c").write_text(src.replace(_bytes(frame), _bytes(bad), 1))
    subprocess.run(["gcc", "-std=c99", "test_codec.c", "fsw_protocol.c", "-o", "t"], cwd=alone, check=True)
    run = subprocess.run([str(alone / "t")], capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and f"FAIL {VECTORS['vectors'][7]['name']}: encode frame" in run.stdout


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not found")
def test_the_codec_alone_compiles_for_cortex_m4_without_heap_stdio_or_static_state(alone):
    obj = alone / "fsw_protocol.o"
    build = subprocess.run(["arm-none-eabi-gcc", *WARNINGS, "-Os", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                            "-mfpu=fpv4-sp-d16", "-ffunction-sections", "-c", "fsw_protocol.c", "-o", str(obj)],
                           cwd=alone, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], capture_output=True, text=True, check=True)
    needs = {ln.split()[-1] for ln in undefined.stdout.splitlines() if ln.strip()}
    assert not needs & HEAP_OR_STDIO, needs
    size = subprocess.run(["arm-none-eabi-size", "-B", str(obj)], capture_output=True, text=True, check=True)
    text, data, bss = (int(x) for x in size.stdout.splitlines()[1].split()[:3])
    assert text > 0 and data == 0 and bss == 0, size.stdout
