#!/usr/bin/env python3
"""ARM cost of the binary conv kernels: AArch64 instruction counts under qemu-aarch64
and llvm-mca cycle estimates (Cortex-A72 and Neoverse-N1 models), on an x86 host.

For every binary 3x3 conv of ResNet-18 (32x32 input) and of the QuickNet-like 224x224
network (benchmarks/models.py) (and, --network demo, of the demo SBNN), every kernel of sbnn_core's kernel table that supports
it (dense and sparse; reference kernels excluded), and synthetic sparse filters
(Bernoulli and the paper's K0/K1 shares, as benchmarks/sparse_kernels.cc makes them):

* instructions: AArch64 instructions retired by one ``run`` over the whole image (batch
  1, one thread), exact: counted by a QEMU TCG plugin (insn_regions.c) between marker
  calls of a static harness (harness.cc) linked with the cross-built core library;
  every run is measured twice and the two counts must agree;
* stages: where the instructions go (input transposition, counting, conversion, output,
  ... for the sparse kernels; tiles, patch gathering, border fix-up for the dense ones),
  from the DWARF inline frames of every executed instruction (addr2line -i) matched
  against stage patterns; the functions themselves are in the JSON too, so a new stage
  shows up by name even before a pattern knows it;
* cycles: each executed block's llvm-mca steady-state cycles per iteration times its
  executions, summed, for ``-mcpu=cortex-a72`` (LLVM models it with its Cortex-A57
  model) and ``-mcpu=neoverse-n1`` (the server twin of the Cortex-A76, standing in for
  it). An estimate: L1-resident data, no branch mispredictions, no overlap between
  blocks.

Usage (project root; as root it installs what it needs with apt-get):

    python3 benchmarks/arm_cost/arm_cost.py                      # everything, ~10 min
    python3 benchmarks/arm_cost/arm_cost.py --network resnet18 --gen bernoulli \\
        --sparsity 0.95 --layer 8x8x256                           # one layer, ~1 min
    python3 benchmarks/arm_cost/arm_cost.py --json docs/data/arm_cost.json \\
        --markdown /tmp/arm_cost.md

docs/benchmarks.md ("ARM cost") has the method, the latest numbers and how far to
trust them. Builds go to --work (default build/arm_cost).
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOURCE = ROOT  # the checkout whose tflite/ is measured (--source)

# The binary 3x3 convs of the two networks (benchmarks/models.py; a test checks these
# tables against models.binary_convs): (name, h, w, c, out, k, stride, pad_values, count).
NETWORKS = {
    "resnet18": [  # resnet18(stem="cifar"), 32x32 input, SAME zero padding
        ("32x32x64->64", 32, 32, 64, 64, 3, 1, 0, 4),
        ("32x32x64->128/2", 32, 32, 64, 128, 3, 2, 0, 1),
        ("16x16x128->128", 16, 16, 128, 128, 3, 1, 0, 3),
        ("16x16x128->256/2", 16, 16, 128, 256, 3, 2, 0, 1),
        ("8x8x256->256", 8, 8, 256, 256, 3, 1, 0, 3),
        ("8x8x256->512/2", 8, 8, 256, 512, 3, 2, 0, 1),
        ("4x4x512->512", 4, 4, 512, 512, 3, 1, 0, 3),
    ],
    "quicknet": [  # quicknet(), 224x224 input, pad value 1 (LCE's one-padding)
        ("56x56x64->64,pad1", 56, 56, 64, 64, 3, 1, 1, 4),
        ("28x28x128->128,pad1", 28, 28, 128, 128, 3, 1, 1, 4),
        ("14x14x256->256,pad1", 14, 14, 256, 256, 3, 1, 1, 4),
        ("7x7x512->512,pad1", 7, 7, 512, 512, 3, 1, 1, 4),
    ],
    "demo": [  # sbnn_zoo.demo (models.fashion_mnist_cnn), 28x28 input: the binary convs
        # after the stem's pooling, as the cost model's demo estimate rates them
        ("14x14x32->64", 14, 14, 32, 64, 3, 1, 0, 1),
        ("14x14x64->64", 14, 14, 64, 64, 3, 1, 0, 1),
        ("7x7x64->128", 7, 7, 64, 128, 3, 1, 0, 1),
        ("7x7x128->128", 7, 7, 128, 128, 3, 1, 0, 1),
    ],
}
GENS = ("bernoulli", "k0k1")
OUTPUTS = ("dot", "bits", "float")
SPARSITIES = (0.9, 0.95, 0.99)
# llvm-mca CPU models: (label, -mcpu). LLVM gives cortex-a72 its Cortex-A57 model;
# neoverse-n1 has its own model and the Cortex-A76's core.
MCA_CPUS = (("A72", "cortex-a72"), ("A76~N1", "neoverse-n1"))
MCA_CANDIDATES = ("llvm-mca-19", "llvm-mca-18", "llvm-mca-17", "llvm-mca")

# Stage patterns (regular expressions), matched against the short names of the inline
# frames of an instruction, innermost frame first: the first frame that matches a
# pattern decides. Generic helpers (byte/bit transposes, bit reads) match nothing and
# take the stage of the function that called them. Kernels change: a function no pattern
# knows lands in "other", and the JSON's "functions" lists the innermost functions by
# name whatever the patterns say.
OUTPUT_PATTERN = (r"output|(^|_)emit($|_)|clear_band|store_dot|write_dot|bitpack|threshold|"
                  r"^to_(bits|float|int8)|^q_to_")
SPARSE_STAGES = (  # per frame the first matching rule wins: setup before output
    ("transpose", r"build_band|transpose_row|extract_rows|^band_bits$|^h_row$|zero_rows"),
    ("count", r"accumulate|^csa$|ripple|hs_count|^count_"),
    ("convert", r"convert|to_counts|counts_of|dot_of"),
    ("setup", r"^run_bitplane|scratch|plan|seg_lists|band_segments"),
    ("output", OUTPUT_PATTERN),
    ("channels", r"process_channels"),
)
DENSE_STAGES = (
    ("tile", r"tile|micro"),
    ("gather", r"gather|copy_words|zero_words|im2col"),
    ("fixup", r"fixup"),
    ("setup", r"run_gemm"),
    ("output", OUTPUT_PATTERN),
)
STAGE_DOC = {
    "transpose": "input transposition into bit planes (build_band and what it calls)",
    "count": "carry-save counting of the connections",
    "convert": "count planes to counts or dot",
    "output": "output stage: bitpacked/float output (fused, or the transform after `dot`)",
    "channels": "per-channel loop and plane copies (process_channels)",
    "setup": "per-call setup (plan checks, scratch)",
    "tile": "micro-kernel tiles",
    "gather": "patch gathering (im2col)",
    "fixup": "border correction (fixup_pad0)",
    "other": "anything no pattern names",
}

VERBOSE = False


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    if VERBOSE:
        log("+ " + " ".join(cmd))
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def have(cmd):
    return shutil.which(cmd) is not None


# ----------------------------------------------------------------------------------
# Tools


def apt_install(pkgs, optional=False):
    if os.geteuid() != 0 or not have("apt-get"):
        msg = "missing: %s (as root: apt-get install %s)" % (" ".join(pkgs), " ".join(pkgs))
        if optional:
            log(msg)
            return False
        sys.exit(msg)
    log("installing with apt-get: " + " ".join(pkgs))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    run(["apt-get"] + lock + ["update", "-qq"], stdout=subprocess.DEVNULL)
    r = run(["apt-get"] + lock + ["install", "-y", "-qq"] + pkgs, env=env, stdout=subprocess.DEVNULL,
            check=not optional)
    return r.returncode == 0


def find_mca():
    for c in MCA_CANDIDATES:
        if have(c):
            r = subprocess.run([c, "-mtriple=aarch64", "-mcpu=help"], capture_output=True, text=True)
            if "neoverse-n1" in r.stdout + r.stderr:
                return c
    return None


def ensure_tools(want_mca, install):
    need = []
    if not have("aarch64-linux-gnu-g++"):
        need += ["gcc-aarch64-linux-gnu", "g++-aarch64-linux-gnu"]
    if not have("qemu-aarch64"):
        need.append("qemu-user")
    for cmd, pkg in (("cmake", "cmake"), ("make", "make"), ("gcc", "gcc"), ("xz", "xz-utils"),
                     ("dpkg-query", "dpkg")):
        if not have(cmd):
            need.append(pkg)
    if need:
        if not install:
            sys.exit("missing: %s (drop --no-install, or apt-get install them)" % " ".join(need))
        apt_install(need)
    mca = find_mca() if want_mca else None
    if want_mca and mca is None and install:
        # Debian 12 has llvm-19 (llvm-mca-19); its default LLVM 14 has no Neoverse-N1 model.
        apt_install(["llvm-19"], optional=True)
        mca = find_mca()
    if want_mca and mca is None:
        log("no llvm-mca with a neoverse-n1 model found: cycle estimates skipped")
    helptext = subprocess.run(["qemu-aarch64", "-h"], capture_output=True, text=True).stdout
    if "-plugin" not in helptext:
        sys.exit("this qemu-aarch64 cannot load TCG plugins (no -plugin option); Debian's "
                 "qemu-user >= 6 can")
    return mca


def apt_deb_sources():
    """(URI, suite) of the system's binary apt sources (deb822 and one-line formats)."""
    out = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in open(path).read().split("\n\n"):
            f = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    k, v = line.split(":", 1)
                    f[k.strip()] = v.split()
            if "deb" in f.get("Types", []):
                out += [(u, s) for u in f.get("URIs", []) for s in f.get("Suites", [])]
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            for line in open(path):
                p = [x for x in line.split("#", 1)[0].split() if not x.startswith("[")]
                if len(p) >= 3 and p[0] == "deb":
                    out.append((p[1], p[2]))
    return out


