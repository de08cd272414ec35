"""Checks what libsbnn_delegate.so asks of the system it loads on (docs/deployment.md).

    python tflite/abi/check_library.py LIB.so [--glibc-max 2.28]
    python tflite/abi/check_library.py --objects OBJ.o LIB.a ... [--bionic FILE]

With a shared library: prints every imported symbol version (GLIBC_*, GCC_*) with how many
symbols use it and the NEEDED libraries, and fails when a GLIBC version is above
--glibc-max or a NEEDED library is not one that every glibc system has (the C++ runtime
is linked in, so libstdc++.so.6 must not be needed).

With --objects (the library's own object files and static archives, before linking the
C++ runtime in): fails when the code calls a C function that Android's bionic does not
export (--bionic, tflite/abi/bionic_arm64.txt). C++ runtime and compiler-support symbols
are left out (the NDK's libc++ and compiler-rt provide them), and the names glibc's
headers substitute (__isoc99_sscanf for sscanf, __*_chk for fortified calls, ...) are
mapped back to the function the source calls.

Uses readelf (binutils), which reads ELF files of any architecture.
"""

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Libraries present on every glibc Linux (also manylinux's list for these).
SYSTEM_LIBS = re.compile(r"^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|"
                         r"libgcc_s\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$")

# Provided by the C++ runtime / compiler runtime of any toolchain (NDK: libc++, libc++abi,
# libunwind, compiler-rt), not by libc.
RUNTIME_SYMBOL = re.compile(
    r"^(_Z.*|__cxa_.*|__gxx_personality_v0|_Unwind_.*|__dso_handle|_GLOBAL_OFFSET_TABLE_|"
    r"__tls_get_addr|__popcount[sdt]i2|__clz[sdt]i2|__ctz[sdt]i2|__(div|mod|udiv|umod)ti3|"
    r"__aarch64_.*|__cpu_model|__cpu_indicator_init|__stack_chk_guard|__emutls_get_address)$")

# Names glibc's headers put in place of the function the source calls; bionic's headers
# produce their own names for the same calls.
GLIBC_HEADER_NAMES = {
    "__isoc99_sscanf": "sscanf", "__isoc99_fscanf": "fscanf", "__isoc99_scanf": "scanf",
    "__isoc99_vsscanf": "vsscanf", "__isoc23_sscanf": "sscanf", "__isoc23_strtol": "strtol",
    "__isoc23_strtoul": "strtoul", "__isoc23_strtoll": "strtoll", "__isoc23_strtoull": "strtoull",
    "__errno_location": "__errno", "__assert_fail": "__assert2",
    # bionic's <stdio.h> reads the standard streams from __sF before API 23.
    "stdin": "__sF", "stdout": "__sF", "stderr": "__sF",
}


def _readelf(*args):
    return subprocess.run(["readelf", "-W", *args], check=True, capture_output=True,
                          text=True).stdout


def imported_versions(lib):
    """{symbol: version} of the undefined dynamic symbols of a shared library."""
    out = {}
    for line in _readelf("--dyn-syms", str(lib)).splitlines():
        f = line.split()
        if len(f) >= 8 and f[6] == "UND" and "@" in f[7]:
            name, _, ver = f[7].partition("@")
            out[name] = ver.lstrip("@")
    return out


def needed(lib):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", _readelf("-d", str(lib)))


def _vkey(ver):
    return tuple(int(x) for x in re.findall(r"\d+", ver))


def check_shared(lib, glibc_max):
    vers = imported_versions(lib)
    counts = Counter(vers.values())
    print(f"{lib}: imported symbol versions")
    for ver in sorted(counts, key=lambda v: (v.split("_")[0], _vkey(v))):
        syms = sorted(s for s, v in vers.items() if v == ver)
        shown = ", ".join(syms[:6]) + (", ..." if len(syms) > 6 else "")
        print(f"  {ver:<14} {counts[ver]:>3}  {shown}")
    libs = needed(lib)
    print(f"  NEEDED: {' '.join(libs)}")
    errors = []
    limit = _vkey(glibc_max)
    glibc = [v for v in counts if v.startswith("GLIBC_") and not v.startswith("GLIBC_PRIVATE")]
    floor = max(glibc, key=_vkey) if glibc else "none"
    print(f"  glibc floor: {floor} (allowed: <= {glibc_max})")
    for v in glibc:
        if _vkey(v) > limit:
            errors.append(f"needs {v} (> {glibc_max}) for: "
                          + ", ".join(sorted(s for s, x in vers.items() if x == v)))
    errors += [f"needs {n}, which a device may lack" for n in libs if not SYSTEM_LIBS.match(n)]
    return errors


def undefined_in_objects(paths):
    names = set()
    for p in paths:
        for line in _readelf("-s", str(p)).splitlines():
            f = line.split()
            if len(f) >= 8 and f[6] == "UND" and f[4] in ("GLOBAL", "WEAK"):
                names.add(f[7])
    return names


def source_name(sym):
    if sym in GLIBC_HEADER_NAMES:
        return GLIBC_HEADER_NAMES[sym]
    m = re.match(r"^__(\w+)_chk$", sym)  # _FORTIFY_SOURCE: bionic has its own checked set
    return m.group(1) if m else sym


def check_bionic(objects, allow_file):
    allowed = {l.strip() for l in Path(allow_file).read_text().splitlines()
               if l.strip() and not l.startswith("#")}
    called = {source_name(s) for s in undefined_in_objects(objects) if not RUNTIME_SYMBOL.match(s)}
    print(f"C functions called by the library's own code ({len(called)}), checked against "
          f"{allow_file} ({len(allowed)} bionic symbols):")
    print("  " + " ".join(sorted(called)))
    missing = sorted(called - allowed)
    return [f"calls {s}, which bionic (Android) does not export at this API level"
            for s in missing]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("library", nargs="?", help="shared library to check")
    ap.add_argument("--glibc-max", default="2.28")
    ap.add_argument("--objects", nargs="+", default=[], help="object files / static archives")
    ap.add_argument("--bionic", default=str(Path(__file__).with_name("bionic_arm64.txt")))
    args = ap.parse_args(argv)
    if not args.library and not args.objects:
        ap.error("give a shared library, --objects, or both")
    errors = []
    if args.library:
        errors += check_shared(args.library, args.glibc_max)
    if args.objects:
        errors += check_bionic(args.objects, args.bionic)
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    print("OK" if not errors else f"{len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
