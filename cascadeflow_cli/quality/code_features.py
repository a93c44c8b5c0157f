"""The code family of the draft features (see :mod:`.features`): Python blocks that
do not parse (``ast.parse`` only: model code is never run), unbalanced fences, a function
that returns nothing, the function name a test in the query expects, a call of a function
the code never defines or imports. Standard library only.
"""

from __future__ import annotations

import ast
import builtins
import math
import re

__all__ = ["code_features"]

_FENCE_LINE_RE = re.compile(r"^[ \t]*(?:```|~~~)[ \t]*([\w+#-]*)", re.MULTILINE)
_DEF_RE = re.compile(r"^[ \t]*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
_TEST_CALL_RE = re.compile(r"\bassert\s+(?:not\s+)?\(?\s*(?:set\(|math\.isclose\()?\s*([A-Za-z_]\w*)\s*\(")
_IDENT_SPLIT_RE = re.compile(r"[a-z]+|[A-Z][a-z]*|\d+")
_QUERY_WORD_RE = re.compile(r"[a-z]+")

def _code_blocks(text: str) -> tuple[list[str], bool]:
    """Fenced blocks tagged python (or untagged), and whether a fence is left open."""
    blocks: list[str] = []
    lines = text.split("\n")
    current: list[str] | None = None
    lang = ""
    for line in lines:
        m = _FENCE_LINE_RE.match(line)
        if m:
            if current is None:
                current, lang = [], m.group(1).lower()
            else:
                if lang in ("", "python", "py", "python3"):
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks, current is not None


_BUILTINS = frozenset(dir(builtins))


def _calls_undefined(trees: list[ast.Module]) -> bool:
    """Whether the code calls a plain name that nothing in any of its blocks binds (def,
    class, assignment, argument, import, loop or ``with`` target ...) and no builtin is:
    run, it raises NameError (MBPP dev: 5 of 213 drafts, all wrong, e.g. a helper the
    answer uses but never writes). A star import could bind anything: then no verdict."""
    bound: set[str] = set(_BUILTINS)
    called: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called.add(node.func.id)
            elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        return False
                    bound.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
            elif isinstance(node, ast.Global | ast.Nonlocal):
                bound.update(node.names)
            elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
                bound.add(node.name)
    return bool(called - bound)


def code_features(query: str, text: str, out: dict[str, float]) -> None:
    blocks, unbalanced = _code_blocks(text)
    out["code_unbalanced_fence"] = 1.0 if unbalanced else 0.0
    defined = _DEF_RE.findall(text)
    if not blocks and not defined:
        out["code_no_block"] = 1.0 if _DEF_RE.search(query) or "function" in query.lower() else 0.0
        return
    out["code_blocks"] = float(len(blocks))
    fails = 0
    lines = 0
    trees: list[ast.Module] = []
    for block in blocks:
        lines += sum(1 for ln in block.split("\n") if ln.strip() and not ln.lstrip().startswith("#"))
        try:
            trees.append(ast.parse(block))  # parsed only, never run
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            fails += 1
    out["code_parse_fail"] = fails / len(blocks) if blocks else 0.0
    out["code_calls_undefined"] = 1.0 if trees and _calls_undefined(trees) else 0.0
    out["code_lines"] = math.log1p(lines)
    code = "\n".join(blocks) if blocks else text
    if defined:
        out["code_no_return"] = 0.0 if re.search(r"^\s+(?:return|yield)\b", code, re.MULTILINE) else 1.0
        out["code_prints_only"] = 1.0 if out["code_no_return"] and "print(" in code else 0.0
    expected = _TEST_CALL_RE.findall(query)
    if expected:
        out["code_test_name_missing"] = 0.0 if expected[0] in defined else 1.0
    if defined:
        query_words = set(_QUERY_WORD_RE.findall(query.lower()))
        parts = [p.lower() for p in _IDENT_SPLIT_RE.findall(defined[0])]
        out["code_name_query_overlap"] = sum(p in query_words for p in parts) / len(parts) if parts else 0.0
