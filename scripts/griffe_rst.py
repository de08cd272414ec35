"""Griffe extension for the API pages (mkdocs.yml: mkdocstrings ``extensions:``).

The docstrings of ``sbnn_keras`` are Google style with some reStructuredText that reads
well in ``help()`` but not as Markdown. Before mkdocstrings renders a docstring, this
rewrites, outside fenced code:

- ``text::`` followed by an indented literal block -> ``text:`` and a fenced code
  block (a bare ``::`` line is dropped);
- doctest lines (``>>>``, ``...`` and the output up to a blank line) -> a fenced
  ``pycon`` block;
- simple tables (``===== =====`` rulers) -> a Markdown table when the table has a
  header row, a bullet list (``- first cell: rest``) when it has two columns and no
  header;
- Sphinx roles (``:func:`a.b```, ``:class:`~a.b.C```) -> code spans (``~`` keeps the
  last name, as Sphinx shows it).

The source files are not changed. ``convert_docstring`` is the whole transformation.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const|ref):`([^`]+)`")
_RULER = re.compile(r"^( *)=+(?: +=+)+ *$")
_FENCE = re.compile(r"^ *(`{3,}|~{3,})")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _role(m: re.Match) -> str:
    text = m.group(1)
    if "<" in text and text.endswith(">"):  # :func:`title <target>`
        text = text[: text.index("<")].strip()
    elif text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"`{text}`"


def _columns(ruler: str) -> list[int]:
    return [m.start() for m in re.finditer(r"=+", ruler)]


def _cells(line: str, starts: list[int]) -> list[str]:
    """Split a table row at the column starts; a cell that overflows its column (text
    runs past the boundary without a space) keeps its whole word."""
    cells, pos = [], starts[0]
    for k, start in enumerate(starts):
        if k + 1 < len(starts):
            end = max(starts[k + 1], pos)
            while end < len(line) and end > 0 and line[end - 1] != " " and line[end] != " ":
                end += 1
        else:
            end = len(line)
        cells.append(line[pos:end].strip())
        pos = end
    return cells


def _table(lines: list[str], i: int) -> tuple[list[str], int] | None:
    """Parse a simple table starting at ruler line ``i``: (Markdown lines, next index)."""
    ruler = lines[i]
    base = _indent(ruler)
    starts = _columns(ruler)
    rows: list[list[str]] = []
    header: list[str] | None = None
    j = i + 1
    while j < len(lines):
        line = lines[j]
        if _RULER.match(line) and _columns(line) == starts:
            after = j + 1
            end_of_table = after >= len(lines) or not lines[after].strip() or _indent(lines[after]) < base
            if not end_of_table and header is None and len(rows) == 1:
                header = rows.pop()  # the ruler under a header row
                j += 1
                continue
            break
        if not line.strip():
            return None  # blank lines inside simple tables: leave the text alone
        line = line.ljust(starts[-1] + 1)
        cells = _cells(line, starts)
        if not cells[0] and rows:  # continuation line
            rows[-1] = [(a + " " + b).strip() for a, b in zip(rows[-1], cells)]
        else:
            rows.append(cells)
        j += 1
    else:
        return None  # no closing ruler
    pad = " " * base
    out: list[str] = []
    if header is None and len(starts) == 2:
        out += [f"{pad}- {a}: {b}" if b else f"{pad}- {a}" for a, b in rows]
    else:
        head = header or [""] * len(starts)
        out.append(pad + "| " + " | ".join(head) + " |")
        out.append(pad + "|" + "---|" * len(starts))
        out += [pad + "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return out, j + 1


def convert_docstring(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    fence = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            out.append(line)
            i += 1
            continue
        if m:
            fence = m.group(1)
            out.append(line)
            i += 1
            continue
        stripped = line.strip()
        # simple table
        if _RULER.match(line):
            parsed = _table(lines, i)
            if parsed is not None:
                if out and out[-1].strip():
                    out.append("")
                out += parsed[0]
                if parsed[1] < len(lines) and lines[parsed[1]].strip():
                    out.append("")
                i = parsed[1]
                continue
        # doctest block
        if stripped.startswith(">>>"):
            pad = " " * _indent(line)
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(pad):] if lines[i].startswith(pad) else lines[i].strip())
                i += 1
            if out and out[-1].strip() and not out[-1].rstrip().endswith(":"):
                out.append("")
            out += [pad + "```pycon", *(pad + b for b in block), pad + "```"]
            continue
        # literal block after "::"
        if stripped.endswith("::") and i + 1 < len(lines):
            k = i + 1
            while k < len(lines) and not lines[k].strip():
                k += 1
            if k < len(lines) and _indent(lines[k]) > _indent(line):
                base = _indent(line)
                body_indent = _indent(lines[k])
                end = k
                while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) >= body_indent):
                    end += 1
                while end > k and not lines[end - 1].strip():
                    end -= 1
                pad = " " * base
                if stripped != "::":
                    out.append(line.rstrip()[:-1])  # "Example::" -> "Example:"
                out.append("")
                out.append(pad + "```")
                out += [pad + ln[body_indent:] if ln.strip() else "" for ln in lines[k:end]]
                out.append(pad + "```")
                i = end
                continue
        out.append(_ROLE.sub(_role, line))
        i += 1
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    """Rewrite the reStructuredText bits of every docstring (see the module docstring)."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None and obj.docstring.value:
            obj.docstring.value = convert_docstring(obj.docstring.value)
