"""Where the runtime runs, checked when ``sbnn_runtime`` is imported.

The sbnn-runtime wheels hold a libsbnn_delegate.so for one architecture (Linux x86_64 or
aarch64, glibc >= 2.24; docs/install.md). pip picks the right one, but a wheel copied or
force-installed elsewhere would otherwise fail later with a loader error; this says at
import what is wrong and what is supported. A source checkout without a built library
is not refused here (``library_path`` explains how to build it).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

SUPPORTED = "Linux x86_64 or aarch64 (64-bit) with glibc >= 2.24, Python >= 3.10"
MIN_PYTHON = (3, 10)
MIN_GLIBC = (2, 24)  # the wheels are manylinux_2_24 (the library itself needs 2.18)
# ELF e_machine values of the architectures a wheel can hold.
_ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


def _library_machine(lib: Path) -> str | None:
    head = lib.read_bytes()[:20]
    if head[:4] != b"\x7fELF" or len(head) < 20:
        return None
    order = "little" if head[5] == 1 else "big"
    return _ELF_MACHINES.get(int.from_bytes(head[18:20], order), "unknown")


def _glibc_version() -> tuple[int, ...] | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    if not text.startswith("glibc "):
        return None
    return tuple(int(p) for p in text.split()[1].split(".")[:2] if p.isdigit())


def check(lib: Path | None = None) -> None:
    """Raises ImportError naming what is unsupported and the supported list."""
    if sys.version_info < MIN_PYTHON:
        raise ImportError(f"sbnn_runtime needs Python >= 3.10, this is "
                          f"{platform.python_version()}. Supported: {SUPPORTED}.")
    lib = lib or Path(__file__).resolve().parent / "_native" / "libsbnn_delegate.so"
    if not lib.is_file():
        return
    built_for = _library_machine(lib)
    here = f"{sys.platform} {platform.machine()}"
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                          platform.machine().lower())
    if not sys.platform.startswith("linux") or built_for != machine:
        raise ImportError(f"this sbnn_runtime holds a library for Linux {built_for}, but this "
                          f"Python runs on {here}. Supported: {SUPPORTED}; install the wheel "
                          f"for this machine (pip install sbnn-runtime) or build from source.")
    glibc = _glibc_version()
    if glibc is not None and glibc < MIN_GLIBC:
        raise ImportError(f"sbnn_runtime's wheel needs glibc >= 2.24, this system has "
                          f"{'.'.join(map(str, glibc))}. Supported: {SUPPORTED}.")
