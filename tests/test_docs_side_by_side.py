"""The generated side-by-side page (docs/side_by_side.md, .html) cannot drift from the code.

* The committed pages equal a fresh generation (else: run ``make side-by-side``).
* Every top-level function of both ``model.py`` and ``part1.py`` files appears, with its file
  and line, in file order; found here with :mod:`ast` independently of the generator.
* ``create_placeholders`` stands beside the reason the port gives in its module docstring.
* ``--check`` fails on a stale page, and regenerating picks up a changed function.
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from pathlib import Path

import pytest
from signs_testing import REPO_ROOT

# docs/ is not an installed package: its tools run from the repository root
# (`python -m docs.tools.side_by_side`), so the root must be importable here too.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from docs.tools import side_by_side  # noqa: E402

FILES = ("tf_original/part1.py", "torch_port/part1.py", "tf_original/model.py", "torch_port/model.py")
PAGE = REPO_ROOT / "docs" / "side_by_side.md"


def top_level_functions(path: str) -> list[tuple[str, int]]:
    """``(name, line of def)`` of each top-level function in ``path``, in file order."""
    tree = ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))
    return [(node.name, node.lineno) for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_committed_pages_are_up_to_date():
    fresh = side_by_side.generate(REPO_ROOT)
    for relative, text in fresh.items():
        committed = REPO_ROOT / relative
        assert committed.is_file(), f"{relative} is missing; run `make side-by-side`"
        assert committed.read_text(encoding="utf-8") == text, (
            f"{relative} is out of date with the code; run `make side-by-side`")
    assert side_by_side.main(["--check"]) == 0


@pytest.mark.parametrize("path", FILES)
def test_every_function_appears_in_file_order(path):
    page = PAGE.read_text(encoding="utf-8")
    functions = top_level_functions(path)
    assert functions, f"{path} has no top-level functions?"
    # Each function's header cell links to its file and line: ``path:line``.
    shown = [int(line) for line in re.findall(rf">{re.escape(path)}:(\d+)<", page)]
    assert shown == [line for _, line in functions], (
        f"{path}: functions shown at lines {shown}, defined at {[line for _, line in functions]}")
    # And the heading above each one names it.
    positions = []
    for name, line in functions:
        match = re.search(rf"### `{re.escape(name)}`.*\n(?:.*\n){{0,4}}.*>{re.escape(path)}:{line}<", page)
        assert match, f"{path}: no section for {name} (line {line})"
        positions.append(match.start())
    assert positions == sorted(positions)


def test_twins_share_a_row_and_order_of_both_files():
    """Functions of the same name sit in the same table row, TF on the left."""
    page = PAGE.read_text(encoding="utf-8")
    for left, right in ((FILES[0], FILES[1]), (FILES[2], FILES[3])):
        left_names = dict(top_level_functions(left))
        right_names = dict(top_level_functions(right))
        for name in left_names.keys() & right_names.keys():
            header = (rf">{re.escape(left)}:{left_names[name]}</a></th>"
                      rf"<th>PyTorch: <a [^>]*>{re.escape(right)}:{right_names[name]}<")
            assert re.search(header, page), f"{name}: the twins are not in one row"


def test_create_placeholders_faces_the_ports_reason():
    docstring = ast.get_docstring(ast.parse((REPO_ROOT / "torch_port/model.py").read_text(encoding="utf-8")))
    reason = next(p for p in re.split(r"\n\s*\n", docstring) if "create_placeholders" in p)
    page = PAGE.read_text(encoding="utf-8")
    section = page[page.index("### `create_placeholders`"):]
    section = section[:section.index("</table>")]
    assert "PyTorch: —" in section
    assert " ".join(reason.split()) in section


def test_check_fails_on_stale_page_and_regeneration_follows_the_code(tmp_path, capsys):
    for relative in FILES + (str(side_by_side.MARKDOWN), str(side_by_side.HTML)):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / relative, tmp_path / relative)
    assert side_by_side.main(["--check"], root=tmp_path) == 0

    model = tmp_path / "torch_port" / "model.py"
    model.write_text(model.read_text(encoding="utf-8") + "\n\ndef brand_new_helper(x):\n    return x\n",
                     encoding="utf-8")
    assert side_by_side.main(["--check"], root=tmp_path) == 1
    assert "out of date" in capsys.readouterr().err

    assert side_by_side.main([], root=tmp_path) == 0
    assert side_by_side.main(["--check"], root=tmp_path) == 0
    page = (tmp_path / side_by_side.MARKDOWN).read_text(encoding="utf-8")
    assert "### `brand_new_helper` (PyTorch only)" in page
    assert "def brand_new_helper(x):" in (tmp_path / side_by_side.HTML).read_text(encoding="utf-8")


def _module(path: str, names: list[str], docstring: str = "") -> side_by_side.Module:
    definitions = tuple(side_by_side.Definition(name, path, k + 1, f"def {name}(): pass")
                        for k, name in enumerate(names))
    return side_by_side.Module(path, docstring, definitions)


def test_pairing_keeps_both_orders_and_shows_each_function_once():
    left = _module("a.py", ["only_left", "one", "two", "three", "left_tail"])
    right = _module("b.py", ["one", "only_right", "two", "three"], "``left_tail`` is not needed here.")
    rows = side_by_side.pair(left, right)
    assert [(r.left and r.left.name, r.right and r.right.name) for r in rows] == [
        ("only_left", None), ("one", "one"), (None, "only_right"), ("two", "two"),
        ("three", "three"), ("left_tail", None)]
    assert rows[0].note == "No twin in `b.py`."
    assert rows[-1].note == "``left_tail`` is not needed here."


def test_pairing_with_crossed_twins_keeps_the_left_order():
    rows = side_by_side.pair(_module("a.py", ["x", "y"]), _module("b.py", ["y", "x"]))
    assert [(r.left.name, r.right.name) for r in rows] == [("x", "x"), ("y", "y")]


def test_alignment_puts_equivalent_lines_side_by_side():
    left = ["def f(X, W):", "    Z = tf.matmul(W, X)", "    tf1.set_random_seed(1)", "    return Z"]
    right = ["def f(X, W):", "    Z = torch.matmul(W, X)  # (out, m)", "    return Z"]
    rows = side_by_side.align(left, right)
    assert rows == [(left[0], right[0], "same"), (left[1], right[1], "same"),
                    (left[2], None, "one-sided"), (left[3], right[2], "same")]


def test_alignment_never_matches_a_comment_with_a_blank_line():
    rows = side_by_side.align(["    # the notebook's comment", "    x = 1"], ["", "    x = 1"])
    assert ("    # the notebook's comment", "", "same") not in rows
    assert rows[-1] == ("    x = 1", "    x = 1", "same")


def test_generated_page_is_independent_of_where_the_repository_lives(tmp_path):
    for relative in FILES:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / relative, tmp_path / relative)
    assert side_by_side.generate(tmp_path) == side_by_side.generate(REPO_ROOT)
    assert str(Path(REPO_ROOT)) not in side_by_side.generate(REPO_ROOT)[side_by_side.MARKDOWN]
