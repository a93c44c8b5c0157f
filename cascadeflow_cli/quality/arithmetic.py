"""Arithmetic an answer states and gets wrong: "15 + 25 = 30", "$36 × 2 = $62",
"<<3*60=170>>". A fluent answer with a wrong sum is the one failure form-based checks
cannot see, and a cheap model makes it often on word problems.

Only plain arithmetic is checked: numbers joined by + - * / (× ÷ · and "x" between
numbers count as * and /) and parentheses, then "=" and a number -- not the start of a
longer right-hand side ("= 22 + 48 = 70" is checked at its last step). An expression
that runs into a variable ("2x + 3 = 11"), a power, a percentage on the left or a unit
mid-way is left alone, as are "≈" and "==". The stated result may be rounded to the
decimals it shows, or be within 3% (inputs are often rounded too); a percentage may be
meant either way ("10/40 = 25%", "0.2 * 40 = 8%"). Evaluation walks a whitelisted syntax
tree: no ``eval``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\d+(?:\.\d+)?|==|!=|<=|>=|[-+*/()=%]|[A-Za-z_]+|\S")
_ARITH = frozenset("+-*/()")
_TIMES = re.compile(r"(?<=\d)[ \t]?[xX×·][ \t]?(?=\d)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_BEFORE_OK = re.compile(r"(?:^|[\s(:;,<\[{\"'=]|\b[A-Za-z]+\s)$")  # what may stand just before
RELATIVE = 0.03  # a stated result within 3% is taken as rounded, not wrong
MAX_TEXT = 20_000  # characters looked at: an answer's arithmetic is in its first pages


@dataclass(frozen=True)
class WrongSum:
    """A stated calculation that does not hold: ``text`` as written, ``correct`` its value."""

    text: str
    correct: float


def wrong_arithmetic(text: str) -> list[WrongSum]:
    """Every stated calculation in ``text`` whose result is wrong (see the module
    docstring). One pass over the text's tokens: linear, whatever the input."""
    if "=" not in text:  # no stated result, nothing to check (most prose)
        return []
    plain = _normalise(text[:MAX_TEXT])
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(plain)]
    found: list[WrongSum] = []
    run = 0  # where the current stretch of numbers, operators and parentheses began
    for i, (token, _, _) in enumerate(tokens):
        if token != "=":
            if token not in _ARITH and not _is_number(token):
                run = i + 1
            continue
        wrong = _check(plain, tokens, run, i)
        if wrong is not None:
            found.append(wrong)
        run = i + 1  # the result may start the next step: "= 40 + 10 = 50"
    return found


def _check(plain: str, tokens: list[tuple[str, int, int]], run: int, equals: int) -> WrongSum | None:
    """The calculation ending at ``tokens[equals]`` ("="), if it is one and it is wrong."""
    expr = [t for t, _, _ in tokens[run:equals]]
    while expr and expr[0] == "(" and expr.count("(") > expr.count(")"):
        expr, run = expr[1:], run + 1  # an outer parenthesis: "(3 + 4 = 7)"
    while expr and expr[-1] == ")" and expr.count(")") > expr.count("("):
        expr = expr[:-1]
    if not expr or not (_is_number(expr[0]) or expr[0] == "("):
        return None  # "+ 3 = 5": the expression runs on to the left
    if not any(t in "+-*/" for t in expr[1:]):
        return None  # "x = 5", "3 = 3"
    start = tokens[run][1]
    before = plain[max(0, start - 20):start]
    if not _BEFORE_OK.search(before) or before.rstrip().endswith(("+", "-", "*", "/", "^", ".")):
        return None  # part of something longer: "2x + 3 = 11", "2^3 + 1 = 9", "f(3) + 2 = 5"
    after = tokens[equals + 1:equals + 5]
    sign = 1.0
    if after and after[0][0] == "-":
        sign, after = -1.0, after[1:]
    if not after or not _is_number(after[0][0]):
        return None
    number, _, end = after[0]
    percent = len(after) > 1 and after[1][0] == "%" and after[1][1] == end
    rest = after[1 + percent:]
    stop = after[1][2] if percent else end
    if rest and rest[0][1] == stop and (rest[0][0][0].isalpha() or rest[0][0] == "("):
        return None  # "= 15x", "= 3(x + 1)"
    if rest and rest[0][0] in "+-*/(" and len(rest) > 1 and (_is_number(rest[1][0]) or rest[1][0] == "("):
        return None  # "= 22 + 48 = 70": the right side goes on; its last step is checked
    value = _evaluate(" ".join(expr))
    if value is None:
        return None
    stated = sign * float(number)
    decimals = len(number.partition(".")[2])
    # "10/40 = 25%" and "0.2 * 40 = 8%" are both written: a percentage may be either
    if any(abs(stated / scale - value) <= _tolerance(value, decimals, scale) for scale in
           ((1, 100) if percent else (1,))):
        return None
    written = plain[start:stop]
    return WrongSum(" ".join(written.split()), value)


def _is_number(token: str) -> bool:
    return bool(token) and token[0].isdigit()


def _tolerance(value: float, decimals: int, scale: int) -> float:
    """Rounding to the decimals shown, or RELATIVE of the value (inputs are often rounded
    themselves: "0.33 - 0.2 = 0.1333")."""
    return max(0.5 * 10 ** -decimals / scale, RELATIVE * abs(value)) + 1e-9


def _normalise(text: str) -> str:
    text = text.replace("\\*", "*").replace("−", "-").replace("÷", "/").replace("$", "")  # "\*": markdown
    text = _THOUSANDS.sub("", text)
    return _TIMES.sub("*", text)  # "3 x 4" -> "3*4" (same length but for the spaces)


def _evaluate(expression: str) -> float | None:
    """The value of + - * / arithmetic on numbers, or None (anything else, division by zero)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return None
    try:
        return _value(tree.body)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def _value(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(
            node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right
    raise ValueError("not plain arithmetic")
