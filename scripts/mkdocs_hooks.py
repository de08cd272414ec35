"""MkDocs hooks of the documentation site (mkdocs.yml: ``hooks:``).

Links to repository files. The pages in ``docs/`` link to source files with plain
relative paths (``[`bconv2d.h`](../tflite/core/bconv2d.h)``), so that they work when
the Markdown is read in a clone or on a Git web front end. MkDocs only serves what is
inside ``docs/``, so before a page is converted, every relative link whose target is
outside ``docs/`` (or is a directory) is rewritten:

- when ``extra.source_url`` is set in mkdocs.yml (e.g.
  ``https://github.com/OWNER/sbnn_keras/blob/main/``), into a link to
  ``source_url + <path from the repository root>``;
- otherwise into the repository path in code form: ``tflite/core/bconv2d.h``.

A link whose target does not exist, or lies outside the repository, is reported as a
warning, which fails ``mkdocs build --strict``. Links between pages and to files in
``docs/`` are left to MkDocs' own validation.

(The reStructuredText in docstrings is handled by scripts/griffe_rst.py.)

``iter_links`` is also used by tests/test_docs.py to check the links of README.md and
docs/*.md.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Iterator, NamedTuple
from urllib.parse import unquote

log = logging.getLogger("mkdocs.hooks.sbnn_docs")

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.DOTALL)
_LINK = re.compile(
    r"(?P<bang>!?)\[(?P<text>(?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]"
    r"\(\s*<?(?P<target>[^()\s<>]+)>?(?P<title>\s+\"[^\"]*\")?\s*\)"
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class Link(NamedTuple):
    start: int
    end: int
    image: bool
    text: str
    target: str  # as written, with any #fragment
    title: str


def _blank(line: str) -> str:
    return re.sub(r"[^\n]", " ", line)


def _mask(markdown: str) -> str:
    """Same length as ``markdown``, fenced code blocks and code spans blanked out."""
    out = []
    fence = None
    for line in markdown.splitlines(keepends=True):
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                out.append(_blank(line))
            else:
                out.append(line)
        else:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip()[len(m.group(1)):].strip():
                fence = None
            out.append(_blank(line))
    text = "".join(out)
    # code spans: keep the backticks' positions but blank their content, so link texts
    # like [`a.h`](../a.h) still match and [x](y) inside code does not
    return _CODE_SPAN.sub(lambda m: m.group(1) + "\x00" * len(m.group(2)) + m.group(1), text)


def iter_links(markdown: str) -> Iterator[Link]:
    """Inline links and images of a Markdown text, outside code."""
    masked = _mask(markdown)
    for m in _LINK.finditer(masked):
        yield Link(
            m.start(), m.end(), bool(m.group("bang")),
            markdown[m.start("text"):m.end("text")], m.group("target"), m.group("title") or "",
        )


def is_relative(target: str) -> bool:
    """A link to a path (not a URL, not a bare #fragment, not site-absolute)."""
    return not (_SCHEME.match(target) or target.startswith(("#", "/", "//")))


def split_target(target: str) -> tuple[str, str]:
    """``'a/b.h#L3'`` -> ``('a/b.h', '#L3')`` (query strings go with the fragment)."""
    cut = min((i for i in (target.find("#"), target.find("?")) if i >= 0), default=len(target))
    return unquote(target[:cut]), target[cut:]


# ---- hook state -------------------------------------------------------------------------
_state: dict = {}


def on_config(config):
    _state["repo_root"] = os.path.dirname(os.path.abspath(config.config_file_path))
    _state["docs_dir"] = os.path.abspath(config.docs_dir)
    source_url = (config.extra or {}).get("source_url") or ""
    if source_url and not source_url.endswith("/"):
        source_url += "/"
    _state["source_url"] = source_url
    return config


def _code_form(text: str, repo_path: str) -> str:
    inner = text.strip()
    if re.fullmatch(r"`[^`]+`", inner):
        shown = inner[1:-1].rstrip("/")
        if shown and (repo_path.rstrip("/") == shown or repo_path.rstrip("/").endswith("/" + shown)):
            return f"`{repo_path}`"
    return f"{text} (`{repo_path}`)"


def rewrite_source_links(markdown: str, page_path: str, docs_dir: str, repo_root: str,
                         source_url: str) -> str:
    """The rewriting described in the module docstring; ``page_path`` is relative to
    ``docs_dir``. Warnings go to the ``mkdocs`` logger (fatal with ``--strict``)."""
    page_dir = os.path.dirname(os.path.join(docs_dir, page_path))
    pieces, last = [], 0
    for link in iter_links(markdown):
        if not is_relative(link.target):
            continue
        path, fragment = split_target(link.target)
        if not path:
            continue
        full = os.path.normpath(os.path.join(page_dir, path))
        inside_docs = os.path.commonpath([full, docs_dir]) == docs_dir
        if inside_docs and os.path.isfile(full):
            continue  # a page or a file of the site: MkDocs validates it
        if os.path.commonpath([full, repo_root]) != repo_root:
            log.warning("%s: link '%s' points outside the repository", page_path, link.target)
            continue
        if not os.path.exists(full):
            log.warning("%s: link '%s' points to '%s', which does not exist", page_path,
                        link.target, os.path.relpath(full, repo_root))
            continue
        if link.image:
            log.warning("%s: image '%s' is outside docs/ and would not be served", page_path,
                        link.target)
            continue
        repo_path = os.path.relpath(full, repo_root).replace(os.sep, "/")
        if os.path.isdir(full):
            repo_path += "/"
        if source_url:
            new = f"[{link.text}]({source_url}{repo_path}{fragment}{link.title})"
        else:
            new = _code_form(link.text, repo_path)
        pieces.append(markdown[last:link.start])
        pieces.append(new)
        last = link.end
    pieces.append(markdown[last:])
    return "".join(pieces)


def on_page_markdown(markdown, page, config, files):
    return rewrite_source_links(markdown, page.file.src_path, _state["docs_dir"],
                                _state["repo_root"], _state["source_url"])
