"""The import graph follows the rooms of docs/architecture.md.

Every ``import`` statement of the three packages (at module level or inside a
function: a lazy import is still a dependency) is checked against the room ranks
below: a module may import its own room and rooms of lower rank, never a room of
higher or equal rank (two rooms of one rank are siblings that do not know each other).
Below that, the sizes of the units (functions, classes) of the packages and of the
native library are checked against the limits of docs/architecture.md, and the same
code is searched for repeated blocks.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sbnn_runtime", "sbnn_keras", "sbnn_zoo")

#: room -> rank. Data flows math -> quantizers -> layers -> regularizer -> metrics ->
#: export -> runtime; the runtime is its own package below the library (it imports
#: nothing of it), so export may use its readers; apps sit above the library.
RANKS = {
    "sbnn_runtime": 0,
    "sbnn_keras._compat": 1,
    "sbnn_keras._checks": 1,
    "sbnn_keras.math": 1,
    "sbnn_keras.quantizers": 2,
    "sbnn_keras.layers": 3,
    "sbnn_keras.regularizer": 4,
    "sbnn_keras.metrics": 5,
    "sbnn_keras.export": 6,
    "sbnn_keras.tuning": 6,
    "sbnn_keras.training": 6,  # steps around fit (BatchNorm recalibration): uses metrics
    "sbnn_keras": 7,  # the package itself: its __init__ re-exports the rooms
    "sbnn_keras._aliases": 7,  # old import paths (names only, imported on demand)
    "sbnn_zoo": 8,
    "sbnn_keras.cli": 9,  # the command line dispatches to every room and to the demo
}

#: third-party packages that the standalone runtime must not import at all
TRAINING_ONLY = ("tensorflow", "tf_keras", "keras", "larq", "larq_compute_engine", "keras_tuner")
#: ... except these lazy imports: the TFLite interpreter / schema inside tensorflow,
#: used only when the caller asks for runtime="tensorflow" (a training install), and
#: LCE's interpreter, which bench times in a child process when it is installed (its
#: row says "not installed" otherwise)
RUNTIME_LAZY_ALLOWED = {"tensorflow", "tensorflow.lite.python.schema_py_generated",
                        "larq_compute_engine.tflite.python.interpreter"}


def room(module: str) -> str | None:
    """The room a module belongs to: the longest prefix in RANKS."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return prefix
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import statement."""
    tree = ast.parse(source)
    top = {id(n) for n in tree.body}
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = ".".join(base[: len(base) - node.level + 1])
                target = f"{parent}.{node.module}" if node.module else parent
            else:
                target = node.module
            # `from package import submodule` depends on the submodule only (the
            # package's __init__ runs for any submodule import anyway)
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")]
            found += [(t, node.lineno, id(node) in top) for t in (subs or [target])]
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What is wrong with one module's imports (empty when it follows the rooms)."""
    own = room(module)
    bad = {}
    for target, line, at_top in imports(source, module, is_package):
        where = f"{module}:{line} imports {target}"
        if own == "sbnn_runtime":
            if target.split(".")[0] in ("sbnn_keras", "sbnn_zoo"):
                bad[line] = f"{where}: the runtime imports nothing of the library or the apps"
            if target.split(".")[0] in TRAINING_ONLY and (at_top or target not in RUNTIME_LAZY_ALLOWED):
                bad[line] = f"{where}: the runtime must not need TensorFlow/LCE/Keras"
            continue
        other = room(target)
        if other is None or other == own or target.split(".")[0] not in PACKAGES:
            continue
        if own == "sbnn_keras" and is_package:
            continue  # the package __init__ re-exports the rooms
        if RANKS[other] >= RANKS[own]:
            bad[line] = (f"{where}: room {own} (rank {RANKS[own]}) may not import room {other} "
                         f"(rank {RANKS[other]})")
    return list(bad.values())


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path), path


def test_every_module_has_a_room():
    homeless = [m for m, _ in _sources() if room(m) is None]
    assert not homeless, f"modules outside every room of RANKS / docs/architecture.md: {homeless}"


