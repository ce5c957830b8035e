"""Where the flight code runs: one build module for the three targets, and starting them.

* **loopback** (``loopback.py``): the flight code in-process, a cffi module (``load_flight_code``).
* **host** (``host.py``): ``firmware_stub/targets/host/`` + the portable sources, built with the
  host ``gcc`` into a program that speaks the link protocol on a tty (pty slave or serial device).
* **qemu** (``qemu.py``): ``firmware_stub/targets/mps2_an386/`` + the portable sources, built with
  ``arm-none-eabi-gcc`` for the Cortex-M4F of QEMU's ``mps2-an386`` board; budgets; QEMU.

Shared by all three: ``sources.py`` (the one source list, ``firmware_stub/sources.txt``, and the
content hash that keys a build), ``build.py`` (the compiler runner, the atomic on-disk cache and
:class:`BuildError`, an ``FsilError``), ``tools.py`` (which tools a target needs), ``process.py``
(how a target process ended, stopping it). ``measure.py`` times the links (``python -m
harness.targets measure``). A target's HELLO is read with ``harness.link.FlightLink.wait_hello``,
the one handshake path. docs/targets.md has the command lines, memory map, budgets and timings.
"""
from __future__ import annotations

from harness.targets.build import (COMMON_CFLAGS, FLIGHT_CFLAGS, BuildError, TargetError, cache_dir, cache_root,
                                   cached_build, first_errors, run_compiler)
from harness.targets.host import HOST_CFLAGS, build_host_program, start_host_program, start_host_program_pty
from harness.targets.loopback import LoopbackFlightCode, load_flight_code, parse_param_table
from harness.targets.measure import measure_link
from harness.targets.process import TargetExited, TargetStartError, describe_exit, read_stderr, stop_process
from harness.targets.qemu import (ARM_CFLAGS, ARM_LDFLAGS, ARM_LIBS, FLASH_BUDGET, FORBIDDEN_SYMBOLS, RAM_BUDGET,
                                  STACK_SIZE, BudgetError, QemuTarget, build_qemu_firmware, check_budgets,
                                  defined_symbols, firmware_size, qemu_command, start_qemu)
from harness.targets.sources import (FIRMWARE_DIR, HOST_DIR, MPS2_DIR, ROOT, TARGETS_DIR, default_src_dir,
                                     flight_sources, portable_sources)
from harness.targets.tools import ARM_CC, ARM_NM, ARM_SIZE, HOST_CC, QEMU, QEMU_MACHINE, missing_tools

__all__ = [
    "ARM_CC", "ARM_CFLAGS", "ARM_LDFLAGS", "ARM_LIBS", "ARM_NM", "ARM_SIZE", "BudgetError", "BuildError",
    "COMMON_CFLAGS", "FIRMWARE_DIR", "FLASH_BUDGET", "FLIGHT_CFLAGS", "FORBIDDEN_SYMBOLS", "HOST_CC", "HOST_CFLAGS",
    "HOST_DIR", "LoopbackFlightCode", "MPS2_DIR", "QEMU", "QEMU_MACHINE", "QemuTarget", "RAM_BUDGET", "ROOT",
    "STACK_SIZE", "TARGETS_DIR", "TargetError", "TargetExited", "TargetStartError", "build_host_program",
    "build_qemu_firmware", "cache_dir", "cache_root", "cached_build", "check_budgets", "default_src_dir",
    "defined_symbols", "describe_exit", "firmware_size", "first_errors", "flight_sources", "load_flight_code",
    "measure_link", "missing_tools", "parse_param_table", "portable_sources", "qemu_command", "read_stderr",
    "run_compiler", "start_host_program", "start_host_program_pty", "start_qemu", "stop_process",
]
