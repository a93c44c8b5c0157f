"""The text views and patterns the rule validator reads (see :mod:`.validator`).

Kept apart from the checks themselves so each module stays readable: the lower-cased
and prose/code views of one answer (:class:`Doc`, computed once per draft), the refusal,
hedge, question-class and truncation patterns, and :func:`expected_words`, the length
the question demands. Standard library only.
"""

from __future__ import annotations

import math
import re

from .presets import QualityPreset

_MAX_REASON_ITEMS = 4

# --------------------------------------------------------------------------- regexes

_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_ALNUM_RE = re.compile(r"\w")
_TOKEN_RE = re.compile(r"\w+")
_CODE_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
# A sentence runs to ".", "!" or "?" followed by whitespace, or to the end of the line
# ("2.5" and "e.g.x" do not end one). Possessive quantifiers keep this linear.
_SENTENCE_RE = re.compile(r"(?:[^.!?\n]++|[.!?]+(?=[^\s.!?]))++[.!?]*")
_FENCE_RE = re.compile(r"^[ \t]*(?:```|~~~)", re.MULTILINE)

_REFUSAL_VERBS = (
    r"help|assist|provide|answer|comply|fulfill|fulfil|do\s+that|do\s+this|support|engage|"
    r"create|generate|give|share|offer|write|complete|respond|discuss|participate|"
    r"continue|produce|process|perform|accommodate"
)
# Matched against lower-cased text; the lookahead skips word starts that cannot begin
# any of the alternatives.
_REFUSAL_RE = re.compile(
    r"""
    \b(?=[iasty])(?:
        # "I can't help with that", "I cannot assist", "I'm unable to provide"
        i\s*(?:can't|cannot|can\s+not|won't|will\s+not|
               (?:'m|\s+am)\s+(?:unable|not\s+able|not\s+allowed|not\s+permitted|
                                 not\s+going|not\s+in\s+a\s+position))
        \s+(?:to\s+)?(?:"""
    + _REFUSAL_VERBS
    + r""")\b(?!\s+but\b)
      | # "As an AI language model, I cannot ..." / "As an AI, I don't ..."
        as\s+an\s+ai\b[^.!?\n]{0,60}?\bi\s*(?:can't|cannot|can\s+not|don't|do\s+not|
            won't|(?:'m|\s+am)\s+(?:unable|not\s+able))
      | # "I'm sorry, but I can't ...", "Sorry, I cannot ..."
        (?:i'm\s+|i\s+am\s+)?(?:sorry|apologi[sz]e)\b[^.!?\n]{0,40}?
        \bi\s*(?:can't|cannot|can\s+not|won't|will\s+not|(?:'m|\s+am)\s+(?:unable|not\s+able))
        (?:\s+(?:to\s+)?(?:"""
    + _REFUSAL_VERBS
    + r"""))?
      | i\s+(?:must|have\s+to|need\s+to)\s+(?:respectfully\s+)?(?:decline|refuse)\b
      | i\s+(?:don't|do\s+not)\s+have\s+(?:access\s+to|the\s+ability\s+to|real-time|
            browsing|personal\s+(?:opinions|experiences))
      | (?:this|that|your)\s+request\s+(?:is|goes)\s+(?:against|beyond|outside)\b
    )
    """,
    re.VERBOSE,
)