def qemu_plugin_include(work, given):
    """Directory with the qemu-plugin.h of the installed qemu-user. No Debian binary
    package ships it: it is taken from the Debian source package of the installed
    version, fetched with a private apt configuration (the system's is left alone)."""
    if given:
        if not os.path.exists(os.path.join(given, "qemu-plugin.h")):
            sys.exit("--qemu-plugin-include %s: no qemu-plugin.h there" % given)
        return given
    inc = os.path.join(work, "qemu-plugin-include")
    ver = subprocess.run(["dpkg-query", "-W", "-f=${source:Version}", "qemu-user"],
                         capture_output=True, text=True).stdout.strip()
    stamp = os.path.join(inc, "VERSION")
    if os.path.exists(stamp) and open(stamp).read().strip() == ver:
        return inc
    if not ver:
        sys.exit("qemu-user is not a Debian package here: give --qemu-plugin-include DIR "
                 "(include/qemu/ of your qemu's source)")
    apt = os.path.join(work, "apt")
    os.makedirs(os.path.join(apt, "lists", "partial"), exist_ok=True)
    sources = apt_deb_sources()
    if not sources:
        sys.exit("no apt sources in /etc/apt: give --qemu-plugin-include DIR")
    with open(os.path.join(apt, "sources.list"), "w") as f:
        for uri, suite in sources:
            f.write("deb-src %s %s main\n" % (uri, suite))
    opts = ["-o", "Dir::Etc::SourceList=" + os.path.join(apt, "sources.list"),
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", "Dir::State::Lists=" + os.path.join(apt, "lists"),
            "-o", "APT::Sandbox::User=root"]
    log("fetching the Debian source package of qemu %s for qemu-plugin.h (~24 MB)" % ver)
    run(["apt-get"] + opts + ["update", "-qq"], stdout=subprocess.DEVNULL)
    src = os.path.join(work, "qemu-source")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    run(["apt-get"] + opts + ["source", "--download-only", "qemu=" + ver], cwd=src,
        stdout=subprocess.DEVNULL)
    origs = glob.glob(os.path.join(src, "qemu_*.orig.tar.*"))
    if not origs:
        sys.exit("no qemu upstream tarball in %s" % src)
    run(["tar", "-xf", origs[0], "-C", src, "--wildcards", "*/include/qemu/qemu-plugin.h"])
    found = glob.glob(os.path.join(src, "*", "include", "qemu", "qemu-plugin.h"))
    if not found:
        sys.exit("qemu-plugin.h is not in %s" % origs[0])
    # A Debian patch to the header would have to be applied; say so if there is one.
    for deb in glob.glob(os.path.join(src, "qemu_*.debian.tar.*")):
        patches = subprocess.run(["tar", "-xOf", deb, "--wildcards", "debian/patches/*"],
                                 capture_output=True, text=True, errors="replace").stdout
        if "qemu-plugin.h" in patches:
            log("warning: a Debian patch touches qemu-plugin.h; the upstream header is used")
    os.makedirs(inc, exist_ok=True)
    shutil.copy(found[0], os.path.join(inc, "qemu-plugin.h"))
    with open(stamp, "w") as f:
        f.write(ver + "\n")
    shutil.rmtree(src, ignore_errors=True)
    return inc


# ----------------------------------------------------------------------------------
# Builds


def build_plugin(work, inc):
    out = os.path.join(work, "libinsn_regions.so")
    run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-I", inc, "-o", out,
         os.path.join(HERE, "insn_regions.c")])
    return out


