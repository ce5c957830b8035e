"""The external tools each target needs, and whether this machine has them."""
from __future__ import annotations

import os
import shutil
import subprocess

from harness.targets.build import TargetError

HOST_CC = os.environ.get("FSIL_HOST_CC", "gcc")
ARM_CC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
ARM_NM = "arm-none-eabi-nm"
QEMU = "qemu-system-arm"
QEMU_MACHINE = "mps2-an386"


def missing_tools(target: str) -> list[str]:
    """Tools absent for ``target`` ("host" or "qemu"/"mps2-an386"), e.g. ``["qemu-system-arm"]``.

    Tests skip with ``pytest.skip(f"... {tool} not found")`` when this is not empty.
    """
    if target == "host":
        needed = [HOST_CC]
    elif target in ("qemu", "mps2-an386", "mps2_an386", "arm"):
        needed = [ARM_CC, ARM_SIZE, ARM_NM]
        if target != "arm":
            needed.append(QEMU)
    else:
        raise ValueError(f"unknown target {target!r}: expected 'host' or 'qemu'")
    missing = [t for t in needed if shutil.which(t) is None]
    if ARM_CC in needed and ARM_CC not in missing and not arm_has_newlib():
        missing.append("libnewlib-arm-none-eabi (newlib nano for arm-none-eabi-gcc)")
    return missing


def arm_has_newlib() -> bool:
    """True if arm-none-eabi-gcc finds newlib nano for the Cortex-M4F."""
    try:
        out = subprocess.run([ARM_CC, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                              "-print-file-name=libc_nano.a"], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return os.path.isabs(out.stdout.strip())


def require(target: str) -> None:
    """Raise TargetError naming the missing tools of ``target``."""
    missing = missing_tools(target)
    if missing:
        raise TargetError(f"cannot build/run the {target} target: {', '.join(missing)} not found")


def tool_version(tool: str) -> str:
    """The first line of ``tool --version`` ("?" if it does not run)."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return "?"
    return out.stdout.splitlines()[0] if out.stdout else "?"
