"""What the native library asks of the system it loads on (docs/deployment.md).

- glibc floor: libsbnn_delegate.so imports no glibc symbol version above 2.28 and needs
  no library a device may lack (libstdc++ is linked in); the imported versions are
  printed (pytest -s).
- Android: the C functions the library's own code calls are all exported by bionic
  (tflite/abi/bionic_arm64.txt, read from bionic's version scripts).
Both checks are tflite/abi/check_library.py; planted violations show that it fails.
The aarch64 library gets the same checks in tflite/tests/run_aarch64_tests.sh.
"""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "tflite" / "abi" / "check_library.py"
LIB_NAME = "libsbnn_delegate.so"

pytestmark = pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf (binutils)")


def _check(*args):
    r = subprocess.run([sys.executable, str(CHECK), *map(str, args)], capture_output=True,
                       text=True)
    print(r.stdout, r.stderr)
    return r


def _built_library():
    for pkg in ("sbnn_runtime", "sbnn_keras"):
        lib = ROOT / pkg / "_native" / LIB_NAME
        if lib.exists():
            return lib
    pytest.fail(f"{LIB_NAME} is not built (make setup builds it)")


def _object_build(tmp_root: Path):
    """Object files of the delegate and the kernels (the library before linking)."""
    for cache in sorted(ROOT.glob("build/temp.*/sbnn_tflite")) + [ROOT / "build" / "abi-objects"]:
        objs = sorted(cache.glob("CMakeFiles/sbnn_delegate_obj.dir/*/*.o"))
        core = cache / "core" / "libsbnn_core.a"
        if objs and core.exists():
            newest_src = max(p.stat().st_mtime for p in (ROOT / "tflite").rglob("*.c*"))
            if min(p.stat().st_mtime for p in [*objs, core]) >= newest_src:
                return objs + [core]
    build = ROOT / "build" / "abi-objects"
    subprocess.run(["cmake", "-S", ROOT / "tflite", "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                    "-DSBNN_BUILD_TESTS=OFF", "-DSBNN_BUILD_BENCH=OFF"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", build, "--target", "sbnn_delegate_obj", "sbnn_core",
                    "-j2"], check=True, capture_output=True)
    return sorted(build.glob("CMakeFiles/sbnn_delegate_obj.dir/*/*.o")) + [
        build / "core" / "libsbnn_core.a"]


def test_glibc_floor_of_the_built_library():
    r = _check(_built_library(), "--glibc-max", "2.28")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "glibc floor: GLIBC_2." in r.stdout
    assert "libstdc++" not in r.stdout


def test_library_code_calls_only_what_bionic_exports(tmp_path):
    r = _check("--objects", *_object_build(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert " malloc " in r.stdout  # the check saw the real calls


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_checker_rejects_planted_violations(tmp_path):
    src = tmp_path / "bad.c"
    src.write_text(textwrap.dedent("""
        #define _GNU_SOURCE
        #include <stdlib.h>
        #include <stdint.h>
        uint32_t planted(void) {
          return arc4random() + (secure_getenv("HOME") != 0);
        }
    """))
    obj, lib = tmp_path / "bad.o", tmp_path / "libbad.so"
    subprocess.run(["cc", "-c", "-fPIC", src, "-o", obj], check=True)
    subprocess.run(["cc", "-shared", obj, "-o", lib], check=True)
    r = _check(lib, "--glibc-max", "2.28")
    if "GLIBC_2.36" in r.stdout:  # built on glibc >= 2.36: arc4random is versioned 2.36
        assert r.returncode == 1 and "arc4random" in r.stderr
    r = _check("--objects", obj)
    assert r.returncode == 1
    assert "secure_getenv" in r.stderr
    assert "arc4random" not in r.stderr  # bionic has it