def test_imports_follow_the_rooms():
    bad = []
    for module, path in _sources():
        bad += violations(module, path.read_text(encoding="utf-8"), path.name == "__init__.py")
    assert not bad, "imports against the direction of the rooms:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("sbnn_keras.layers", "from sbnn_keras.metrics import report\n", "may not import room sbnn_keras.metrics"),
        ("sbnn_keras.math", "def f():\n    from sbnn_keras import quantizers\n", "may not import"),
        ("sbnn_keras.export.convert", "from sbnn_keras.tuning import pareto\n", "sbnn_keras.tuning"),
        ("sbnn_keras.regularizer", "from sbnn_zoo import zoo\n", "room sbnn_zoo"),
        ("sbnn_keras.metrics.report", "import sbnn_keras\n", "room sbnn_keras "),
        ("sbnn_runtime.interpreter", "from sbnn_keras import math\n", "imports nothing of the library"),
        ("sbnn_runtime.interpreter", "import tensorflow as tf\n", "must not need TensorFlow"),
        ("sbnn_runtime.tflite_model", "def f():\n    import larq_compute_engine\n", "must not need"),
        ("sbnn_runtime.sparse_format", "from . import interpreter\nimport numpy\n", None),
        ("sbnn_runtime.interpreter", "def f():\n    import tensorflow as tf\n", None),
        ("sbnn_keras.export.convert", "from sbnn_runtime.tflite_model import read_tflite\n", None),
        ("sbnn_zoo.demo", "from sbnn_keras.metrics.report import sparsity_report\n", None),
        ("sbnn_keras.cli", "def f():\n    from sbnn_zoo import demo\n", None),
    ],
)
def test_the_checker_sees_backward_imports(module, source, expected):
    found = violations(module, source)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_runtime_imports_without_tensorflow():
    """``import sbnn_runtime`` (and its readers) loads no training package."""
    code = (
        "import sys, sbnn_runtime, sbnn_runtime.tflite_model, sbnn_runtime.sparse_format\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING_ONLY!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"sbnn_runtime imported {out.stdout.strip()}"


# ---------------------------------------------------------------------------------------
# Unit sizes: no function over MAX_FUNCTION_LINES and no class over MAX_CLASS_LINES in
# the packages and the native library, unless the comment just above the unit says why
# ("Longer than N lines because ..."). A unit's length is its span (first line of the
# definition to its last) without its documentation: docstrings in Python, whole-line
# comments in C++; the rule is about code to hold in one's head, not about prose.

MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 250
REASON = re.compile(r"longer than \d+ lines because", re.IGNORECASE)
#: the native library (tests/ and fuzz/ are test scaffolding, not the library)
NATIVE_LIBRARY = ("tflite/abi", "tflite/core", "tflite/delegate", "tflite/format")
#: per-ISA kernel bodies (SIMD intrinsics for one instruction set) are outside the rule:
#: each is one strategy's inner loop, read against the portable implementation it
#: mirrors (BitplanePortable, the scalar kernels) and tested against the reference
#: kernels, and splitting it would only scatter the register plan over functions.
ISA_KERNEL = re.compile(r"_(neon|avx2|avx512\w*)\.(cc|h)$")
#: units over the limit whose reason is not (yet) in the code: (path, name) -> reason
ALLOWED_LONG: dict = {}


def _reason_above(lines: list[str], first: int, comment: str) -> bool:
    """Whether the comment block right above line ``first`` (1-based) states a reason."""
    block = []
    i = first - 2
    while i >= 0 and (lines[i].lstrip().startswith(comment) or lines[i].lstrip().startswith("@")):
        block.append(lines[i])
        i -= 1
    return bool(REASON.search(" ".join(line.strip().lstrip(comment) for line in reversed(block))))


def python_units(source: str):
    """(kind, name, first line, length) of every function and class of a module."""
    tree = ast.parse(source)
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            span = set(range(node.lineno, node.end_lineno + 1))
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            yield kind, node.name, first, len(span - docs)


def _blank_cxx(source: str) -> str:
    """C++ source with comments, string/char literals and preprocessor lines blanked
    (newlines kept), so that the braces left are the code's."""
    out, i, n = [], 0, len(source)
    line_start = True  # only spaces since the last newline
    while i < n:
        c = source[i]
        if source.startswith("//", i) or (c == "#" and line_start):
            k = i
            while True:  # to the end of the line; a preprocessor line may continue
                k = source.find("\n", k)
                k = n if k < 0 else k
                if c == "#" and k < n and source[k - 1] == "\\":
                    k += 1
                    continue
                break
        elif source.startswith("/*", i):
            k = source.find("*/", i + 2)
            k = n if k < 0 else k + 2
        elif c in "\"'" and not (c == "'" and source[i - 1:i].isalnum()):  # 1'000 is a number
            k = i + 1
            while k < n and source[k] != c:
                k += 2 if source[k] == "\\" else 1
            k += 1
        else:
            out.append(c)
            line_start = c == "\n" or (line_start and c in " \t")
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", source[i:k]))
        line_start = False
        i = k
    return "".join(out)


_CONTROL = re.compile(r"\b(if|for|while|switch|catch)\s*\(")
_SCOPE = re.compile(r"(\b(namespace|class|struct|union|enum)\b[^()]*|^extern\s.*)$", re.DOTALL)
_FUNCTION_HEAD = re.compile(r"([~\w:]+)\s*\((?:[^()]|\([^()]*\))*\)[\s\w:&*<>,\->]*$")


def cxx_units(source: str):
    """(kind, name, first line, length) of every function defined in a C++ file: a brace
    scan (a ``{`` after ``name(...)`` outside a function opens one; namespace, class
    and initializer braces do not), good enough for the project's code."""
    code = _blank_cxx(source)
    lines = source.splitlines()
    stack = []  # per open brace: None, or (name, first line) of a function
    last = 0  # just after the last ``;``, ``{`` or ``}``
    for i, c in enumerate(code):
        if c == "{":
            text = code[last:i]
            head = text.strip()
            match = None
            if not any(stack) and head and not _CONTROL.search(head) and "=" not in head.split("(")[0] \
                    and not _SCOPE.search(head):
                match = _FUNCTION_HEAD.search(head)
            first = code.count("\n", 0, last + len(text) - len(text.lstrip())) + 1
            stack.append((match.group(1), first) if match else None)
            last = i + 1
        elif c == "}":
            top = stack.pop() if stack else None
            if top:
                name, first = top
                end = code.count("\n", 0, i) + 1
                comments = sum(1 for line in lines[first - 1:end] if line.lstrip().startswith("//"))
                yield "function", name, first, end - first + 1 - comments
            last = i + 1
        elif c == ";":
            last = i + 1


def long_units() -> list[str]:
    """Every unit over its limit without a stated reason, as ``path:line kind name (N lines)``."""
    found = []
    files = [(path, "#", python_units) for _, path in _sources()]
    for folder in NATIVE_LIBRARY:
        files += [(path, "//", cxx_units) for path in sorted((ROOT / folder).rglob("*"))
                  if path.suffix in (".cc", ".h") and not ISA_KERNEL.search(path.name)]
    for path, comment, units in files:
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for kind, name, first, length in units(source):
            limit = MAX_CLASS_LINES if kind == "class" else MAX_FUNCTION_LINES
            allowed = (str(path.relative_to(ROOT)), name) in ALLOWED_LONG
            if length > limit and not allowed and not _reason_above(lines, first, comment):
                found.append(f"{path.relative_to(ROOT)}:{first} {kind} {name} ({length} lines)")
    return found


def test_units_are_short_or_say_why():
    """docs/architecture.md: a function over ~80 lines or a class over ~250 states why."""
    found = long_units()
    assert not found, (
        f"units over {MAX_FUNCTION_LINES} (function) / {MAX_CLASS_LINES} (class) lines without "
        "a comment above them saying 'Longer than N lines because ...':\n" + "\n".join(found))


CXX_SAMPLE = """\
namespace sbnn {
// a rule
struct S {
  int f(int a) const {
    if (a) { return 1; }
    return 0;
  }
};
static const int kTable[] = {1, 2, 3};
extern "C" {
bool g(const char* s /* { */) {
  const char* t = "}{";
  auto h = [](int x) { return x; };
  return s == t;
}
}
}  // namespace sbnn
"""


def test_the_size_checker_measures_units():
    assert list(cxx_units(CXX_SAMPLE)) == [("function", "f", 4, 4), ("function", "g", 11, 5)]
    source = 'class A:\n    """Doc\n    string."""\n\n    def f(self):\n        """One."""\n        return 1\n'
    assert list(python_units(source)) == [("class", "A", 1, 4), ("function", "f", 5, 2)]
    lines = ["x = 1", "# Longer than 80 lines because it is one table.", "@decorator", "def f():"]
    assert _reason_above(lines, 3, "#") and not _reason_above(lines[:1] + lines[2:], 2, "#")


# ---------------------------------------------------------------------------------------
# Repeated code: no block of DUPLICATE_LINES or more lines appears twice in the library
# (the packages and the native library, per-ISA kernel bodies excepted). Lines that are
# boilerplate by nature do not count: blank lines, lone brackets, comments, imports and
# includes, and argument lines (``name=value,``, ``name: type = default,``), so that
# wrappers may write out the signatures of the larq layers and KerasTuner tuners they
# wrap (positional order, defaults shown by help() and the API docs).

DUPLICATE_LINES = 6
_BOILERPLATE = re.compile(
    r"^([{}()\[\];,]*|\)\s*(->.*)?:|else:|\}\s*else\s*\{|return;|break;|continue|pass|#.*|//.*"
    r'|"""|import .*|from \S+ import .*|#include .*|\**\w+(: [^=]+)?( ?= ?.+)?,)$')


def repeated_blocks(files: dict) -> list[str]:
    """``path:line | path:line`` for every block of DUPLICATE_LINES non-boilerplate lines
    found in more than one place of ``files`` (path -> source)."""
    seen: dict = {}
    for path, source in files.items():
        lines = [(n, line.strip()) for n, line in enumerate(source.splitlines(), 1)]
        code = [(n, line) for n, line in lines if not _BOILERPLATE.match(line)]
        for k in range(len(code) - DUPLICATE_LINES + 1):
            window = "\n".join(line for _, line in code[k:k + DUPLICATE_LINES])
            seen.setdefault(window, []).append(f"{path}:{code[k][0]}")
    found = {}
    for places in seen.values():
        if len(places) > 1:
            key = tuple(sorted({p.rsplit(":", 1)[0] for p in places}))
            found.setdefault(key, " | ".join(places))
    return sorted(found.values())


def test_no_repeated_blocks_in_the_library():
    files = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for _, path in _sources()}
    for folder in NATIVE_LIBRARY:
        files.update({str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
                      for p in sorted((ROOT / folder).rglob("*"))
                      if p.suffix in (".cc", ".h") and not ISA_KERNEL.search(p.name)})
    found = repeated_blocks(files)
    assert not found, (f"blocks of {DUPLICATE_LINES}+ lines repeated (share them, or make "
                       "them boilerplate):\n" + "\n".join(found))


def test_the_repeat_checker_finds_a_copied_block():
    body = "".join(f"    total += step({i})\n" for i in range(DUPLICATE_LINES))
    files = {"a.py": f"def f():\n{body}", "b.py": f"x = 1\n\ndef g():\n{body}",
             "c.py": "def h(\n    a=1,\n    b=2,\n    c=3,\n    d=4,\n    e=5,\n    f=6,\n):\n"
                     "    return a\n",
             "d.py": "def k(\n    a=1,\n    b=2,\n    c=3,\n    d=4,\n    e=5,\n    f=6,\n):\n"
                     "    return b\n"}
    assert repeated_blocks(files) == ["a.py:2 | b.py:4"]
