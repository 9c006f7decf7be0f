"""Generate the side-by-side view of the TensorFlow original and the PyTorch port.

``python -m docs.tools.side_by_side`` (``make side-by-side``, ``make docs``) parses
``tf_original/{part1,model}.py`` and ``torch_port/{part1,model}.py`` with :mod:`ast`, pairs
each top-level function with its twin of the same name, keeping both files' order, and writes

* ``docs/side_by_side.md``: two columns per function (an HTML table holding fenced code
  blocks, which GitHub renders with highlighting);
* ``docs/side_by_side.html``: a standalone page where the twin functions are also aligned
  line by line (lines that do the same thing sit on the same row).

A function without a twin is shown against a note: the paragraph of the other module's
docstring that names it (``torch_port/model.py`` explains why ``create_placeholders`` has
none), or a plain "no twin" line. ``--check`` writes nothing and exits 1 if a committed page
differs from what the code generates now. The output depends only on the source files (no
dates, no absolute paths), so regenerating an unchanged tree changes nothing.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import html
import itertools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The pages, relative to the repository root.
MARKDOWN = Path("docs/side_by_side.md")
HTML = Path("docs/side_by_side.html")

# (section title, TensorFlow file, PyTorch file), relative to the repository root.
SECTIONS = (
    ("Part 1: exploring the library", "tf_original/part1.py", "torch_port/part1.py"),
    ("Part 2: the SIGNS network", "tf_original/model.py", "torch_port/model.py"),
)
SIDES = ("TensorFlow", "PyTorch")


@dataclass(frozen=True)
class Definition:
    """One top-level ``def`` or ``class``: its name, first line (decorators included) and source."""

    name: str
    path: str
    line: int
    source: str


@dataclass(frozen=True)
class Module:
    """A parsed source file: its docstring and its top-level definitions in file order."""

    path: str
    docstring: str
    definitions: tuple[Definition, ...]


@dataclass(frozen=True)
class Row:
    """One line of the view: a definition on either side, or on one side and a note on the other."""

    name: str
    left: Definition | None
    right: Definition | None
    note: str | None = None


@dataclass(frozen=True)
class Section:
    title: str
    left: Module
    right: Module
    rows: tuple[Row, ...]


def parse_module(path: str, root: Path = ROOT) -> Module:
    """Top-level functions and classes of ``root / path``, in file order, with their source."""
    text = (root / path).read_text(encoding="utf-8")
    tree = ast.parse(text, filename=path)
    lines = text.splitlines()
    definitions = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            source = "\n".join(lines[first - 1:node.end_lineno])
            definitions.append(Definition(node.name, path, first, source))
    return Module(path, ast.get_docstring(tree) or "", tuple(definitions))


def pair(left: Module, right: Module) -> tuple[Row, ...]:
    """Rows pairing definitions by name, in the order of both files.

    Walks both files at once: a twin pair is emitted when both files reach it; a definition
    without a twin is emitted where it stands in its own file (the left file's first). If the
    twins stand in crossed orders, the left file's order wins for that pair.
    """
    left_names = [d.name for d in left.definitions]
    right_names = [d.name for d in right.definitions]
    right_by_name = {d.name: d for d in right.definitions}
    left_by_name = {d.name: d for d in left.definitions}
    twins = set(left_names) & set(right_names)
    rows: list[Row] = []
    done: set[str] = set()
    i = j = 0
    while i < len(left_names) or j < len(right_names):
        while j < len(right_names) and right_names[j] in done:
            j += 1
        if i < len(left_names):
            name = left_names[i]
            if name not in twins:
                rows.append(Row(name, left_by_name[name], None, _note(name, right)))
                i += 1
                continue
            if j < len(right_names) and right_names[j] not in twins:
                other = right_names[j]
                rows.append(Row(other, None, right_by_name[other], _note(other, left)))
                j += 1
                continue
            rows.append(Row(name, left_by_name[name], right_by_name[name]))
            done.add(name)
            i += 1
        elif j < len(right_names):
            name = right_names[j]
            rows.append(Row(name, None, right_by_name[name], _note(name, left)))
            j += 1
    return tuple(rows)


def _note(name: str, other: Module) -> str:
    """Why ``other`` has no ``name``: the paragraph of its docstring naming it, else a plain line."""
    for paragraph in re.split(r"\n\s*\n", other.docstring):
        if re.search(rf"\b{re.escape(name)}\b", paragraph):
            return " ".join(paragraph.split())
    return f"No twin in `{other.path}`."


def build(root: Path = ROOT) -> tuple[Section, ...]:
    """Parse every file pair of :data:`SECTIONS` and pair their definitions."""
    sections = []
    for title, left_path, right_path in SECTIONS:
        left, right = parse_module(left_path, root), parse_module(right_path, root)
        sections.append(Section(title, left, right, pair(left, right)))
    return tuple(sections)


# ---------------------------------------------------------------------------- markdown

def _anchor(section_index: int, name: str) -> str:
    return f"s{section_index + 1}-{name.strip('_').replace('_', '-') or 'def'}"


def _location(definition: Definition) -> str:
    """``path:line`` as a link relative to ``docs/``."""
    return f'<a href="../{definition.path}#L{definition.line}">{definition.path}:{definition.line}</a>'


def _fenced(source: str, language: str = "python") -> str:
    fence = "```"
    while fence in source:
        fence += "`"
    return f"{fence}{language}\n{source}\n{fence}"


def _markdown_cell(definition: Definition | None, note: str | None) -> str:
    if definition is None:
        return f"\n*No twin.* {html.escape(note or '')}\n"
    return f"\n{_fenced(definition.source)}\n"


def render_markdown(sections: tuple[Section, ...]) -> str:
    out = [
        "# Side by side: the TensorFlow original and the PyTorch port",
        "",
        "<!-- Generated by `python -m docs.tools.side_by_side` (`make side-by-side`) from the code."
        " Do not edit: change the code and regenerate. tests/test_docs_side_by_side.py fails"
        " when this page is out of date. -->",
        "",
        "Each top-level function of the TensorFlow original stands beside its PyTorch twin of the",
        "same name, in the order of both files; a function without a twin stands beside the",
        "reason. The port keeps the original's names, arguments, order and `(features, examples)`",
        "layout, so the two columns read line by line. What each translated call does is in the",
        "[mapping guide](mapping.md); where the numbers still differ, in [pitfalls](pitfalls.md).",
        "[side_by_side.html](side_by_side.html) shows the same pairs aligned line by line.",
        "",
        "Generated from:",
        "",
    ]
    out += [f"- [`{path}`](../{path})" for _, left, right in SECTIONS for path in (left, right)]
    out += ["", "Contents:", ""]
    for index, section in enumerate(sections):
        out += [f"- [{section.title}](#{_anchor(index, 'section')})"]
        for row in section.rows:
            out += [f"  - [`{row.name}`](#{_anchor(index, row.name)})"
                    + ("" if row.left and row.right else
                       " (TensorFlow only)" if row.left else " (PyTorch only)")]
    out.append("")
    for index, section in enumerate(sections):
        out += [
            f'<a id="{_anchor(index, "section")}"></a>',
            "",
            f"## {section.title} — `{section.left.path}` and `{section.right.path}`",
            "",
            "<table>",
            f"<tr><th>{SIDES[0]}: <code>{section.left.path}</code></th>"
            f"<th>{SIDES[1]}: <code>{section.right.path}</code></th></tr>",
            "<tr><td>",
            "",
            _quote(section.left.docstring),
            "",
            "</td><td>",
            "",
            _quote(section.right.docstring),
            "",
            "</td></tr>",
            "</table>",
            "",
        ]
        for row in section.rows:
            suffix = "" if row.left and row.right else " (TensorFlow only)" if row.left else " (PyTorch only)"
            out += [
                f'<a id="{_anchor(index, row.name)}"></a>',
                "",
                f"### `{row.name}`{suffix}",
                "",
                "<table>",
                "<tr>"
                + "".join(f"<th>{side}: {_location(d)}</th>" if d else f"<th>{side}: —</th>"
                          for side, d in zip(SIDES, (row.left, row.right)))
                + "</tr>",
                "<tr><td>",
                _markdown_cell(row.left, row.note),
                "</td><td>",
                _markdown_cell(row.right, row.note),
                "</td></tr>",
                "</table>",
                "",
            ]
    return "\n".join(out).rstrip("\n") + "\n"


def _quote(docstring: str) -> str:
    """A module docstring as a plain-text block (as markdown, its RST markup would be mangled)."""
    if not docstring:
        return "*(no module docstring)*"
    return _fenced(docstring, "text")


# -------------------------------------------------------------------------------- html

_PREFIX = re.compile(r"\b(?:tf1|tf\.compat\.v1|tf\.nn|tf\.math|tf|torch\.nn\.functional|torch|F|np)\.")


def _key(line: str) -> str:
    """What a line does, for alignment: framework prefixes, trailing comments and spacing removed.

    A line that is only a comment keeps its text, so it never matches a blank line.
    """
    code = line.split("#", 1)[0]
    if not code.strip():
        return " ".join(line.split())
    return " ".join(_PREFIX.sub("", code).split())


def align(left: list[str], right: list[str]) -> list[tuple[str | None, str | None, str]]:
    """Pair the lines of two twin functions: ``(left line, right line, kind)``.

    ``kind`` is ``"same"`` (equal once framework prefixes and comments are ignored),
    ``"changed"`` (different lines facing each other) or ``"one-sided"``.
    """
    matcher = difflib.SequenceMatcher(None, [_key(x) for x in left], [_key(x) for x in right],
                                      autojunk=False)
    rows: list[tuple[str | None, str | None, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [(a, b, "same") for a, b in zip(left[i1:i2], right[j1:j2])]
            continue
        for a, b in itertools.zip_longest(left[i1:i2], right[j1:j2]):
            rows.append((a, b, "changed" if a is not None and b is not None else "one-sided"))
    return rows


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table.pair { border-collapse: collapse; width: 100%; table-layout: fixed; margin-bottom: 2em; }
table.pair th { text-align: left; background: #eef; padding: 4px 6px; font-weight: normal; }
table.pair td { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap;
                vertical-align: top; padding: 0 6px; border-left: 1px solid #ddd; }
tr.changed td { background: #fff8dc; }
td.gap { background: #f2f2f2; }
td.note { font-family: system-ui, sans-serif; font-size: 13px; white-space: normal; background: #f7f7f7; }
"""


def _html_pair(row: Row) -> list[str]:
    head = "".join(f'<th>{side}: <a href="../{d.path}#L{d.line}">{d.path}:{d.line}</a></th>' if d
                   else f"<th>{side}: no twin</th>" for side, d in zip(SIDES, (row.left, row.right)))
    out = ['<table class="pair">', f"<tr>{head}</tr>"]
    if row.left is None or row.right is None:
        present = row.left or row.right
        code = html.escape(present.source)
        note = f'<td class="note">{html.escape(row.note or "")}</td>'
        cells = (f"<td>{code}</td>", note) if row.left else (note, f"<td>{code}</td>")
        out.append(f"<tr>{cells[0]}{cells[1]}</tr>")
    else:
        for a, b, kind in align(row.left.source.splitlines(), row.right.source.splitlines()):
            cells = "".join(f"<td>{html.escape(x)}</td>" if x is not None else '<td class="gap"></td>'
                            for x in (a, b))
            out.append(f'<tr class="{kind}">{cells}</tr>')
    out.append("</table>")
    return out


def render_html(sections: tuple[Section, ...]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Side by side: the TensorFlow original and the PyTorch port</title>",
        f"<style>{_CSS}</style></head><body>",
        "<!-- Generated by `python -m docs.tools.side_by_side`; do not edit. -->",
        "<h1>Side by side: the TensorFlow original and the PyTorch port</h1>",
        "<p>Twin functions matched by name in the order of both files, aligned line by line: "
        "lines that do the same thing (ignoring the <code>tf.</code>/<code>torch.</code> prefixes "
        "and comments) share a row; shaded rows differ; grey cells are gaps. "
        'The same pairs unaligned, with links: <a href="side_by_side.md">side_by_side.md</a>.</p>',
    ]
    for section in sections:
        out.append(f"<h2>{html.escape(section.title)} — <code>{section.left.path}</code> and "
                   f"<code>{section.right.path}</code></h2>")
        for row in section.rows:
            out.append(f'<h3 id="{html.escape(section.left.path)}-{row.name}"><code>{row.name}</code></h3>')
            out += _html_pair(row)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------- CLI

def generate(root: Path = ROOT) -> dict[Path, str]:
    """The pages, keyed by where they are written (relative to ``root``)."""
    sections = build(root)
    return {MARKDOWN: render_markdown(sections), HTML: render_html(sections)}


def stale_pages(root: Path = ROOT) -> list[Path]:
    """The pages under ``root`` that are missing or differ from a fresh generation."""
    return [path for path, text in generate(root).items()
            if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text]


def main(argv=None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.tools.side_by_side", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed page is out of date with the code")
    args = parser.parse_args(argv)
    stale = stale_pages(root)
    if args.check:
        for path in stale:
            print(f"{path} is out of date with the code; run `make side-by-side`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generate(root).items():
        if path in stale:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text, encoding="utf-8")
        print(f"{'wrote' if path in stale else 'unchanged'} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
