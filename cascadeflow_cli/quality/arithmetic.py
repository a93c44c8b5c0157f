"""Arithmetic an answer states and gets wrong: "15 + 25 = 30", "$36 × 2 = $62",
"<<3*60=170>>", "4 * 3 + 6 = 18 + 6 = 24". A fluent answer with a wrong sum is the one
failure form-based checks cannot see, and a cheap model makes it often on word problems.

Only plain arithmetic is checked: numbers joined by + - * / (× ÷ · and "x" between
numbers count as * and /), parentheses and percentages, on both sides of an "=". Every
"=" of a chain is a step: "22 + 4 * 12 = 22 + 48 = 80" checks "22 + 4 * 12 = 22 + 48"
and "22 + 48 = 80". A unit between a number and the next operator is read past ("14 mL
+ 42 = 56"); words that multiply ("dozen", "half", "times") are not. An expression
that runs into a variable ("2x + 3 = 11", "40 * Total"), a power or a function call is
left alone, as are "≈" and "==". The stated result may be rounded to the decimals it
shows, or be within 3% (inputs are often rounded too); a percentage may be meant either
way ("10/40 = 25%", "0.2 * 40 = 8%"). Evaluation walks a whitelisted syntax tree: no
``eval``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["ArithmeticCheck", "WrongSum", "check_arithmetic", "wrong_arithmetic"]

_TOKEN = re.compile(r"\d+(?:\.\d+)?|==|!=|<=|>=|[-+*/()=%]|[A-Za-z_]+|\S")
_ARITH = frozenset("+-*/()%")
_OPERATORS = frozenset("+-*/")
_TIMES = re.compile(r"(?<=[\d)])[ \t]?[xX×·][ \t]?(?=[\d(])")
_ANNOTATION_RE = re.compile(r"<<([^<>]*)>>")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DOLLAR_GAP = re.compile(r"\$[ \t]+(?=\d)")  # "$ 40" (an annotation stripped): a number
_BEFORE_OK = re.compile(r"(?:^|[\s(:;,<>\[{\"'=]|\b[A-Za-z]+\s)$")  # what may stand just before
# Words after a number that change its value: never read past as a unit.
_MULTIPLYING = frozenset(
    [
        "dozen",
        "dozens",
        "hundred",
        "hundreds",
        "thousand",
        "thousands",
        "million",
        "millions",
        "billion",
        "half",
        "halves",
        "third",
        "thirds",
        "quarter",
        "quarters",
        "times",
        "of",
        "percent",
        "per",
        "pairs",
        "pair",
        "x",
    ]
)
RELATIVE = 0.03  # a stated result within 3% is taken as rounded, not wrong
MAX_TEXT = 20_000  # characters looked at: an answer's arithmetic is in its first pages


@dataclass(frozen=True)
class WrongSum:
    """A stated calculation that does not hold: ``text`` as written, ``correct`` its value."""

    text: str
    correct: float


@dataclass(frozen=True)
class ArithmeticCheck:
    """Every step checked in a text: how many there were, the wrong ones, and where in the
    text (0 = start, 1 = end) the first wrong one stands (1.0 when none is), and how many
    were running totals written as equations ("4 * 3 + 6 = 18 + 6 = 24")."""

    steps: int
    wrong: tuple[WrongSum, ...]
    first_wrong_at: float = 1.0
    running_totals: int = 0  # "15 + 25 = 40 + 10 = 50": not wrong, but sloppy notation


def wrong_arithmetic(text: str) -> list[WrongSum]:
    """Every stated calculation in ``text`` whose result is wrong (see the module docstring)."""
    return list(check_arithmetic(text).wrong)


@lru_cache(maxsize=16)  # the rule check and the math features read the same draft
def check_arithmetic(text: str) -> ArithmeticCheck:
    """The steps of ``text`` checked (see the module docstring). Calculator annotations
    ("<<42-18=24>>") are checked on their own, and the prose around them once they are
    taken out: "42 - 18 = <<42-18=24>>24 - 4 = <<24-4=20>>20" reads "42 - 18 = 24 - 4 =
    20" to its reader. Linear in the text, whatever the input."""
    if "=" not in text:  # no stated result, nothing to check (most prose)
        return ArithmeticCheck(0, ())
    text = text[:MAX_TEXT]
    parts = [text]
    if "<<" in text:
        parts = [_ANNOTATION_RE.sub("", text), " ; ".join(_ANNOTATION_RE.findall(text))]
    steps = running = 0
    first = 1.0
    found: dict[str, WrongSum] = {}  # a step both annotated and written out counts once
    for part in parts:
        n, wrong, where, totals = _scan(_normalise(part))
        steps, running = steps + n, running + totals
        for sum_ in wrong:
            found.setdefault("".join(sum_.text.split()), sum_)
        first = min(first, where)
    return ArithmeticCheck(steps, tuple(found.values()), first, running)


