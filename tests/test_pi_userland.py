"""The aarch64 runtime in emulated Raspberry Pi OS userlands (docs/deployment.md).

Opt-in (it downloads Debian's arm64 packages and PyPI's aarch64 wheels, then runs
Python under qemu-user; the first run took about 30 minutes on a loaded 2-core machine,
later ones about 10, reusing the cached userlands and venv):

    SBNN_PI_E2E=1 python -m pytest -q tests/test_pi_userland.py

- the aarch64 library loads, with every symbol bound at once (LD_BIND_NOW=1), and makes a
  delegate with 4 threads in Raspberry Pi OS bullseye's userland: glibc 2.31, older than
  2.34's merge of libpthread into libc (the glibc floor measures of glibc_compat.cc);
- scripts/pi_e2e.py: the aarch64 sbnn-runtime wheel pip-installed in the bookworm
  userland (Raspberry Pi OS 64-bit's Python 3.11) runs the lce/sparse/auto flavours of a
  trained Fashion-MNIST SBNN and an SBNN ResNet-18 with outputs equal to x86-64's
  within 1e-5 relative, and `sbnn-runtime inspect` / `bench` work there.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PI = ROOT / "scripts" / "pi_userland.sh"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("SBNN_PI_E2E") != "1",
                       reason="opt-in: SBNN_PI_E2E=1 (downloads Debian arm64 packages; see docstring)"),
]


@pytest.fixture(scope="module")
def aarch64_wheel():
    subprocess.run(["bash", ROOT / "scripts" / "build_wheels.sh"], check=True,
                   env={**os.environ, "ARCHES": "aarch64", "PY": sys.executable})
    (whl,) = sorted((ROOT / "dist").glob("sbnn_runtime-*-py3-none-manylinux_*_aarch64.whl"))
    return whl


def test_library_loads_on_glibc_2_31(aarch64_wheel, tmp_path):
    import zipfile

    with zipfile.ZipFile(aarch64_wheel) as z:
        lib = tmp_path / "libsbnn_delegate.so"
        lib.write_bytes(z.read("sbnn_runtime/_native/libsbnn_delegate.so"))
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent("""
        import ctypes, platform, sys
        lib = ctypes.CDLL(sys.argv[1])
        class Opts(ctypes.Structure):
            _fields_ = [("num_threads", ctypes.c_int), ("kernel", ctypes.c_char_p),
                        ("runtime", ctypes.c_char_p), ("runtime_version", ctypes.c_char_p),
                        ("allow_untested_runtime", ctypes.c_int)]
        lib.sbnn_delegate_options_default.restype = Opts
        lib.sbnn_delegate_create.restype = ctypes.c_void_p
        lib.sbnn_delegate_create.argtypes = [ctypes.POINTER(Opts)]
        lib.sbnn_delegate_delete.argtypes = [ctypes.c_void_p]
        lib.sbnn_delegate_last_error.restype = ctypes.c_char_p
        o = lib.sbnn_delegate_options_default()
        o.num_threads, o.runtime, o.runtime_version = 4, b"ai_edge_litert", b"2.3.0"
        d = lib.sbnn_delegate_create(ctypes.byref(o))
        assert d, lib.sbnn_delegate_last_error()
        lib.sbnn_delegate_delete(d)
        print("loaded on", platform.libc_ver())
    """))
    env = {**os.environ, "SBNN_PI_SUITE": "bullseye", "LD_BIND_NOW": "1"}
    subprocess.run(["bash", PI, "setup"], check=True, env=env)
    r = subprocess.run(["bash", PI, "run", "/usr/bin/python3", script, lib], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "loaded on ('glibc', '2.31')" in r.stdout


def test_wheel_runs_models_like_x86(aarch64_wheel, tmp_path):
    r = subprocess.run([sys.executable, ROOT / "scripts" / "pi_e2e.py", "--work", tmp_path,
                        "--wheel-dir", aarch64_wheel.parent], capture_output=True, text=True)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count(" ok") >= 6
    assert "sbnn (ai_edge_litert)" in r.stdout  # the bench table from the Pi