NO_TESTS = ["-DSBNN_BUILD_TESTS=OFF", "-DSBNN_BUILD_BENCH=OFF", "-DSBNN_CORE_TESTS=OFF",
            "-DSBNN_CORE_BENCH=OFF", "-Wno-dev", "--no-warn-unused-cli"]


def build_core(build, jobs, debug):
    """The core library cross-built with the project's CMake and toolchain file,
    Release (the library sets -O3 itself). -g only adds debug info."""
    flags = ["-DCMAKE_CXX_FLAGS=-g"] if debug else ["-DCMAKE_CXX_FLAGS="]
    # Tests and benchmarks off (their options before and after the CMake restructure, so
    # that --source can point at an older tree too; unused ones are only warned about).
    run(["cmake", "-S", os.path.join(SOURCE, "tflite"), "-B", build,
         "-DCMAKE_TOOLCHAIN_FILE=" + os.path.join(SOURCE, "tflite/toolchains/aarch64-linux-gnu.cmake"),
         "-DCMAKE_BUILD_TYPE=Release"] + NO_TESTS + flags, stdout=subprocess.DEVNULL)
    run(["cmake", "--build", build, "-j", str(jobs), "--target", "sbnn_core"], stdout=subprocess.DEVNULL)
    libs = sorted(glob.glob(os.path.join(build, "**", "libsbnn_core.a"), recursive=True))
    if not libs:
        sys.exit("no libsbnn_core.a under %s after the build" % build)
    return libs[0]


def include_dirs():
    """Directories of bconv2d.h and sparse_filter_gen.h (found, not assumed: the tree
    is being reorganized)."""
    dirs = []
    for header in ("bconv2d.h", "bconv2d_select.h", "sparse_filter_gen.h"):
        hits = sorted(glob.glob(os.path.join(SOURCE, "tflite", "**", header), recursive=True))
        if not hits:
            sys.exit("cannot find %s under tflite/" % header)
        d = os.path.dirname(hits[0])
        if d not in dirs:
            dirs.append(d)
    return dirs


def build_harness(lib, out):
    cmd = ["aarch64-linux-gnu-g++", "-O2", "-g", "-std=c++17", "-fno-ipa-icf", "-Wall", "-Wextra"]
    for d in include_dirs():
        cmd += ["-I", d]
    run(cmd + [os.path.join(HERE, "harness.cc"), lib, "-static", "-pthread", "-o", out])
    return out


def disassembly(binary, objdump="aarch64-linux-gnu-objdump"):
    """(address -> instruction text in objdump syntax, sorted addresses)."""
    out = run([objdump, "-d", "--no-show-raw-insn", binary], capture_output=True, text=True).stdout
    insns = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S.*?)\s*$", line)
        if m:
            insns[int(m.group(1), 16)] = m.group(2)
    return insns, sorted(insns)


# ----------------------------------------------------------------------------------
# Counting


def parse_counts(path):
    """region index -> {"insns": n, "blocks": {(vaddr, n): [execs, library insns]}}."""
    regions, cur = {}, None
    with open(path) as f:
        for line in f:
            p = line.split()
            if not p:
                continue
            if p[0] == "region":
                cur = {"insns": int(p[2]), "blocks": {}}
                regions[int(p[1])] = cur
            elif p[0] == "b":
                key = (int(p[1], 16), int(p[2]))
                e = cur["blocks"].setdefault(key, [0, 0])
                e[0] += int(p[3])
                e[1] += int(p[4])
    return regions


def count(harness, plugin, work, layers, gens, sparsities, kernels, reps, output):
    args = []
    for l in layers:
        args += ["--layer", ":".join(str(x) for x in l[:8])]
    for g in gens:
        args += ["--gen", g]
    for s in sparsities:
        args += ["--sparsity", repr(s)]
    for k in kernels:
        args += ["--kernel", k]
    args += ["--reps", str(reps), "--output", output]
    counts = os.path.join(work, "counts.txt")
    t0 = time.time()
    r = subprocess.run(["qemu-aarch64", "-cpu", "cortex-a72", "-plugin", plugin + ",out=" + counts,
                        harness] + args, capture_output=True, text=True)
    log("counted under qemu-aarch64 in %.0f s" % (time.time() - t0))
    with open(os.path.join(work, "regions.jsonl"), "w") as f:
        f.write(r.stdout)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    bad = [x for x in lines if "mismatch" in x or "error" in x]
    if r.returncode != 0 or bad:
        sys.exit("harness failed (exit %d): %s\n%s" % (r.returncode, bad[:5], r.stderr[-2000:]))
    return [x for x in lines if "region" in x], parse_counts(counts)


# ----------------------------------------------------------------------------------
# Attribution


def short_name(frame):
    """The unqualified function name of a demangled frame, without template arguments
    or parameters: 'ns::Impl<2>::process_channels(BandCtx&, int) const' ->
    'process_channels'. A lambda's body is named '<enclosing function>.lambda'."""
    s = frame.replace("(anonymous namespace)", "anon")
    top, depth_angle, depth_paren = [], 0, 0
    for ch in s:
        if ch == "(" and depth_angle == 0:
            depth_paren += 1
        elif ch == ")" and depth_angle == 0 and depth_paren:
            depth_paren -= 1
        elif depth_paren:
            continue
        elif ch == "<":
            depth_angle += 1
        elif ch == ">" and depth_angle:
            depth_angle -= 1
        elif depth_angle == 0:
            top.append(ch)
    parts = [p.strip() for p in "".join(top).split("::") if p.strip()]
    if not parts:
        return frame
    last = parts[-1].split()[0] if parts[-1].split() else parts[-1]
    if last.startswith("operator") and ("lambda" in s) and len(parts) > 1:
        return parts[-2].split()[0] + ".lambda"
    return last


def inline_chains(binary, pcs):
    """pc -> [short function names, innermost inline frame first] (addr2line -i)."""
    r = run(["aarch64-linux-gnu-addr2line", "-a", "-f", "-i", "-C", "-e", binary],
            input="".join("0x%x\n" % a for a in pcs), capture_output=True, text=True)
    chains, cur = {}, None
    lines = r.stdout.splitlines()
    i = 0
    while i < len(lines):
        if re.match(r"^0x[0-9a-f]+$", lines[i]):
            cur = int(lines[i], 16)
            chains[cur] = []
            i += 1
        else:
            chains[cur].append(short_name(lines[i]))
            i += 2  # function name, then file:line
    return chains


# libc's string and allocator routines and symbol-less stubs: charged to their caller's
# stage (the plugin's library_symbol() decides the same way).
LIBRARY = re.compile(r"^(__)?(mem|str|bcmp|bzero|malloc|free|calloc)|^__libc_(malloc|free|calloc)|"
                     r"^_int_|^cfree|^unlink_chunk|^tcache|^sysmalloc|^\?\?$")