def _scan(plain: str) -> tuple[int, list[WrongSum], float, int]:
    """Steps, wrong ones, where the first wrong one stands, running totals of ``plain``."""
    tokens = _without_units([(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(plain)])
    found: list[WrongSum] = []
    steps = running = 0
    first = 1.0
    run = 0  # where the current stretch of numbers, operators and parentheses began
    for i, (token, start, _) in enumerate(tokens):
        if token != "=":
            if token not in _ARITH and not _is_number(token):
                run = i + 1
            continue
        step = _check(plain, tokens, run, i)
        run = i + 1  # the result may start the next step: "= 40 + 10 = 50"
        if step is None:
            continue
        steps += 1
        if step == "running":
            running += 1
        elif step != "ok":
            if not found:
                first = start / max(1, len(plain))
            found.append(step)
    return steps, found, first, running


def _without_units(tokens: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The tokens without unit words standing between a number and an operator that goes
        on to another number: "14 mL + 42 = 56" reads as "14 + 42 = 56". Not one before the
    "=": "1 year / 3 months = 4 times" is a conversion, not a sum."""
    out: list[tuple[str, int, int]] = []
    for i, tok in enumerate(tokens):
        word = tok[0]
        if (
            word[0].isalpha()
            and out
            and _is_number(out[-1][0])
            and out[-1][2] < tok[1]  # "5S": a number glued to a name is a variable
            and i + 2 < len(tokens)
            and tokens[i + 1][0] in _OPERATORS
            and (_is_number(tokens[i + 2][0]) or tokens[i + 2][0] == "(")
            and word.lower() not in _MULTIPLYING
        ):
            continue
        out.append(tok)
    return out


def _side(tokens: list[tuple[str, int, int]], begin: int) -> tuple[list[str], int] | None:
    """The arithmetic right of an "=" at ``begin - 1``: its tokens and the index after
    them; None when it runs into a name ("= 3(x + 1)", "= 40 * Total", "= 15x")."""
    expr: list[str] = []
    i = begin
    while i < len(tokens) and (tokens[i][0] in _ARITH or _is_number(tokens[i][0])):
        expr.append(tokens[i][0])
        i += 1
    if i < len(tokens) and expr:
        nxt, at, _ = tokens[i]
        glued = tokens[i - 1][2] == at
        if (nxt[0].isalpha() or nxt == "^") and (glued or expr[-1] in "+-*/(" or nxt == "^"):
            return None
    while expr and expr[-1] in "+-*/(":
        expr.pop()  # a sentence going on: "= 12 - so ..."
    return _trim(expr)[1] if expr and expr[0] != "(" else expr, i


def _trim(expr: list[str]) -> tuple[int, list[str]]:
    """``expr`` without unmatched outer parentheses ("(3 + 4 = 7)"), and how many it lost
    at the start. Counted once: linear however many there are."""
    opens, closes = expr.count("("), expr.count(")")
    lead, end = 0, len(expr)
    while lead < end and expr[lead] == "(" and opens > closes:
        lead, opens = lead + 1, opens - 1
    while end > lead and expr[end - 1] == ")" and closes > opens:
        end, closes = end - 1, closes - 1
    return lead, expr[lead:end]


def _check(plain: str, tokens: list[tuple[str, int, int]], run: int, equals: int) -> WrongSum | str | None:
    """The step ending at ``tokens[equals]`` ("="): None when it is not a checkable
    calculation, "ok" when it holds, "running" for a running total written as a chain,
    else what is wrong."""
    lead, expr = _trim([t for t, _, _ in tokens[run:equals]])
    run += lead  # an outer parenthesis: "(3 + 4 = 7)"
    if not expr or not (_is_number(expr[0]) or expr[0] == "("):
        return None  # "+ 3 = 5": the expression runs on to the left
    start = tokens[run][1]
    before = plain[max(0, start - 20) : start]
    if not _BEFORE_OK.search(before) or before.rstrip().endswith(("+", "-", "*", "/", "^", ".")):
        return None  # part of something longer: "2x + 3 = 11", "2^3 + 1 = 9", "f(3) + 2 = 5"
    side = _side(tokens, equals + 1)
    if side is None:
        return None
    right, _ = side
    if not right or not (_is_number(right[0]) or right[0] in "(-"):
        return None
    if not any(t in _OPERATORS for t in expr[1:]) and not any(t in _OPERATORS for t in right[1:]):
        return None  # "x = 5", "3 = 3", "= -4"
    percent = "%" in expr or "%" in right
    value, stated = _evaluate(expr), _evaluate(right)
    if value is None or stated is None:
        return None
    # the rounding the stated result shows: "3.33" -> 0.005, "25%" -> 0.005 (of 0.25)
    last = right[-2] if right[-1] == "%" else right[-1]
    single = len(right) - (right[0] == "-") - (right[-1] == "%") == 1
    unit = 0.5 * 10 ** -len(last.partition(".")[2]) * (0.01 if right[-1] == "%" else 1.0) if single else 0.0
    # "10/40 = 25%" and "0.2 * 40 = 8%" are both written: a percentage may be either
    for scale in (1.0, 100.0, 0.01) if percent else (1.0,):
        if abs(stated * scale - value) <= max(unit * scale, RELATIVE * abs(value)) + 1e-9:
            return "ok"
    if not single and _is_number(right[0]) and abs(float(right[0]) - value) <= RELATIVE * abs(value) + 1e-9:
        return "running"  # "15 + 25 = 40 + 10 = 50": a running total, not an equation
    end = tokens[equals + len(right)][2]
    return WrongSum(" ".join(plain[start:end].split()), value)


def _is_number(token: str) -> bool:
    return bool(token) and token[0].isdigit()


def _normalise(text: str) -> str:
    text = text.replace("\\*", "*").replace("\\$", "$").replace("−", "-").replace("÷", "/")  # "\*": markdown
    text = _DOLLAR_GAP.sub("", text).replace("$", "")
    text = _THOUSANDS.sub("", text)
    return _TIMES.sub("*", text)  # "3 x 4" -> "3*4"


def _evaluate(tokens: list[str]) -> float | None:
    """The value of + - * / arithmetic on numbers (``n%`` is ``n/100``), or None
    (anything else, division by zero)."""
    if len(tokens) == 1 and _is_number(tokens[0]):
        return float(tokens[0])  # most results: no parser needed
    if len(tokens) == 2 and tokens[0] == "-" and _is_number(tokens[1]):
        return -float(tokens[1])
    expression = " ".join(tokens).replace("%", "/100")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return None
    try:
        return _value(tree.body)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def _value(node: ast.expr) -> float:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
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
