"""The documentation: every page in the nav, every relative link resolves, and the
site builds with ``mkdocs build --strict`` (what ``make docs`` runs) with an API
reference rendered from the docstrings.

The site build needs the ``docs`` extra (part of ``test``), whose pinned releases need
Python >= 3.11; on older Pythons only that test is skipped.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
BUILD_TIMEOUT_S = 180

needs_docs_tools = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="the docs extra (mkdocs, mkdocstrings) is pinned to releases that need Python >= 3.11",
)


def _load_hooks():
    spec = importlib.util.spec_from_file_location("sbnn_mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


def _pages() -> list[str]:
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def _nav_entries() -> list[str]:
    """The .md files named in mkdocs.yml's nav, in order, repeats kept."""
    text = MKDOCS_YML.read_text(encoding="utf-8")
    m = re.search(r"^nav:\n((?:[ \t]+.*\n|\n)*)", text, re.M)
    assert m, "mkdocs.yml has no nav"
    return re.findall(r"(?::|-)\s+([\w./-]+\.md)\s*$", m.group(1), re.M)


# ---- nav ---------------------------------------------------------------------------------
def test_every_page_is_in_the_nav_once():
    nav = _nav_entries()
    pages = _pages()
    repeated = sorted({p for p in nav if nav.count(p) > 1})
    assert not repeated, f"pages listed more than once in mkdocs.yml's nav: {repeated}"
    missing = sorted(set(pages) - set(nav))
    assert not missing, f"docs pages not in mkdocs.yml's nav (add a line for each): {missing}"
    dangling = sorted(set(nav) - set(pages))
    assert not dangling, f"mkdocs.yml's nav names files that do not exist: {dangling}"


# ---- links -------------------------------------------------------------------------------
def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "examples" / "README.md", *(DOCS / p for p in _pages())]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(path):
    text = path.read_text(encoding="utf-8")
    broken = []
    for link in hooks.iter_links(text):
        if not hooks.is_relative(link.target):
            continue
        target, _ = hooks.split_target(link.target)
        if not target:
            continue
        resolved = (path.parent / target).resolve()
        line = text.count("\n", 0, link.start) + 1
        if not resolved.exists():
            broken.append(f"line {line}: {link.target}")
        elif ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"line {line}: {link.target} (outside the repository)")
    assert not broken, f"{path.relative_to(ROOT)}: broken relative links:\n" + "\n".join(broken)


def test_link_parser_skips_code():
    text = (
        "see [a](a.md) and `[b](b.md)`\n"
        "```\n[c](c.md)\n```\n"
        "[`d.h`](../src/d.h) ![img](i.png) [e](https://x.org/e) [f](#f)\n"
    )
    found = [(link.image, link.text, link.target) for link in hooks.iter_links(text)]
    assert found == [
        (False, "a", "a.md"),
        (False, "`d.h`", "../src/d.h"),
        (True, "img", "i.png"),
        (False, "e", "https://x.org/e"),
        (False, "f", "#f"),
    ]
    assert [hooks.is_relative(t) for *_, t in found] == [True, True, True, False, False]


def test_source_links_are_rewritten(tmp_path):
    (tmp_path / "docs" / "data").mkdir(parents=True)
    (tmp_path / "docs" / "data" / "x.json").write_text("{}")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "k.h").write_text("")
    md = (
        "[`k.h`](../src/k.h) [the kernel](../src/k.h#L3) [`data/`](data/) "
        "[json](data/x.json) [page](other.md)\n```\n[`k.h`](../src/k.h)\n```\n"
    )
    docs, root = str(tmp_path / "docs"), str(tmp_path)
    as_code = hooks.rewrite_source_links(md, "index.md", docs, root, "")
    assert as_code.splitlines()[0] == (
        "`src/k.h` the kernel (`src/k.h`) `docs/data/` [json](data/x.json) [page](other.md)"
    )
    assert as_code.splitlines()[2] == "[`k.h`](../src/k.h)"  # code blocks untouched
    linked = hooks.rewrite_source_links(md, "index.md", docs, root, "https://example.org/r/blob/main/")
    assert linked.splitlines()[0] == (
        "[`k.h`](https://example.org/r/blob/main/src/k.h) "
        "[the kernel](https://example.org/r/blob/main/src/k.h#L3) "
        "[`data/`](https://example.org/r/blob/main/docs/data/) [json](data/x.json) [page](other.md)"
    )


# ---- the site ----------------------------------------------------------------------------
def _mkdocs(config: Path, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )


