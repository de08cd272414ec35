"""Where the runtime runs: checked when ``sbnn_runtime`` is imported.

The native library is built for Linux on x86_64 and aarch64 (glibc); the Python side
needs a TFLite interpreter, and ai-edge-litert ships wheels for CPython 3.10-3.14.
"""

from __future__ import annotations

import platform
import sys

#: (sys.platform, machine) pairs the native library is built and tested for
SUPPORTED_PLATFORMS = (("linux", "x86_64"), ("linux", "aarch64"))
#: CPython versions with an ai-edge-litert wheel (lowest, highest)
SUPPORTED_PYTHONS = ((3, 10), (3, 14))

_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def check(system: str | None = None, machine: str | None = None, version=None) -> None:
    """Raises ``ImportError`` naming the supported list when this platform is not in it."""
    system = sys.platform if system is None else system
    machine = platform.machine() if machine is None else machine
    machine = _MACHINE_ALIASES.get(machine.lower(), machine.lower())
    version = tuple(sys.version_info[:2]) if version is None else tuple(version)
    supported = ", ".join(f"{s} {m}" for s, m in SUPPORTED_PLATFORMS)
    low, high = SUPPORTED_PYTHONS
    pythons = f"{low[0]}.{low[1]}-{high[0]}.{high[1]}"
    if (system, machine) not in SUPPORTED_PLATFORMS:
        raise ImportError(
            f"sbnn_runtime does not support {system} {machine}: its native library is built "
            f"for {supported} (Python {pythons})"
        )
    if not low <= version <= high:
        raise ImportError(
            f"sbnn_runtime does not support Python {version[0]}.{version[1]}: supported are "
            f"Python {pythons} on {supported}"
        )