def stage_of(chain, rules):
    for name in chain:
        if name.endswith(".lambda"):  # a lambda works for the function that calls it
            continue
        for stage, pattern in rules:
            if re.search(pattern, name):
                return stage
    return "other"


# ----------------------------------------------------------------------------------
# llvm-mca


def mca_lines(dis, vaddr, n, comment="//"):
    """The block (n instructions from vaddr) as llvm-mca input, or None when the
    disassembly does not have them."""
    import bisect
    insns, addrs = dis
    i = bisect.bisect_left(addrs, vaddr)
    if i + n > len(addrs) or addrs[i] != vaddr:
        return None
    label = ".Lb%x" % vaddr
    out = [label + ":"]
    for a in addrs[i:i + n]:
        t = insns[a].split(comment, 1)[0].strip()
        if t.startswith("(bad)") or t.startswith(".inst") or not t:
            return None
        t = re.sub(r"\b[0-9a-f]+ <[^>]*>", label, t)  # branch/adrp/literal targets
        # llvm-mca gives a call a fixed 100-cycle latency; here a call is the taken
        # branch it is (the callee's blocks are counted on their own).
        t = re.sub(r"^bl(r?)\s", r"b\1 ", t)
        t = re.sub(r"^call[q]?\s", "jmp ", t)
        out.append(t)
    return out