_STRONG_HEDGES = (
    r"i\s*(?:'m|\s+am)\s+not\s+(?:entirely\s+|completely\s+|totally\s+|100%\s+)?"
    r"(?:sure|certain|confident)",
    r"not\s+(?:entirely\s+|completely\s+|totally\s+|100%\s+)?sure",
    r"i\s*(?:'m|\s+am)\s+unsure",
    r"i\s+(?:don't|do\s+not)\s+know",
    r"i\s+have\s+no\s+idea",
    r"i\s+(?:can't|cannot|can\s+not)\s+be\s+(?:sure|certain)",
    r"i\s+could\s+be\s+wrong",
    r"(?:it's|it\s+is)\s+(?:hard|difficult|impossible)\s+to\s+(?:say|tell|know)",
    r"hard\s+to\s+(?:say|tell)",
    r"(?:cannot|can't|can\s+not)\s+be\s+determined",
    r"(?:not\s+possible|impossible|unable)\s+to\s+determine",
    r"(?:there|the\s+(?:problem|question))\s+(?:is|seems\s+to\s+be|may\s+be|might\s+be|"
    r"may\s+have|might\s+have|seems\s+to\s+have|has|contains)\s+(?:a|an)\s+"
    r"(?:mistake|error|typo)",
    r"just\s+a\s+guess",
    r"don't\s+quote\s+me",
)
_MILD_HEDGES = (
    r"i\s+think",
    r"i\s+believe",
    r"i\s+guess",
    r"i\s+suppose",
    r"i\s+assume",
    r"if\s+i\s+recall\s+correctly",
    r"maybe",
    r"perhaps",
    r"possibly",
    r"probably",
    r"presumably",
    r"might\s+be",
    r"might",
    r"may\s+be",
    r"could\s+be",
    r"(?:it|this|that)\s+(?:seems|appears)",
    r"seems\s+(?:like|to\s+be)",
    r"likely",
    r"not\s+certain",
    r"unclear",
)
# Matched against lower-cased text (3x faster than re.IGNORECASE); the lookahead on
# the first letter lets the engine skip most word starts without trying every phrase.
_HEDGE_RE = re.compile(
    r"\b(?=[ijmpnhcdtlusw])(?:(?P<strong>"
    + "|".join(_STRONG_HEDGES)
    + r")|(?P<mild>"
    + "|".join(_MILD_HEDGES)
    + r"))\b"
)

# Question classification for the length check.
_ELABORATE_RE = re.compile(
    r"\b(?:explain|explaining|describe|compare|contrast|discuss|analy[sz]e|summari[sz]e|"
    r"elaborate|justify|essay|tutorial|walk\s+me\s+through|step[-\s]by[-\s]step|steps|"
    r"pros\s+and\s+cons|differences?\s+between|why|"
    r"how\s+(?!are\s+you\b|many\b|much\b|old\b|far\b|long\b|tall\b|big\b|large\b|"
    r"often\b|fast\b|high\b|deep\b|heavy\b|few\b|soon\b|late\b|early\b)\w+)\b",
    re.IGNORECASE,
)
# Verbs that are also common nouns ("Is a list mutable?", "Does Python write bytecode?")
# demand a long answer only when used as an imperative.
_IMPERATIVE_RE = re.compile(
    r"(?:^|[.!?:;]\s*|\b(?:please|you|to|and|then|also|now)\s+)"
    r"(?P<verb>list|write|design|implement|outline|create|build|draft|generate)\b",
    re.IGNORECASE,
)
_ONE_WORD_RE = re.compile(
    r"\b(?:in\s+(?:one|a\s+single|1)\s+word|one[-\s]word\s+answer|yes\s+or\s+no|"
    r"just\s+(?:the|a)\s+(?:number|answer|name|word)|only\s+(?:the|a)\s+(?:number|answer|name)|"
    r"answer\s+only|no\s+explanation)\b",
    re.IGNORECASE,
)
_BRIEF_RE = re.compile(
    r"\b(?:briefly|brief|short|concise(?:ly)?|in\s+(?:one|a|1|two|2)\s+(?:sentence|line)s?|"
    r"tl;?dr|one[-\s]liner|succinct(?:ly)?)\b",
    re.IGNORECASE,
)

