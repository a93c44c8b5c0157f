"""docs/errors.md lists every error a user can meet, with its exit code: every subclass of
CascadeError anywhere in the package, and every exception main() turns into a line. A
class added without its row fails here (that is the point: it catches it at merge)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import cascadeflow_cli
from cascadeflow_cli.errors import CascadeError

PACKAGE = Path(cascadeflow_cli.__file__).parent
DOC = PACKAGE.parent / "docs" / "errors.md"


def _class_tree() -> dict[str, str]:
    """Every class deriving (by name, through the package) from CascadeError -> its module."""
    classes: dict[str, tuple[list[str], str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                classes[node.name] = (bases, module)
    tree = {"CascadeError": "cascadeflow_cli.errors"}
    grew = True
    while grew:
        grew = False
        for name, (bases, module) in classes.items():
            if name not in tree and any(b in tree for b in bases):
                tree[name] = module
                grew = True
    return tree


def _documented() -> dict[str, str]:
    """Table rows of the doc: first cell's first `Name` -> the exit cell."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and (match := re.match(r"`(\w+)`", cells[0])):
            rows[match.group(1)] = cells[1]
    return rows


def test_every_error_class_is_documented_with_its_exit_code() -> None:
    documented = _documented()
    tree = _class_tree()
    assert len(tree) >= 15  # the scan found the tree (a broken scan must not pass vacuously)
    missing = sorted(set(tree) - set(documented))
    assert not missing, f"add these to docs/errors.md: {missing}"
    for name, module in tree.items():
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, CascadeError)
        assert documented[name] == str(cls.exit_code), (name, documented[name], cls.exit_code)


def test_every_failure_main_renders_is_documented() -> None:
    tree = ast.parse((PACKAGE / "cli" / "app.py").read_text(encoding="utf-8"))
    main = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "main")
    caught = set()
    for node in ast.walk(main):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            # a call (``except damage_errors()``) names driver errors, not our classes
            caught |= {t.attr if isinstance(t, ast.Attribute) else t.id  # type: ignore[union-attr]
                       for t in types if not isinstance(t, ast.Call)}
    assert {"CascadeError", "KeyboardInterrupt", "Exception"} <= caught
    missing = sorted(caught - set(_documented()))
    assert not missing, f"main() renders these; add them to docs/errors.md: {missing}"


def test_every_exit_code_in_the_doc_is_explained() -> None:
    text = DOC.read_text(encoding="utf-8")
    codes = {int(c) for c in re.findall(r"^\| (\d+) \|", text, flags=re.M)}
    used = {int(v) for v in _documented().values() if v.isdigit()}
    assert used <= codes and {0, 1, 2, 3, 130} <= codes