def mca_cycles(mca, cpu, blocks, dis, work, triple="aarch64"):
    """(vaddr, n) -> llvm-mca cycles per execution (100 iterations, steady state)."""
    todo = []
    res = {}
    for key in blocks:
        body = mca_lines(dis, key[0], key[1], "//" if triple == "aarch64" else "#")
        if body is None:
            res[key] = None
        else:
            todo.append((key, body))

    def batch(items):
        src = []
        for j, (_, body) in enumerate(items):
            src += ["# LLVM-MCA-BEGIN r%d" % j] + body + ["# LLVM-MCA-END r%d" % j]
        path = os.path.join(work, "mca-%s.s" % cpu)
        with open(path, "w") as f:
            f.write("\n".join(src) + "\n")
        r = subprocess.run([mca, "-mtriple=" + triple, "-mcpu=" + cpu, "-iterations=100",
                            "--instruction-info=0", "--resource-pressure=0", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        got = {}
        for m in re.finditer(r"Code Region - r(\d+)\s+Iterations:\s+(\d+)\s+Instructions:\s+\d+\s+"
                             r"Total Cycles:\s+(\d+)", r.stdout):
            got[items[int(m.group(1))][0]] = int(m.group(3)) / int(m.group(2))
        return got

    got = batch(todo)
    if got is None:  # some block does not assemble: one at a time
        got = {}
        for item in todo:
            g = batch([item])
            got[item[0]] = None if g is None else g.get(item[0])
    res.update(got)
    return res


def page_joins(blocks):
    """QEMU ends a translation block at a 4 KB page boundary even in the middle of
    straight-line code, so a loop body that straddles a page is counted as two blocks;
    llvm-mca would model them as two unrelated loops (no overlap between them), and the
    estimate would move with where the linker put the loop. Returns block -> (joined
    block, share): a block ending on a page boundary and the block starting there are
    modelled as one (the longest such block), each charged its share of the joined
    block's cycles by instruction count."""
    by_start = {}
    for va, n in blocks:
        if n > by_start.get(va, 0):
            by_start[va] = n
    out = {}
    for va, n in blocks:
        end = va + 4 * n
        if end % 4096 == 0 and end in by_start:
            nb = by_start[end]
            joined = (va, n + nb)
            out[(va, n)] = (joined, n / (n + nb))
            out.setdefault((end, nb), (joined, nb / (n + nb)))
    return out


# ----------------------------------------------------------------------------------
# Analysis


def analyse(index, regions, binary, mca, work):
    empty = next((regions[x["region"]]["insns"] for x in index if x["phase"] == "empty"), 0)
    res = collections.OrderedDict()
    for x in index:
        if x["phase"] == "empty":
            continue
        key = (x["layer"], x["gen"], round(x["sparsity"], 4), x["kernel"])
        d = res.setdefault(key, {k: x.get(k) for k in ("layer", "gen", "sparsity", "kernel", "sparse",
                                                       "fused_output", "connections", "max_conns", "density", "k0",
                                                       "k1", "macs")})
        n = regions[x["region"]]["insns"] - empty
        if x["phase"] == "prepare":
            d["prepare_instructions"] = n
        else:
            d.setdefault("runs", []).append(n)
            d["_region"] = x["region"]
    for d in res.values():
        d["instructions"] = d["runs"][-1]
        d["deterministic"] = len(set(d["runs"])) == 1

    blocks = set()
    for d in res.values():
        blocks.update(regions[d["_region"]]["blocks"])
    pcs = sorted({va + 4 * i for va, n in blocks for i in range(n)})
    chains = inline_chains(binary, pcs)
    dis = disassembly(binary)
    cycles = {}
    if mca:
        joins = page_joins(blocks)
        modelled = sorted(blocks | {j for j, _ in joins.values()})
        for label, cpu in MCA_CPUS:
            t0 = time.time()
            per_block = mca_cycles(mca, cpu, modelled, dis, work)
            for b, (j, share) in joins.items():
                per_block[b] = None if per_block.get(j) is None else per_block[j] * share
            cycles[label] = per_block
            log("llvm-mca -mcpu=%s: %d blocks (%d joined across pages) in %.0f s"
                % (cpu, len(blocks), len(joins), time.time() - t0))

    for d in res.values():
        rules = SPARSE_STAGES if d["sparse"] else DENSE_STAGES
        blks = regions[d.pop("_region")]["blocks"]
        stages = collections.Counter()
        funcs = collections.Counter()
        st_cyc = {lab: collections.Counter() for lab in cycles}
        tot_cyc = {lab: 0.0 for lab in cycles}
        missing = {lab: 0 for lab in cycles}
        lib_insns, lib_cyc = 0, {lab: 0.0 for lab in cycles}
        charged = collections.Counter()  # library instructions by calling stage
        hot = []
        for (va, n), (execs, lib) in blks.items():
            per = collections.Counter()
            for i in range(n):
                ch = chains.get(va + 4 * i) or ["??"]
                if LIBRARY.match(ch[0]):
                    per["lib"] += 1
                else:
                    per[stage_of(ch, rules)] += 1
                    funcs[ch[0]] += execs
            if lib:
                charged[stage_of(chains.get(va + 4 * (n - 1)) or ["??"], rules)] += lib
            for s, k in per.items():
                if s == "lib":
                    lib_insns += k * execs
                else:
                    stages[s] += k * execs
            cy = {}
            for lab in cycles:
                c = cycles[lab].get((va, n))
                cy[lab] = c
                if c is None:
                    missing[lab] += n * execs
                    continue
                tot_cyc[lab] += c * execs
                for s, k in per.items():
                    if s == "lib":
                        lib_cyc[lab] += c * execs * k / n
                    else:
                        st_cyc[lab][s] += c * execs * k / n
            hot.append((va, n, execs, per.most_common(1)[0][0], cy))
        # Library code (memcpy, memset, PLT stubs) goes to the stage that called it.
        ctot = sum(charged.values())
        for s, k in charged.items():
            stages[s] += k
            for lab in cycles:
                st_cyc[lab][s] += lib_cyc[lab] * k / ctot
        if lib_insns != ctot:
            stages["other"] += lib_insns - ctot
            if not ctot:
                for lab in cycles:
                    st_cyc[lab]["other"] += lib_cyc[lab]
        d["stages"] = dict(stages)
        d["functions"] = dict(funcs.most_common(8))
        if cycles:
            d["cycles"] = {lab: round(v, 1) for lab, v in tot_cyc.items()}
            d["stage_cycles"] = {lab: {s: round(v, 1) for s, v in st_cyc[lab].items()} for lab in cycles}
            if any(missing.values()):
                d["instructions_without_cycles"] = missing
        key = MCA_CPUS[-1][0] if cycles else None
        hot.sort(key=lambda h: -(h[2] * (h[4].get(key) or 0) if key else h[2] * h[1]))
        d["hot_blocks"] = [{"address": "0x%x" % va, "instructions": n, "executions": e, "stage": st,
                            "cycles_per_execution": {k: v for k, v in cy.items()}}
                           for va, n, e, st, cy in hot[:2]]
    return list(res.values())


# ----------------------------------------------------------------------------------
# How far instruction counts predict time: the same harness on this x86 host


X86_PAIRS = (("bconv2d_dot_3x8__avx2_lut", "bconv2d_sparse_bitplane_256__avx2"),
             ("bconv2d_dot_2x4__scalar_popcnt", "bconv2d_sparse_bitplane_64__scalar"))


X86_MCA_CPU = "znver4"  # LLVM 19's Zen 4 model (its znver5 reuses it)


def x86_check(work, plugin, jobs, layers, gens, sparsities, time_reps, install, mca):
    """Counts the x86 kernels' instructions under qemu-x86_64 -cpu max (AVX2, no
    AVX-512 in QEMU 7.2) and times them natively (interleaved, thread CPU time): the
    AVX2 pair (a hand-written dense micro-kernel against the bit-plane kernel on its
    portable stages, the situation of the NEON pair) and the scalar pair. Returns rows
    with the sparse/dense instruction ratio next to the measured time ratio."""
    if platform.machine() not in ("x86_64", "AMD64"):
        sys.exit("--x86-check needs an x86-64 host")
    if not (have("g++") and have("qemu-x86_64")):
        if not install:
            sys.exit("--x86-check needs g++ and qemu-x86_64 (qemu-user)")
        apt_install(["g++", "qemu-user"])
    build = os.path.join(work, "core-x86_64")
    run(["cmake", "-S", os.path.join(SOURCE, "tflite"), "-B", build, "-DCMAKE_BUILD_TYPE=Release"] + NO_TESTS,
        stdout=subprocess.DEVNULL)
    log("x86 check: building the core library for this host (Release)")
    run(["cmake", "--build", build, "-j", str(jobs), "--target", "sbnn_core"], stdout=subprocess.DEVNULL)
    lib = sorted(glob.glob(os.path.join(build, "**", "libsbnn_core.a"), recursive=True))[0]
    exe = os.path.join(work, "harness-x86_64")
    cmd = ["g++", "-O2", "-g", "-std=c++17", "-fno-ipa-icf"]
    for d in include_dirs():
        cmd += ["-I", d]
    run(cmd + [os.path.join(HERE, "harness.cc"), lib, "-static", "-pthread", "-o", exe])
    args = []
    for l in layers:
        args += ["--layer", ":".join(str(x) for x in l[:8])]
    for g in gens:
        args += ["--gen", g]
    for sp in sparsities:
        args += ["--sparsity", repr(sp)]
    for pair in X86_PAIRS:
        for k in pair:
            args += ["--kernel", k]
    counts = os.path.join(work, "counts-x86_64.txt")
    r = run(["qemu-x86_64", "-cpu", "max", "-plugin", plugin + ",out=" + counts, exe] + args + ["--reps", "1"],
            capture_output=True, text=True, check=False)
    if r.returncode != 0:
        sys.exit("x86 check: harness under qemu-x86_64 failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    index = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    regions = parse_counts(counts)
    # QEMU runs a REP-prefixed string instruction (memset's REP STOSB) as one block
    # execution per iteration: such blocks are left out of the counts.
    dis = run(["objdump", "-d", "--no-show-raw-insn", exe], capture_output=True, text=True).stdout
    rep = {int(m.group(1), 16) for m in re.finditer(r"^\s*([0-9a-f]+):\s+rep", dis, re.M)}
    empty = next((regions[x["region"]]["insns"] for x in index if x.get("phase") == "empty"), 0)
    runs = [x for x in index if x.get("phase") == "run"]
    cyc = {}
    if mca:
        blocks = sorted({b for x in runs for b in regions[x["region"]]["blocks"] if b[0] not in rep})
        cyc = mca_cycles(mca, X86_MCA_CPU, blocks, disassembly(exe, "objdump"), work, "x86_64")
    insns, cycles, missing = {}, {}, {}
    for x in runs:
        blocks = regions[x["region"]]["blocks"]
        key = (x["layer"], x["gen"], round(x["sparsity"], 4), x["kernel"])
        insns[key] = sum(n * e for (va, n), (e, _) in blocks.items() if va not in rep) - empty
        cycles[key] = sum(e * (cyc.get((va, n)) or 0) for (va, n), (e, _) in blocks.items() if va not in rep)
        if mca:
            missing[key] = sum(n * e for (va, n), (e, _) in blocks.items()
                               if va not in rep and cyc.get((va, n)) is None) / max(insns[key], 1)
    log("x86 check: timing natively, %d interleaved rounds per configuration (load %.1f)" %
        (time_reps, os.getloadavg()[0]))
    load0 = os.getloadavg()[0]
    t = run([exe] + args + ["--reps", "1", "--time", str(time_reps)], capture_output=True, text=True)
    times = {}
    for line in t.stdout.splitlines():
        if line.startswith('{"timing"'):
            x = json.loads(line)
            times[(x["layer"], x["gen"], round(x["sparsity"], 4), x["timing"])] = x
    rows = []
    for l in layers:
        for g in gens:
            for sp in sparsities:
                for dk, sk in X86_PAIRS:
                    kd, ks = (l[0], g, round(sp, 4), dk), (l[0], g, round(sp, 4), sk)
                    if kd in insns and ks in insns and kd in times and ks in times:
                        rows.append({"layer": l[0], "gen": g, "sparsity": sp, "dense": dk, "sparse": sk,
                                     "dense_instructions": insns[kd], "sparse_instructions": insns[ks],
                                     "dense_ms": times[kd]["min_ms"], "sparse_ms": times[ks]["min_ms"],
                                     "dense_median_ms": times[kd]["median_ms"],
                                     "sparse_median_ms": times[ks]["median_ms"],
                                     "instr_ratio": insns[ks] / insns[kd],
                                     "mca_ratio": cycles[ks] / cycles[kd] if cycles[kd] else None,
                                     "time_ratio": times[ks]["min_ms"] / times[kd]["min_ms"],
                                     "median_time_ratio": times[ks]["median_ms"] / times[kd]["median_ms"]})
    return rows, {"load_before": round(load0, 1), "load_after": round(os.getloadavg()[0], 1),
                  "cpu": cpu_name(), "time_reps": time_reps, "llvm_mca_cpu": X86_MCA_CPU if mca else None,
                  "mca_unmodelled_instruction_share": round(max(missing.values(), default=0), 4)}


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def x86_table(rows, info):
    out = ["How far instruction ratios predict time on this host (%s; load %.1f -> %.1f): "
           "sparse/dense instructions counted under qemu-x86_64 -cpu max against measured "
           "thread CPU time, minimum (median) of %d interleaved runs:" % (
               info["cpu"], info["load_before"], info["load_after"], info["time_reps"]), "",
           "| layer | filters | sparsity | pair (dense / sparse) | instr ratio | llvm-mca %s ratio | "
           "time ratio | time / instr | time / mca |" % X86_MCA_CPU,
           "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r.get("mca_ratio")
        out.append("| %s | %s | %.2f | %s / %s | %.2f | %s | %.2f (%.2f) | %.2f | %s |" % (
            r["layer"], r["gen"], r["sparsity"], r["dense"].replace("bconv2d_", ""),
            r["sparse"].replace("bconv2d_", ""), r["instr_ratio"], "%.2f" % m if m else "-", r["time_ratio"],
            r["median_time_ratio"], r["time_ratio"] / r["instr_ratio"], "%.2f" % (r["time_ratio"] / m) if m else "-"))
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------
# Report


def fmt_m(v):
    return "%.2fM" % (v / 1e6) if v >= 1e5 else "%.3fM" % (v / 1e6)


def isa_kernel(name):
    return "scalar" not in name


def tables(results, layers, labels):
    """Markdown: per layer sparse/dense ratios, network totals, stage split."""
    by = {(r["layer"], r["gen"], round(r["sparsity"], 4), r["kernel"]): r for r in results}
    dense_k = next((r["kernel"] for r in results if not r["sparse"] and isa_kernel(r["kernel"])),
                   next((r["kernel"] for r in results if not r["sparse"]), None))
    sparse_ks = []
    for r in results:
        if r["sparse"] and isa_kernel(r["kernel"]) and r["kernel"] not in sparse_ks:
            sparse_ks.append(r["kernel"])
    if not sparse_ks:
        sparse_ks = [r["kernel"] for r in results if r["sparse"]][:1]
    gs = []
    for r in results:
        if (r["gen"], round(r["sparsity"], 4)) not in gs:
            gs.append((r["gen"], round(r["sparsity"], 4)))
    out = []
    metrics = ["instr"] + labels

    def val(r, m):
        return r["instructions"] if m == "instr" else r["cycles"][m]

    out.append("Dense kernel: `%s`. Sparse/dense ratios (< 1: the sparse kernel is cheaper; "
               "cycles = llvm-mca model):" % dense_k)
    out.append("")
    for sk in sparse_ks:
        out.append("`%s`:" % sk)
        out.append("")
        out.append("| layer | filters | sparsity | dense instr | sparse instr | " +
                   " | ".join("ratio " + m for m in metrics) + " |")
        out.append("|---|---|---:|---:|---:|" + "---:|" * len(metrics))
        for lay in layers:
            for g, sp in gs:
                d, s = by.get((lay[0], g, sp, dense_k)), by.get((lay[0], g, sp, sk))
                if not (d and s):
                    continue
                out.append("| %s | %s | %.2f | %s | %s | %s |" % (
                    lay[0], g, sp, fmt_m(d["instructions"]), fmt_m(s["instructions"]),
                    " | ".join("%.2f" % (val(s, m) / val(d, m)) for m in metrics)))
        out.append("")
    # Network totals: layers weighted by how often they occur.
    out.append("Whole networks (binary 3x3 convs weighted by their count), sparse/dense:")
    out.append("")
    out.append("| network | sparse kernel | filters | sparsity | " + " | ".join("ratio " + m for m in metrics) + " |")
    out.append("|---|---|---|---:|" + "---:|" * len(metrics))
    totals = []
    all_sparse = []
    for r in results:
        if r["sparse"] and r["kernel"] not in all_sparse:
            all_sparse.append(r["kernel"])
    for net, nl in NETWORKS.items():
        names = {l[0]: l[8] for l in nl}
        if not any(l[0] in names for l in layers):
            continue
        for sk in all_sparse:
            for g, sp in gs:
                sums = {m: [0.0, 0.0] for m in metrics}
                complete = True
                for name, cnt in names.items():
                    d, s = by.get((name, g, sp, dense_k)), by.get((name, g, sp, sk))
                    if not (d and s):
                        complete = False
                        break
                    for m in metrics:
                        sums[m][0] += cnt * val(d, m)
                        sums[m][1] += cnt * val(s, m)
                if not complete:
                    continue
                ratios = {m: sums[m][1] / sums[m][0] for m in metrics}
                totals.append({"network": net, "dense": dense_k, "sparse": sk, "gen": g, "sparsity": sp,
                               "ratios": ratios,
                               "dense_total": {m: sums[m][0] for m in metrics},
                               "sparse_total": {m: sums[m][1] for m in metrics}})
                out.append("| %s | %s | %s | %.2f | %s |" % (
                    net, sk.replace("bconv2d_", ""), g, sp, " | ".join("%.2f" % ratios[m] for m in metrics)))
    if not totals:
        out.append("| (no network measured completely) |")
    out.append("")
    g = goals_table(results, labels)
    if g:
        out.append(g)
    # Stage split.
    lab = labels[-1] if labels else None
    for kname in [dense_k] + sparse_ks:
        rows = [r for r in results if r["kernel"] == kname]
        if not rows:
            continue
        stages = []
        for r in rows:
            for s in r["stages"]:
                if s not in stages:
                    stages.append(s)
        order = [s for s in STAGE_DOC if s in stages] + [s for s in stages if s not in STAGE_DOC]
        out.append("Where `%s` spends one run: %% of instructions%s:" %
                   (kname, (" / %% of %s cycles" % lab) if lab else ""))
        out.append("")
        out.append("| layer | filters | sparsity | " + " | ".join(order) + " |")
        out.append("|---|---|---:|" + "---:|" * len(order))
        seen = set()
        for r in rows:
            if not r["sparse"]:  # the dense kernel does the same work for every filter
                if r["layer"] in seen:
                    continue
                seen.add(r["layer"])
            ti = sum(r["stages"].values())
            tc = sum(r["stage_cycles"][lab].values()) if lab else 0
            cells = []
            for s in order:
                c = "%.0f%%" % (100.0 * r["stages"].get(s, 0) / ti)
                if lab and tc:
                    c += " / %.0f%%" % (100.0 * r["stage_cycles"][lab].get(s, 0) / tc)
                cells.append(c)
            out.append("| %s | %s | %s | %s |" % (r["layer"], r["gen"] if r["sparse"] else "any",
                                                   "%.2f" % r["sparsity"] if r["sparse"] else "-",
                                                   " | ".join(cells)))
        out.append("")
    out.append("Stages: " + "; ".join("%s = %s" % (s, STAGE_DOC[s]) for s in STAGE_DOC) +
               ". Library calls (memcpy, memset, malloc) count in the stage that made them.")
    return "\n".join(out), totals


def write_json(path, doc):
    """Indented JSON with one line per result (readable diffs, a few hundred KB)."""
    head = {k: v for k, v in doc.items() if k not in ("results", "network_totals", "x86_check")}
    text = json.dumps(head, indent=1)[:-2]
    for key in ("network_totals", "x86_check", "results"):
        text += ',\n "%s": [\n' % key
        text += ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in doc.get(key) or [])
        text += "\n ]"
    with open(path, "w") as f:
        f.write(text + "\n}\n")


# The project's NEON goals for the sparse kernels (docs/benchmarks.md "ARM cost"), on the
# binary convs of ResNet-18: (what, model, sparsity, limit of sparse/dense).
GOALS = (
    ("every layer", "A76~N1", 0.95, 0.5),
    ("16 convs together", "A76~N1", 0.95, 0.4),
    ("16 convs together", "A76~N1", 0.99, 0.25),
    ("16 convs together", "A72", 0.95, 0.6),
)


def goals_table(results, labels):
    """The NEON goals against the results: one row per sparse ISA kernel and generator."""
    if not labels:
        return ""
    by = {(r["layer"], r["gen"], round(r["sparsity"], 4), r["kernel"]): r for r in results}
    dense_k = next((r["kernel"] for r in results if not r["sparse"] and isa_kernel(r["kernel"])), None)
    sparse_ks = []
    for r in results:
        if r["sparse"] and isa_kernel(r["kernel"]) and r["kernel"] not in sparse_ks:
            sparse_ks.append(r["kernel"])
    layers = NETWORKS["resnet18"]
    rows = []
    for sk in sparse_ks:
        for g in GENS:
            cells, complete = [], True
            for what, lab, sp, limit in GOALS:
                ds = [(by.get((l[0], g, sp, dense_k)), by.get((l[0], g, sp, sk)), l[8]) for l in layers]
                if lab not in labels or not all(d and s for d, s, _ in ds):
                    complete = False
                    break
                if what == "every layer":
                    v = max(s["cycles"][lab] / d["cycles"][lab] for d, s, _ in ds)
                else:
                    v = (sum(c * s["cycles"][lab] for d, s, c in ds) /
                         sum(c * d["cycles"][lab] for d, s, c in ds))
                cells.append("%.2f %s" % (v, "met" if v <= limit else "not met"))
            if complete:
                rows.append("| %s | %s | %s |" % (sk.replace("bconv2d_", ""), g, " | ".join(cells)))
    if not rows:
        return ""
    head = " | ".join("%s, %s, %.0f%%: <= %.2f" % (w, lab, 100 * sp, lim) for w, lab, sp, lim in GOALS)
    return "\n".join(["NEON goals on ResNet-18's binary convs (sparse/dense model cycles; "
                      "\"every layer\" = the worst layer):", "",
                      "| sparse kernel | filters | " + head + " |",
                      "|---|---|" + "---|" * len(GOALS)] + rows) + "\n\n"


def git_commit():
    r = subprocess.run(["git", "-C", SOURCE, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    c = r.stdout.strip() or "unknown"
    d = subprocess.run(["git", "-C", SOURCE, "status", "--porcelain", "--untracked-files=no", "tflite", "benchmarks"],
                       capture_output=True, text=True).stdout.strip()
    return c + ("+dirty" if d else "")


def main(argv=None):
    global VERBOSE, SOURCE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", action="append", choices=sorted(NETWORKS),
                    help="networks whose binary convs to measure (repeatable; default all)")
    ap.add_argument("--layer", action="append", metavar="SUBSTR",
                    help="only layers whose name contains SUBSTR (repeatable)")
    ap.add_argument("--gen", action="append", choices=GENS, help="filter generator (default both)")
    ap.add_argument("--sparsity", action="append", type=float,
                    help="filter sparsity in [0.5, 1) (repeatable; default 0.9 0.95 0.99)")
    ap.add_argument("--kernel", action="append", metavar="SUBSTR",
                    help="only kernels whose name contains SUBSTR (repeatable; default every "
                         "non-reference kernel of the table)")
    ap.add_argument("--output", default="dot", choices=OUTPUTS,
                    help="what one measured run produces: the kernels' int32 dot (default), or "
                         "a layer's bitpacked / float output as the delegate makes it")
    ap.add_argument("--reps", type=int, default=2, help="measured runs per kernel (must agree; default 2)")
    ap.add_argument("--no-mca", action="store_true", help="no llvm-mca cycle estimates")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get")
    ap.add_argument("--check-debug-codegen", action="store_true",
                    help="also build the library without -g and check the code is identical")
    ap.add_argument("--qemu-plugin-include", metavar="DIR",
                    help="directory with qemu-plugin.h (default: from the installed qemu's Debian source)")
    ap.add_argument("--source", metavar="DIR",
                    help="measure the kernels of another checkout (its tflite/; default: this one)")
    ap.add_argument("--work", help="build directory (default build/arm_cost, or build/arm_cost-NAME "
                                   "for --source .../NAME)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--x86-check", action="store_true",
                    help="also check on this x86 host how well instruction ratios predict time "
                         "ratios (AVX2 and scalar pairs: qemu-x86_64 counts vs native timings)")
    ap.add_argument("--x86-layer", action="append", metavar="SUBSTR",
                    help="layers for --x86-check (default: those measured, ResNet-18 ones only)")
    ap.add_argument("--time-reps", type=int, default=200, help="timed runs per kernel for --x86-check")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--markdown", metavar="PATH", help="also write the tables here")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--from-json", metavar="PATH",
                    help="only print the tables of a saved --json result (nothing is built or run)")
    a = ap.parse_args(argv)
    VERBOSE = a.verbose
    if a.from_json:
        doc = json.load(open(a.from_json))
        saved = [tuple(l) for n in doc["networks"] for l in doc["networks"][n]]
        labels = [lab for lab in doc.get("mca_cpus") or {}]
        md, _ = tables(doc["results"], saved, labels)
        print("commit %s: `%s`\n" % (doc["commit"], doc["command"]))
        print(md)
        if doc.get("x86_check"):
            print("\n" + x86_table(doc["x86_check"], doc["x86_check_host"]))
        return 0
    for s in a.sparsity or []:
        if not 0.5 <= s < 1:
            ap.error("--sparsity %r: must be in [0.5, 1)" % s)
    if not 1 <= a.reps <= 100:
        ap.error("--reps %r: must be in 1..100" % a.reps)
    if a.time_reps < 1:
        ap.error("--time-reps %r: must be >= 1" % a.time_reps)
    if a.jobs < 1:
        ap.error("--jobs %r: must be >= 1" % a.jobs)
    nets = a.network or list(NETWORKS)
    layers = []
    for n in nets:
        for l in NETWORKS[n]:
            if (not a.layer or any(x in l[0] for x in a.layer)) and l not in layers:
                layers.append(l)
    if not layers:
        ap.error("--layer %s: no layer of %s matches" % (a.layer, ", ".join(nets)))
    gens = a.gen or list(GENS)
    sparsities = a.sparsity or list(SPARSITIES)
    if a.source:
        SOURCE = os.path.abspath(a.source)
        if not os.path.isfile(os.path.join(SOURCE, "tflite", "CMakeLists.txt")):
            ap.error("--source %s: no tflite/CMakeLists.txt there" % a.source)
    work = a.work or os.path.join(ROOT, "build", "arm_cost" if SOURCE == ROOT else
                                  "arm_cost-" + re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(SOURCE)))
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    t_start = time.time()

    mca = ensure_tools(not a.no_mca, not a.no_install)
    plugin = build_plugin(work, qemu_plugin_include(work, a.qemu_plugin_include))
    log("cross-building the core library for aarch64 (Release, -g)")
    lib = build_core(os.path.join(work, "core-aarch64-g"), a.jobs, True)
    harness = build_harness(lib, os.path.join(work, "harness"))
    same_code = None
    if a.check_debug_codegen:
        log("cross-building it again without -g to compare the code")
        lib0 = build_core(os.path.join(work, "core-aarch64"), a.jobs, False)
        h0 = build_harness(lib0, os.path.join(work, "harness-nodebug"))

        def text(b):
            return run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", b],
                       capture_output=True, text=True).stdout.split("\n", 3)[-1]
        same_code = text(harness) == text(h0)
        if not same_code:
            sys.exit("the -g build's code differs from the plain Release build: counts would not "
                     "be those of the released code")
    kernels = a.kernel or []
    listed = run(["qemu-aarch64", harness, "--list-kernels"] + sum((["--kernel", k] for k in kernels), []),
                 capture_output=True, text=True).stdout
    if not listed.strip():
        sys.exit("--kernel %s: no kernel of the table matches" % kernels)
    index, regions = count(harness, plugin, work, layers, gens, sparsities, kernels, a.reps, a.output)
    results = analyse(index, regions, harness, mca, work)
    labels = [lab for lab, _ in MCA_CPUS] if mca else []
    md, totals = tables(results, layers, labels)
    x86_rows, x86_info = None, None
    if a.x86_check:
        xl = [l for l in NETWORKS["resnet18"]
              if (any(x in l[0] for x in a.x86_layer) if a.x86_layer else l in layers)]
        x86_rows, x86_info = x86_check(work, plugin, a.jobs, xl, gens, sparsities, a.time_reps,
                                       not a.no_install, mca)
        md += "\n\n" + x86_table(x86_rows, x86_info)
    nondet = [r for r in results if not r["deterministic"]]
    dense_vary = collections.defaultdict(set)
    for r in results:
        if not r["sparse"]:
            dense_vary[(r["layer"], r["kernel"])].add(r["instructions"])
    header = [
        "# ARM cost: binary conv kernels, AArch64 under qemu-aarch64",
        "",
        "commit %s; %s; %s; %s" % (
            git_commit(), run(["qemu-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
            run(["aarch64-linux-gnu-g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
            mca or "no llvm-mca"),
        "",
        "Output: %s. " % a.output +
        "Instructions: one `run` over the whole image (batch 1, one thread), exact; cycles: "
        "llvm-mca %s per executed block x executions (a model, not a measurement)." %
        " / ".join("%s = -mcpu=%s" % (l, c) for l, c in MCA_CPUS if l in labels),
        "Repeated runs count the same: %s. Dense kernels count the same on every filter: %s." % (
            "yes" if not nondet else "NO (%d kernels differ)" % len(nondet),
            "yes" if all(len(v) == 1 for v in dense_vary.values()) else
            "within %.3f%% (the output call's malloc)" % (100 * max((max(v) - min(v)) / min(v)
                                                              for v in dense_vary.values()))),
        "",
    ]
    text = "\n".join(header) + md + "\n"
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    if a.json:
        doc = {
            "benchmark": "arm_cost",
            "commit": git_commit(),
            "command": "python3 benchmarks/arm_cost/arm_cost.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "host": "%s, %s" % (platform.node() and platform.processor() or platform.machine(), platform.platform()),
            "qemu": run(["qemu-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
            "compiler": run(["aarch64-linux-gnu-g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
            "output": a.output,
            "llvm_mca": mca,
            "mca_cpus": dict(MCA_CPUS) if mca else {},
            "debug_codegen_identical": same_code,
            "networks": {n: [list(l) for l in NETWORKS[n]] for n in nets},
            "seconds": round(time.time() - t_start, 1),
            "results": results,
            "network_totals": totals,
            "x86_check": x86_rows,
            "x86_check_host": x86_info,
        }
        write_json(a.json, doc)
    if nondet:
        sys.exit("repeated runs counted differently: %s" % ", ".join(
            "%s %s %s %.2f: %s" % (r["kernel"], r["layer"], r["gen"], r["sparsity"], r["runs"]) for r in nondet))
    return 0


if __name__ == "__main__":
    sys.exit(main())