# Truncation heuristics on the last line.
# A last line ending like this was cut off: "... a total of 3 + 3 +", "follows:", "x =".
# Operators count only after a space, so "C++", "**bold**" and "$x$" are fine ("|" never:
# it closes markdown table rows).
_DANGLING_END_RE = re.compile(r"(?:[,;:=(\[{\\]|\s[-+*/$&])$")
# Words that cannot end a sentence (articles, conjunctions, most prepositions).
# fmt: off
_DANGLING_WORDS = frozenset((
    "a", "an", "the", "and", "or", "but", "nor", "of", "to", "at", "with", "by", "from",
    "into", "onto", "than", "my", "your", "our", "their", "its", "because", "whereas",
    "although", "including",
))
# fmt: on
_OK_LAST_LINE_RE = re.compile(
    r"""^\s*(?:
        [-*+•]\s | \d+[.)]\s |          # list items
        \| |                            # table rows
        \#{1,6}\s | \#{2,}\s*\S |       # headings, "#### 42" final answers
        (?:final\s+)?answer\s*[:=] |    # "Answer: 42"
        >                               # block quotes
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# "Total: $43,500", "x = 12 cm": a result line may end without a period. The number must
# be well-formed, so a cut-off "= $40,00" is not excused.
_RESULT_LINE_RE = re.compile(
    r"[=:]\s*[-+]?[$€£]?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s*%?"
    r"(?:\s*[A-Za-z]+(?:\s+[A-Za-z]+)?)?$"
)
_SOFT_TRUNC_MIN_WORDS = 8  # shorter last lines ("x = 5", "Paris") may end without punctuation


# --------------------------------------------------------------------------- helpers


def _count_words(text: str) -> int:
    """Whitespace-separated words; each CJK character counts as one word as well."""
    n = len(text.split())
    if _CJK_RE.search(text):
        n += len(_CJK_RE.findall(text))
    return n


def _sentences(text: str) -> list[str]:
    """Split into sentences / lines that contain at least one letter or digit."""
    return [s.strip() for s in _SENTENCE_RE.findall(text) if _ALNUM_RE.search(s)]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _quote(items: list[str]) -> str:
    shown = ", ".join(f"'{item}'" for item in items[:_MAX_REASON_ITEMS])
    if len(items) > _MAX_REASON_ITEMS:
        shown += f" (+{len(items) - _MAX_REASON_ITEMS} more)"
    return shown


def _clip(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split_fenced_code(text: str) -> tuple[str, str]:
    """Split ``text`` into (prose, code): code is the content of ``` / ~~~ fences."""
    if "```" not in text and "~~~" not in text:
        return text, ""
    prose: list[str] = []
    code: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
        elif in_fence:
            code.append(line)
        else:
            prose.append(line)
    return "\n".join(prose), "\n".join(code)


class Doc:
    """Views of one response computed once and shared by the checks."""

    __slots__ = ("code", "lower", "prose", "prose_lower", "prose_sentences", "text", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        self.lower = text.lower()
        self.prose, self.code = _split_fenced_code(text)
        self.prose_lower = self.prose.lower()
        self.prose_sentences = _sentences(self.prose)
        # Code is dense: count identifiers and operators rather than whitespace words.
        self.words = _count_words(self.prose) + len(_CODE_TOKEN_RE.findall(self.code))

    def original(self, lower_text: str, start: int, end: int) -> str:
        """Original-case slice for a match found in ``lower_text`` (a lowered view)."""
        source = self.text if lower_text is self.lower else self.prose
        if len(source) == len(lower_text):
            return " ".join(source[start:end].split())
        return " ".join(lower_text[start:end].split())


def expected_words(query: str, preset: QualityPreset) -> tuple[int, str]:
    """How many words the question demands, and why.

    * "in one word" / "yes or no" / "just the number" ... -> 1.
    * explain / describe / compare / why / "how do ..." / imperative "write" or "list" ->
      ``preset.min_words_elaborate`` (divided by 3 when "briefly" / "in one sentence").
    * a question of ``preset.long_query_words`` words or more ->
      ``long_query_ratio * words``, capped at ``min_words_elaborate``.
    * anything else (short factual, "what is the capital of ...") -> 1.
    """
    if _ONE_WORD_RE.search(query):
        return 1, "asks for a one-word answer"
    elaborate = _ELABORATE_RE.search(query)
    imperative = None if elaborate else _IMPERATIVE_RE.search(query.strip())
    brief = _BRIEF_RE.search(query) is not None
    demand = elaborate if elaborate is not None else imperative
    if demand is not None:
        need = preset.min_words_elaborate
        asked = demand.group(0) if demand is elaborate else demand.group("verb")
        reason = f"question asks to '{' '.join(asked.lower().split())}'"
    else:
        q_words = _count_words(query)
        if q_words < preset.long_query_words:
            return 1, "short question"
        need = min(preset.min_words_elaborate, math.ceil(preset.long_query_ratio * q_words))
        reason = f"question is {q_words} words long"
    if brief:
        need = math.ceil(need / 3)
        reason += ", briefly"
    return max(1, need), reason
