"""A flight-code source tree of a team's own (docs/flight-code.md, "Swapping in your own flight code")
flown through a loopback, host-pty or qemu-m4 rig: its ``fsw_params.def`` is the id registry the
harness sends CONFIG frames by. A tree whose registry lacks a core parameter (protocol v2 ids 1-18)
used to give ``fsil conform`` a KeyError traceback, and ``fsil run`` silently sent no CONFIG for the
missing core parameters, so the flight code flew from its own defaults and crashed."""
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.params import CORE_PARAMS, load_param_table
from harness.rigs import load_rig

REPO = Path(__file__).resolve().parent.parent
REGISTRY = (REPO / "firmware_stub" / "fsw_params.def").read_text()


def _tree(tmp_path: Path, registry: str) -> Path:
    """A source tree laid out as the rig check asks (sources.txt, fsw_app.h, fsw_params.def,
    hal_loopback.[ch]), with the given registry, and a loopback rig file for it."""
    src = tmp_path / "my_fsw"
    src.mkdir()
    (src / "sources.txt").write_text("my_fsw.c\n")
    (src / "my_fsw.c").write_text("int my_fsw_unused;\n")
    (src / "fsw_app.h").write_text("/* fsw_init / fsw_rx_bytes */\n")
    (src / "fsw_params.def").write_text(registry)
    (src / "hal_loopback.h").write_text("/* fsw_loopback_t, fsw_loopback_size/init/feed/drain */\n")
    (src / "hal_loopback.c").write_text("int my_hal_unused;\n")
    rig = tmp_path / "mine.toml"
    rig.write_text('[rig]\nkind = "loopback"\n[flight_code]\nsource_dir = "my_fsw"\n')
    return rig


def _without(names: set[str]) -> str:
    return "".join(line for line in REGISTRY.splitlines(keepends=True)
                   if not any(f"FSW_PARAM({CORE_PARAMS[n]}, {n}," in line.replace("  ", " ") for n in names))


def test_the_shipped_registry_holds_every_core_parameter_under_its_protocol_id():
    table = load_param_table()
    assert {n: table[n].id for n in CORE_PARAMS} == CORE_PARAMS


def test_a_registry_without_core_parameters_is_refused_at_rig_load_naming_them(tmp_path):
    partial = _without({"NAV_R0_Y", "GM"})
    assert "NAV_R0_Y" not in partial and "GM," not in partial and "NAV_R0_X" in partial
    rig = _tree(tmp_path, partial)
    with pytest.raises(ConfigError) as err:
        load_rig(rig)
    text = str(err.value)
    assert "fsw_params.def" in text and "NAV_R0_Y (id 2)" in text and "GM (id 18)" in text
    assert "NAV_R0_X" not in text.split("lacks", 1)[1].split(";", 1)[0]   # only the missing ones are named
    assert "firmware_stub/fsw_params.def" in text                          # and where the registry is


def test_a_core_parameter_under_another_id_is_refused(tmp_path):
    moved = REGISTRY.replace("FSW_PARAM(16, ISP,", "FSW_PARAM(160, ISP,")
    assert moved != REGISTRY
    with pytest.raises(ConfigError) as err:
        load_rig(_tree(tmp_path, moved))
    assert "ISP (id 16)" in str(err.value) and "160" in str(err.value)


