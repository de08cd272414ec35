"""Writes bionic_arm64.txt: the C symbols Android's libc, libm and libdl export to NDK apps
on arm64 at a given API level, read from bionic's version scripts (the same files that
define the NDK's stub libraries: libc/libc.map.txt, libm/libm.map.txt, libdl/libdl.map.txt
of AOSP's platform/bionic).

    python tflite/abi/make_bionic_allowlist.py --api 21 --source "AOSP bionic <commit>" \
        libc.map.txt libm.map.txt libdl.map.txt > tflite/abi/bionic_arm64.txt

Rules of those files applied here: a block or line tagged `introduced=N` (or
`introduced-arm64=N`) exists from API N on; a line tagged with architectures exists on
those only; `var` marks data; blocks *_PRIVATE, *_PLATFORM, *_DEPRECATED and lines tagged
platform-only, apex, llndk or systemapi are not part of the NDK.
"""

import argparse
import re
import sys

ARCHES = {"arm", "arm64", "x86", "x86_64", "riscv64"}
NOT_NDK_TAGS = {"platform-only", "apex", "llndk", "systemapi"}
NOT_NDK_BLOCKS = ("_PRIVATE", "_PLATFORM", "_DEPRECATED")


def _tags(comment: str):
    return comment.replace(",", " ").split()


def _introduced(tags, arch):
    level = 0
    for t in tags:
        if t.startswith("introduced="):
            level = int(t.split("=", 1)[1])
    for t in tags:  # an architecture's own level wins
        if t.startswith(f"introduced-{arch}="):
            level = int(t.split("=", 1)[1])
    return level


def symbols(text: str, arch: str, api: int):
    out = set()
    block_ok, block_level = False, 0
    for raw in text.splitlines():
        line, _, comment = raw.partition("#")
        tags = _tags(comment)
        head = re.match(r"\s*([A-Z0-9_]+)\s*\{", line)
        if head:
            name = head.group(1)
            block_ok = not name.endswith(NOT_NDK_BLOCKS) and not (NOT_NDK_TAGS & set(tags))
            block_level = _introduced(tags, arch)
            continue
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*);", line)
        if not m or not block_ok:
            continue
        if NOT_NDK_TAGS & set(tags):
            continue
        arch_tags = ARCHES & set(tags)
        if arch_tags and arch not in arch_tags:
            continue
        level = max(block_level, _introduced(tags, arch))
        if level <= api:
            out.add(m.group(1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("maps", nargs="+", help="bionic version scripts (*.map.txt)")
    ap.add_argument("--arch", default="arm64")
    ap.add_argument("--api", type=int, default=21)
    ap.add_argument("--source", required=True, help="where the map files came from")
    args = ap.parse_args(argv)
    names = set()
    for path in args.maps:
        with open(path, encoding="utf-8") as f:
            names |= symbols(f.read(), args.arch, args.api)
    print(f"# C symbols of Android's libc/libm/libdl for NDK apps on {args.arch}, API level "
          f"<= {args.api}.")
    print(f"# Read from bionic's version scripts ({', '.join(p.rsplit('/', 1)[-1] for p in args.maps)})")
    print(f"# of {args.source} by tflite/abi/make_bionic_allowlist.py.")
    for n in sorted(names):
        print(n)


if __name__ == "__main__":
    sys.exit(main())
