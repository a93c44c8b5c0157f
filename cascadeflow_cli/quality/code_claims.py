"""What a draft's Python is and what the draft claims it does: the pure half of code
execution (:mod:`.code_exec` runs it; nothing here runs anything).

A claim is an output the answer states for one of its own examples, in any of the forms
answers use:

* a comment on the statement, ``print(f(2))  # Output: 4``, ``f(2)  # returns 4``,
  ``x = f(2)  # -> 4``, ``print(f(2))  # This will print: 4``, ``print(f(2))  # True``;
* a comment line right under a top-level statement, ``print(f(2))`` / ``# Output: 4``;
* a doctest session, ``>>> f(2)`` / ``4``;
* a top-level ``assert f(2) == 4`` (or ``4 == f(2)``, with or without a message);
* an output block after a script: a fenced block that is not Python (``text``, or untagged
  text that does not parse, or a lone literal) following a block that prints;
* prose: ``calling `f(2)` returns `4```, ``f(2)`` would give ``4`` (the call must be of
  a function the code defines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_SOURCE", "Program", "block_claims", "program_of"]

_FENCE_RE = re.compile(r"^[ \t]*(```|~~~)[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)
_PY_LANGS = ("", "python", "py", "python3", "pycon", "ipython")
# blocks that show what a program printed, never code
_OUTPUT_LANGS = ("text", "output", "plaintext", "txt", "console", "stdout", "none")
# `print(expr)  # Output: 4`, `f(2)  # returns 4`, `x = f(2)  # -> 4`, `print(f(2))  # True`
_CLAIM_RE = re.compile(r"^(?P<stmt>\S[^#\n]*?)[ \t]*#[ \t]*(?P<comment>[^\n]*?)[ \t]*$", re.MULTILINE)
_CLAIM_WORD_RE = re.compile(
    r"(?:(?:this|it|which|that)\s+)?(?:(?:will|would)\s+)?"
    r"(?:(?:expected|actual)\s+)?(?:outputs?|returns?|prints?|results?|gives?|should\s+(?:return|print|be))\b"
    r"\s*:?\s*|(?:=>|->|==|=|:)\s*",
    re.IGNORECASE,
)
# a comment line that is only a claim (`# Output: [1, 2]`), for the statement above it
_CLAIM_LINE_RE = re.compile(
    r"^#[ \t]*(?:(?:this|it)\s+(?:will|would)\s+)?(?:expected\s+)?(?:outputs?|returns?|prints?|results?)\b",
    re.IGNORECASE,
)
_DEF_RE = re.compile(r"^[ \t]*(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
# prose: `CALL` ... returns / outputs / gives / prints / is ... `VALUE` (or a bare literal)
_PROSE_CLAIM_RE = re.compile(
    r"`(?P<call>[A-Za-z_][\w.]*\([^`\n]{0,200}\))`[^`\n.]{0,40}?"
    r"\b(?:returns?|outputs?|prints?|gives?|yields?|results?\s+in|evaluates?\s+to|is|equals?)\b"
    r"\s*:?\s*(?:`(?P<value>[^`\n]{1,200})`|(?P<bare>-?\d+(?:\.\d+)?|True|False|None)\b)"
)

MAX_SOURCE = 20_000  # characters of code run per draft


@dataclass(frozen=True)
class Program:
    """What to run for one draft: its Python blocks in order, each a script, a
    doctest-style session (``>>>`` prompts) or the output a script is said to print."""

    blocks: tuple[tuple[str, str], ...]  # (kind, source); "def" | "script" | "doctest" | "stdout"
    defined: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not any(kind != "stdout" for kind, _ in self.blocks)

    @property
    def claims(self) -> int:
        """How many outputs the draft claims (what a run that never finishes leaves unconfirmed)."""
        return sum(block_claims(kind, src) for kind, src in self.blocks)


def block_claims(kind: str, source: str) -> int:
    """The claims one block of :attr:`Program.blocks` makes, counted without running it:
    its top-level checks, its doctest lines that show an output, or the output block itself."""
    if kind == "stdout":
        return 1
    if kind == "doctest":
        import doctest

        try:
            return sum(1 for ex in doctest.DocTestParser().get_examples(source) if ex.want.strip())
        except ValueError:  # a malformed session (the child's run of it raises too)
            return 0
    return len(re.findall(r"^__claim__\(", source, re.MULTILINE))


def _fenced(text: str) -> list[tuple[str, str, bool, int, int]]:
    """(language, body, closed, start, end) of each fenced block, in order; an open last
    fence counts (answers cut at the length limit end inside one)."""
    out: list[tuple[str, str, bool, int, int]] = []
    lang, start, open_at = None, 0, 0
    for m in _FENCE_RE.finditer(text):
        if lang is None:
            lang, start, open_at = m.group(2).lower(), m.end() + 1, m.start()
        else:
            out.append((lang, text[start : m.start()], True, open_at, m.end()))
            lang = None
    if lang is not None:
        out.append((lang, text[start:], False, open_at, len(text)))
    return out


def _literal(text: str) -> bool:
    import ast

    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _expression(text: str) -> bool:
    import ast

    try:
        ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _parses(text: str) -> bool:
    import ast

    try:
        ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _claim_lines_joined(source: str) -> str:
    """``stmt`` / ``# Output: want`` on the next line -> ``stmt  # Output: want`` (top-level
    statements only: inside a function such a comment describes no single statement)."""
    lines = source.split("\n")
    out: list[str] = []
    for line in lines:
        if (
            out
            and _CLAIM_LINE_RE.match(line)
            and out[-1].strip()
            and not out[-1][0].isspace()
            and "#" not in out[-1]
            and not out[-1].rstrip().endswith(":")
        ):
            out[-1] = f"{out[-1].rstrip()}  {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


def _assert_claim(line: str) -> str | None:
    """``assert f(2) == 4[, msg]`` (a top-level line) -> the check of that claim; None for
    any other line. Run as written, a false assert raises and hides the claims after it;
    one that holds confirmed nothing either."""
    import ast

    if not line.startswith("assert"):
        return None
    try:
        node = ast.parse(line).body[0]
    except (SyntaxError, ValueError, MemoryError, RecursionError, IndexError):
        return None
    if not isinstance(node, ast.Assert) or not isinstance(node.test, ast.Compare):
        return None
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return None
    left, right = ast.unparse(test.left), ast.unparse(test.comparators[0])
    if _literal(left) and not _literal(right):
        left, right = right, left
    if not _literal(right) or _literal(left):
        return None
    return f"__claim__({left!r}, {right!r}, False)"


def _claims_to_checks(source: str) -> str:
    """Rewrite top-level ``stmt  # Output: want`` lines (or ``# want`` where ``want`` is a
    Python literal) into checks of the claim, a call of the harness's ``__claim__``;
    every other line stays as written."""

    def repl(m: re.Match[str]) -> str:
        stmt, comment = m.group("stmt").strip(), m.group("comment")
        word = _CLAIM_WORD_RE.match(comment)
        want = comment[word.end() :].strip() if word else comment
        if not want or (not word and not _literal(want)):
            return m.group(0)  # an ordinary comment
        pm = re.fullmatch(r"print\((.*)\)", stmt)
        if pm and _expression(pm.group(1)):
            return f"__claim__({pm.group(1)!r}, {want!r}, True)"
        am = re.fullmatch(r"([A-Za-z_]\w*)\s*=\s*([^=].*)", stmt)
        if am and _expression(am.group(2)):  # `x = f(2)  # 4`: assign, then check x
            return f"{stmt}\n__claim__({am.group(1)!r}, {want!r}, False)"
        if _expression(stmt):
            return f"__claim__({stmt!r}, {want!r}, False)"
        return m.group(0)

    lines = [_assert_claim(line) or line for line in source.split("\n")]
    return _CLAIM_RE.sub(repl, _claim_lines_joined("\n".join(lines)))


def _is_output_block(lang: str, body: str) -> bool:
    """A fenced block showing printed output rather than code: tagged as text, or
    untagged and either a lone literal or text that is not Python and defines nothing."""
    if lang in _OUTPUT_LANGS:
        return True
    if lang != "" or re.search(r"^[ \t]*>>> ", body, re.MULTILINE):
        return False
    stripped = body.strip()
    if _literal(stripped) and "\n" not in stripped:
        return True
    return not _parses(body) and not re.search(
        r"^[ \t]*(?:def|class|import|from|return|for|while|if)\b", body, re.MULTILINE
    )


def _literal_call(text: str) -> bool:
    """A call whose arguments are all literals (``f(2, [1])``): prose states outputs for
    calls like ``f(n)`` too, with ``n`` a name no code binds, which would read as a
    contradiction."""
    import ast

    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    if not isinstance(node, ast.Call):
        return False
    args = [*node.args, *(k.value for k in node.keywords)]
    return all(_literal(ast.unparse(a)) for a in args)


def _prose_claims(prose: str, defined: tuple[str, ...]) -> list[str]:
    """``__claim__`` checks for the outputs the prose states for calls of defined functions."""
    checks: list[str] = []
    for m in _PROSE_CLAIM_RE.finditer(prose):
        call = m.group("call")
        name = call.split("(", 1)[0].split(".")[-1]
        want = m.group("value") if m.group("value") is not None else m.group("bare")
        if name in defined and _literal_call(call) and want is not None and want.strip():
            checks.append(f"__claim__({call!r}, {want.strip()!r}, False)")
    return checks


def program_of(text: str) -> Program:
    """The Python a draft gives and the outputs it claims (pure: nothing runs)."""
    text = (text or "").replace("\r\n", "\n")
    blocks: list[tuple[str, str]] = []
    total = 0
    prose_parts: list[str] = []
    last = 0
    for lang, body, _closed, start, end in _fenced(text):
        prose_parts.append(text[last:start])
        last = end
        if not body.strip():
            continue
        if blocks and blocks[-1][0] != "stdout" and _is_output_block(lang, body):
            blocks.append(("stdout", body))
            continue
        if lang not in _PY_LANGS:
            continue
        if total + len(body) > MAX_SOURCE:
            break
        total += len(body)
        if re.search(r"^[ \t]*>>> ", body, re.MULTILINE):
            blocks.append(("doctest", body))
        elif _DEF_RE.search(body) or re.search(r"^[ \t]*class\s", body, re.MULTILINE):
            blocks.append(("def", _claims_to_checks(body)))
        else:
            blocks.append(("script", _claims_to_checks(body)))
    prose_parts.append(text[last:])
    defined = tuple(dict.fromkeys(_DEF_RE.findall("\n".join(b for k, b in blocks if k != "stdout"))))
    checks = _prose_claims("".join(prose_parts), defined) if defined else []
    if checks:
        blocks.append(("script", "\n".join(checks)))
    return Program(tuple(blocks), defined)