def _public_api() -> dict[str, str]:
    """``name -> defining module`` for the names sbnn_keras/__init__.py exports (``_EXPORTS``)."""
    tree = ast.parse((ROOT / "sbnn_keras" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.AnnAssign, ast.Assign)):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(getattr(t, "id", None) == "_EXPORTS" for t in targets):
                return ast.literal_eval(node.value)
    raise AssertionError("sbnn_keras/__init__.py has no _EXPORTS table")


def _docstring_first_line(module: str, name: str) -> str:
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if getattr(node, "name", None) == name:
            return (ast.get_docstring(node) or "").strip().splitlines()[0]
    raise AssertionError(f"{name} not defined in {path}")


def _broken_hrefs(site: Path) -> list[str]:
    broken = []
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for ref in re.findall(r'(?:href|src)="([^"]*)"', html):
            parts = urlsplit(ref)
            if parts.scheme or parts.netloc or not parts.path or ref.startswith(("/", "#")):
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if parts.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {ref}")
    return broken


API_MODULES = [
    "sbnn_keras.quantizers", "sbnn_keras.layers", "sbnn_keras.regularizer",
    "sbnn_keras.metrics.stats", "sbnn_keras.metrics.report", "sbnn_keras.metrics.callbacks",
    "sbnn_keras.export.convert", "sbnn_runtime.interpreter", "sbnn_keras.tuning.tuner",
    "sbnn_keras.tuning.pareto", "sbnn_runtime.sparse_format", "sbnn_zoo.datasets", "sbnn_zoo.zoo",
    "sbnn_keras.cli",
]


@needs_docs_tools
def test_site_builds_strict_with_api_reference(tmp_path):
    site = tmp_path / "site"
    result = _mkdocs(MKDOCS_YML, site, ROOT)
    assert result.returncode == 0, (
        "mkdocs build --strict failed (run `make docs` to see it):\n" + result.stderr[-6000:]
    )
    for page in _pages():
        out = site / ("index.html" if page == "index.md" else page[: -len(".md")] + "/index.html")
        assert out.exists(), f"{page} was not rendered ({out.relative_to(site)})"

    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for module in API_MODULES:
        assert f'id="{module}"' in api, f"{module} missing from docs/api.md"
    for name, module in _public_api().items():
        assert f'id="{module}.{name}"' in api, f"sbnn_keras.{name} ({module}) missing from the API page"
    # real docstrings, with signatures
    for name in ("SparsityRegularizer", "convert", "sparsity_report", "Interpreter"):
        first = _docstring_first_line(_public_api()[name], name)
        assert first.split("(")[0][:40] in api, f"docstring of {name} not rendered: {first!r}"
    assert "convert_with_report</span><span class=\"p\">(</span>" in api or "convert_with_report(" in api
    assert "expected_connections" in api  # SparsityRegularizer's signature / arguments
    # reStructuredText leftovers (scripts/griffe_rst.py converts them)
    for raw in (":func:", ":class:", ":meth:", "::</p>", "<p>====", "<blockquote>"):
        assert raw not in api, f"raw reStructuredText {raw!r} on the API page"

    # source links became repository paths, and every relative href resolves
    assert "<code>tflite/core/bconv2d.h</code>" in (site / "kernels" / "index.html").read_text()
    broken = _broken_hrefs(site)
    assert not broken, "relative links that lead nowhere in the built site:\n" + "\n".join(broken[:30])


@needs_docs_tools
def test_a_broken_page_fails_the_build(tmp_path):
    """A missing link target is fatal with the project's configuration."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](../tflite/core/no_such_file.h) [page](other.md)\n")
    (docs / "other.md").write_text("# Other\n\n[a page that is not there](missing.md)\n")
    config = MKDOCS_YML.read_text(encoding="utf-8")
    config = re.sub(r"^docs_dir:.*$", f"docs_dir: {docs}", config, flags=re.M)
    config = re.sub(r"^hooks:\n(  - .*\n)+", f"hooks:\n  - {ROOT / 'scripts' / 'mkdocs_hooks.py'}\n",
                    config, flags=re.M)
    config = re.sub(r"^nav:\n(?:[ \t]+.*\n)+", "nav:\n  - index.md\n  - other.md\n", config, flags=re.M)
    config = re.sub(r"^plugins:\n(?:[ \t]+.*\n)+", "plugins:\n  - search\n", config, flags=re.M)
    (tmp_path / "mkdocs.yml").write_text(config)
    # the project root is the config's folder: ../tflite/... does not exist there
    result = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site", tmp_path)
    assert result.returncode != 0, result.stderr
    assert "no_such_file.h" in result.stderr and "missing.md" in result.stderr, result.stderr
