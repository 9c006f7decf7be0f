"""The docs' contents tables and links: every section listed, no stale anchor, every page indexed.

* Each page in :data:`CONTENTS_PAGES` has a ``## Contents`` table whose links name every ``## ``
  section after it, in the page's order: a section added without a row, a row left behind by
  a renamed or removed section, or two rows swapped fails here.
* Every link between the pages of ``docs/`` (``page.md``, ``page.md#anchor``, ``#anchor``)
  leads to a page that exists and to a heading (or an explicit ``id``) on it.
* ``docs/README.md`` links every page of ``docs/``.

Anchors are computed as GitHub computes them from a heading's text: lower case, inline code
and link markup removed, punctuation except ``-`` and ``_`` dropped, each space a hyphen, and
``-1``, ``-2`` ... appended to repeats.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent
CONTENTS_PAGES = ("mapping.md", "mapping_next.md", "acceptable_difference.md")
FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXPLICIT_ID = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (examples, shell sessions)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (without the leading ``#``s)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)       # [text](url) -> text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)                           # \w keeps letters, digits, _
    return text.replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str]]:
    """``(level, text)`` of each Markdown heading of a page, in order."""
    out = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            out.append((len(match.group(1)), match.group(2)))
    return out


def anchors(path: Path) -> list[str]:
    """Every anchor a link may name on the page: headings' slugs (repeats numbered) and explicit ids."""
    seen: dict[str, int] = {}
    out = []
    for _, text in headings(path):
        base = slug(text)
        count = seen.get(base, 0)
        out.append(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    out += EXPLICIT_ID.findall(path.read_text(encoding="utf-8"))
    return out


def contents_anchors(path: Path) -> list[str]:
    """The ``#anchor`` links of the page's ``## Contents`` table, in order."""
    lines = prose_lines(path.read_text(encoding="utf-8"))
    start = lines.index("## Contents")
    table = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table += [target[1:] for target in LINK.findall(line) if target.startswith("#")]
    return table


def sections_after_contents(path: Path) -> list[str]:
    """The anchors of the page's ``## `` sections after ``## Contents``."""
    texts = [text for level, text in headings(path) if level == 2]
    return [slug(text) for text in texts[texts.index("Contents") + 1:]]


def test_slug_matches_githubs_anchors():
    assert slug("3. Initialisers: `get_variable` and Glorot / Xavier with a seed") == \
        "3-initialisers-get_variable-and-glorot--xavier-with-a-seed"
    assert slug("18. `keras.Sequential` and `model.fit` vs `nn.Sequential` and a training loop") == \
        "18-kerassequential-and-modelfit-vs-nnsequential-and-a-training-loop"
    assert slug("TF32 on GPUs") == "tf32-on-gpus"


@pytest.mark.parametrize("page", CONTENTS_PAGES)
def test_contents_table_lists_every_section_in_order(page):
    path = DOCS / page
    listed, sections = contents_anchors(path), sections_after_contents(path)
    missing = [anchor for anchor in sections if anchor not in listed]
    stale = [anchor for anchor in listed if anchor not in sections]
    assert not missing, f"{page}: sections without a row in its contents table: {missing}"
    assert not stale, f"{page}: contents rows whose anchor names no section: {stale}"
    assert listed == sections, f"{page}: the contents table lists the sections in another order"


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


@pytest.mark.parametrize("path", doc_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_links_between_doc_pages_resolve(path):
    broken = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):                          # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if linked.suffix != ".md" or DOCS not in linked.parents:
                if file_part and not linked.exists():
                    broken.append(f"{target} (no such file)")
                continue
            if not linked.exists():
                broken.append(f"{target} (no such page)")
            elif anchor and anchor not in anchors(linked):
                broken.append(f"{target} (no such anchor on {linked.name})")
    assert not broken, f"{path.relative_to(DOCS)}: broken links: {broken}"


def test_docs_index_links_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = {target.partition("#")[0] for target in LINK.findall(index)}
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    missing = sorted(pages - linked)
    assert not missing, f"docs/README.md does not link: {missing}"