def test_fsil_conform_on_such_a_tree_exits_2_naming_the_cause_not_a_traceback(tmp_path):
    rig = _tree(tmp_path, _without({"MASS0"}))
    out = subprocess.run([sys.executable, "-m", "harness.cli", "conform", "--rig", str(rig)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "MASS0 (id 11)" in out.stderr


def test_a_loopback_tree_without_its_loopback_hal_is_refused_at_rig_load(tmp_path):
    """It was "ready" to `fsil rigs`; the first flight then failed preprocessing hal_loopback.h."""
    rig = _tree(tmp_path, REGISTRY)
    load_rig(rig)                                     # complete: loads
    (tmp_path / "my_fsw" / "hal_loopback.h").unlink()
    (tmp_path / "my_fsw" / "hal_loopback.c").unlink()
    with pytest.raises(ConfigError) as err:
        load_rig(rig)
    assert "lacks hal_loopback.h, hal_loopback.c" in str(err.value)
    host = tmp_path / "host.toml"                     # a host-pty build does not compile the loopback HAL
    host.write_text('[rig]\nkind = "host-pty"\n[flight_code]\nsource_dir = "my_fsw"\n')
    load_rig(host)


# A team's own codec gets a layout or the CRC byte order wrong: the checklist must name what the
# harness received, not only what it did not (tests/far_end/scripted_fsw.py, a real program on a pty).
FAR_END = Path(__file__).parent / "far_end" / "scripted_fsw.py"


def _scripted_rig(tmp_path: Path, mode: str) -> Path:
    rig = tmp_path / f"{mode}.toml"
    rig.write_text(f'[rig]\nname = "scripted-{mode}"\nkind = "program"\n[program]\n'
                   f'command = ["{sys.executable}", "{FAR_END}", "{{port}}", "{mode}"]\n'
                   f'env = {{ PYTHONPATH = "{REPO}" }}\nstop_timeout_s = 1.0\n'
                   f'[timing]\ncycle_timeout_s = 0.5\nhello_timeout_s = 1.5\n')
    return rig


def test_conform_fails_telemetry_the_harness_cannot_decode_and_says_why(tmp_path):
    """It was SKIP "no TELEMETRY from the flight code" (exit 0) for TELEMETRY of the v1 layout."""
    from harness.conform import FAIL, conform

    report = conform(_scripted_rig(tmp_path, "tlm-v1"), only=["telemetry.counters", "seq.tx"])
    item, seq_tx = report.items
    assert item.id == "telemetry.counters" and item.status == FAIL, report.table()
    assert "length_errors" in item.detail and "TELEMETRY body of 76 bytes" in item.detail, item.detail
    # the dropped TELEMETRY leave holes in the flight code's numbering: seq.tx says where they went
    assert seq_tx.status == FAIL and "numbers of dropped frames are missing" in seq_tx.detail, seq_tx.detail


def test_conform_hello_fail_names_the_frames_dropped_for_their_crc(tmp_path):
    """It said only "got no HELLO within 1.5 s" for HELLOs whose CRC was sent big-endian."""
    from harness.conform import FAIL, conform

    report = conform(_scripted_rig(tmp_path, "crc-be"), only=["hello"])
    item = report.items[0]
    assert item.status == FAIL and "got no HELLO" in item.detail, report.table()
    assert "crc_errors" in item.detail and "CRC mismatch" in item.detail, item.detail


def test_a_parameter_name_outside_the_registry_says_where_names_come_from(tmp_path):
    """A team's own tuning parameter in a program rig's [flight_code] params: the message listed
    the known names only, not that they come from the registry nor how to add one."""
    rig = tmp_path / "mine.toml"
    rig.write_text('[rig]\nkind = "program"\n[program]\ncommand = ["./fc", "{port}"]\n'
                   '[flight_code]\nparams = { MY_KV = 0.8 }\n')
    with pytest.raises(ConfigError) as err:
        load_rig(rig)
    text = str(err.value)
    assert "unknown flight-code parameter 'MY_KV'" in text
    assert "firmware_stub/fsw_params.def" in text and "new id" in text


def test_a_crc_with_its_bytes_swapped_or_the_xmodem_initial_value_is_named():
    """The two usual CRC mistakes of an own codec: the harness's message said only that the CRC
    did not match (0x77fc against 0xfc77)."""
    import crcmod.predefined

    from harness import protocol as p

    packet = p.encode_packet(p.Hello(p.PROTOCOL_VERSION, 7, "mine"), 0, 0)
    body, crc = packet[:-2], packet[-2:]
    with pytest.raises(p.CrcError, match="bytes swapped: append it little-endian"):
        p.decode_packet(body + crc[::-1])
    xmodem = crcmod.predefined.mkPredefinedCrcFun("xmodem")(body)
    with pytest.raises(p.CrcError, match="CRC-16/XMODEM, initial value 0x0000"):
        p.decode_packet(body + xmodem.to_bytes(2, "little"))
    with pytest.raises(p.CrcError) as plain:            # line noise: no hint
        p.decode_packet(body + bytes([crc[0] ^ 0x01, crc[1]]))
    assert "(" not in str(plain.value)
