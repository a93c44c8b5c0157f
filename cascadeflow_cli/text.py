"""Is this string text we can store and send? Pure checks, shared by every input path.

Python hands us undecodable bytes as lone surrogates: ``sys.argv``, ``os.environ`` and
stdin use the "surrogateescape" error handler (``b"caf\\xe9"`` becomes ``"caf\\udce9"``),
and JSON's ``"\\ud800"`` escape decodes to one too. Such a string cannot be encoded as
UTF-8, so SQLite, HTTP and JSON output would all fail on it later, after a reservation or
a paid call. These checks find it at the edge, with the place to name in the error.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import unicodedata
from collections.abc import Collection, Iterable
from typing import Any

from cascadeflow_cli.errors import InputError
from cascadeflow_cli.files import TooLargeError, capped_lines


def text_problem(value: str, *, from_bytes: bool = True) -> str | None:
    """Why ``value`` is not valid text (None when it is): the first undecodable byte or
    lone surrogate and its position. ``from_bytes``: the text was decoded from bytes with
    "surrogateescape" (argv, stdin), so U+DC80..U+DCFF stands for a byte; not so for a
    JSON ``\\u`` escape, where it is a lone surrogate like any other."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = value[exc.start]
        code = ord(char)
        if from_bytes and 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
            return f"byte 0x{code - 0xDC00:02x} at character {exc.start + 1}"
        return f"lone surrogate \\u{code:04x} at character {exc.start + 1}"
    return None


def check_text(value: str, what: str) -> str:
    """``value`` unchanged, or an InputError saying that ``what`` is not valid text."""
    problem = text_problem(value)
    if problem is not None:
        raise InputError(f"{what} is not valid UTF-8 text ({problem})")
    return value


def decode_text(data: bytes, what: str) -> str:
    """Bytes (stdin, a file) as UTF-8, or an InputError naming ``what`` and the byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{what} is not valid UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"
        ) from None


class LineDecodeError(ValueError):
    """A line of a file is not UTF-8 (or, LineTooLongError, too long to read); ``line`` is
    its 1-based number."""

    def __init__(self, line: int, byte: int) -> None:
        super().__init__(f"not UTF-8 text (byte 0x{byte:02x})")
        self.line = line


class LineTooLongError(LineDecodeError):
    def __init__(self, line: int, message: str) -> None:
        ValueError.__init__(self, message)
        self.line = line


_BOM = b"\xef\xbb\xbf"


class Utf8Lines:
    """The lines of a binary file, decoded one at a time, so a bad byte is reported on
    its own line (a text-mode file decodes 8 KiB ahead and fails on the wrong one).

    Line ends are kept, and a lone ``\\r`` ends a line too (as ``newline=""`` does), so
    the ``csv`` module reads the result exactly as it reads a text file; a UTF-8
    byte-order mark at the start is dropped. ``number`` is the line last returned.
    """

    def __init__(self, fh: Iterable[bytes], *, split_cr: bool = True) -> None:
        # a file's lines capped (files.capped_lines): /dev/zero is one endless line
        self._fh = capped_lines(fh) if hasattr(fh, "readline") else iter(fh)  # type: ignore[arg-type]
        self._split_cr = split_cr
        self._pending: list[str] = []
        self._raw_line = 0
        self.number = 0

    def __iter__(self) -> Utf8Lines:
        return self

    def __next__(self) -> str:
        if not self._pending:
            try:
                raw = next(self._fh)
            except TooLargeError as exc:
                raise LineTooLongError(self.number + 1, str(exc)) from None
            self._raw_line = self.number + 1
            if self._raw_line == 1:
                raw = raw.removeprefix(_BOM)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = self._raw_line + raw.count(b"\r", 0, exc.start) - raw.count(b"\r\n", 0, exc.start)
                raise LineDecodeError(line, raw[exc.start]) from None
            self._pending = _CR_ONLY.split(text)[::-1] if self._split_cr and "\r" in text else [text]
        self.number += 1
        return self._pending.pop()


_CR_ONLY = re.compile(r"(?<=\r)(?!\n)(?=.)", re.DOTALL)


# Bidirectional controls (embeddings, overrides, isolates, marks): in a user name they
# reorder what `logs` and `usage` show ("alice\u202eknil" reads as someone else's name).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def user_name(value: str, what: str = "the user name") -> str:
    """A user name in NFC (budgets and the ledger key on it exactly), or an InputError
    when it is blank, starts or ends with a space, is not valid text, or holds a control
    character (a tab, a line break, ESC, DEL, C1), a bidi control or another invisible
    format character (spoofing). ``what`` names it in the error: a team's name and an
    API key's name follow the same rule ("the team name", "the key name").

    NFC, the one rule for every entry point (argv, batch rows, import, key owners and
    names, team names and members): "José" typed composed (U+00E9) and decomposed (e +
    U+0301, as macOS file names and some keyboards give it) look alike and were two users
    with two budgets (hostile-13), two teams with two limits and two keys' names
    (hostile-18). A legacy name stored decomposed is found by ``equivalent_name``."""
    if not value.strip():
        raise InputError(f"{what} is empty")
    check_text(value, what)
    for index, char in enumerate(value):
        if unicodedata.category(char) == "Cc":  # "alice\r" prints as "alice", ESC starts an escape
            raise InputError(f"{what} holds a control character (U+{ord(char):04X} at character "
                             f"{index + 1}), which would change how it is shown")
        # every bidi control is a format character (Cf) too; it is named for what it does
        if unicodedata.category(char) == "Cf" and not _part_of_the_name(value, index):
            kind, why = (("a bidirectional control", "which would change how it is shown")
                         if char in BIDI_CONTROLS else
                         ("an invisible format", "so it would look like another name"))
            raise InputError(f"{what} holds {kind} character (U+{ord(char):04X} at"
                             f" character {index + 1}), {why}")
    if value != value.strip():  # " alice " is shown as alice, and charged apart from her
        raise InputError(f"{what} starts or ends with a space, so it would look like another name")
    return unicodedata.normalize("NFC", value)


def is_blank(text: str) -> bool:
    """Does ``text`` show nothing: only white space and invisible format characters (zero-
    width space and joiners, bidi marks, BOM)? ``cascade ask $'\\u200b'`` was sent, and
    paid for, as a query, and `cascade domain` called it general (hostile-18). ASCII text
    is blank exactly when ``strip`` empties it: no per-character scan."""
    if not text.strip():
        return True
    if text.isascii():
        return False
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


def equivalent_name(name: str, names: Collection[str]) -> str | None:
    """The one name of ``names`` that is canonically equivalent to ``name`` (the same in
    NFC) without being it: a legacy name an older version stored decomposed ("Jose\u0301")
    for one typed composed, or the other way round. None when ``name`` is itself one of
    ``names``, when none matches, or two do. ASCII is its own NFC: no scan."""
    if name in names:
        return None
    nfc = unicodedata.normalize("NFC", name)
    if nfc in names:
        return nfc
    if nfc.isascii():
        return None
    found = [n for n in names if not n.isascii() and unicodedata.normalize("NFC", n) == nfc]
    return found[0] if len(found) == 1 else None


def _part_of_the_name(value: str, index: int) -> bool:
    """Is the format character ``value[index]`` part of what the name shows, not hidden
    in it? Category Cf is the general rule for invisible characters (zero-width space and
    joiners, word joiner, BOM, soft hyphen, tags): "al<U+200B>ice" shows as "alice". Some
    are visible parts: U+200C/U+200D between letters of a script that spells with them,
    U+200D between two pictographs (woman + laptop, the rainbow flag) and the tag
    characters closing a subdivision flag after U+1F3F4 (Scotland)."""
    char = value[index]
    if char in "\u200c\u200d" and _joining_letters(value, index):
        return True  # a Persian or Hindi name's own (non-)joiner: part of how it is spelled
    before = value[:index].rstrip("\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")
    if char == "\u200d":
        after = value[index + 1 : index + 2]
        return bool(before) and bool(after) and _pictograph(before[-1]) and _pictograph(after)
    if "\U000e0020" <= char <= "\U000e007f":
        tags = before.rstrip("".join(chr(c) for c in range(0xE0020, 0xE0080)))
        return tags.endswith("\U0001f3f4")
    return False


# Scripts whose spelling uses ZWNJ/ZWJ between letters (Persian "mi<ZWNJ>khaham", Hindi
# conjuncts): Arabic and its supplements and presentation forms, Syriac, and the Indic
# blocks from Devanagari to Sinhala. Between two letters of these the joiner is part of the
# word; between Latin letters it only hides ("al<ZWNJ>ice" shows as "alice").
_JOINING_BLOCKS = ((0x0600, 0x074F), (0x0750, 0x077F), (0x08A0, 0x08FF), (0x0900, 0x0DFF),
                   (0xFB50, 0xFDFF), (0xFE70, 0xFEFE))


def _joining_letters(value: str, index: int) -> bool:
    """Are the characters on both sides of ``value[index]`` letters (or marks) of a
    script that spells with joiners?"""
    if index == 0 or index + 1 >= len(value):
        return False
    return all(
        unicodedata.category(c)[0] in "LM" and any(lo <= ord(c) <= hi for lo, hi in _JOINING_BLOCKS)
        for c in (value[index - 1], value[index + 1])
    )


def _pictograph(char: str) -> bool:
    return unicodedata.category(char) == "So" and ord(char) >= 0x2000


def json_kind(value: object) -> str:
    """What a JSON value is, for error messages (input rows, serve's request body)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return "an array" if isinstance(value, list) else "an object"


def json_loads(text: str | bytes | bytearray, **kw: Any) -> Any:
    """``json.loads``, with JSON nested too deeply for Python's recursion limit (a line
    of 100,000 ``[``) refused as a ValueError like any other bad JSON: its RecursionError
    once came out of batch, import, calibrate, quality, a provider's reply and serve's
    request body as "unexpected RecursionError" or an HTTP 500 (hostile-4). A
    JSONDecodeError, so callers that report its ``msg`` and ``lineno`` keep working."""
    doc = text if isinstance(text, str) else ""
    try:
        return json.loads(text, **kw)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", doc, 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # int()'s cap: its advice was "use sys.set_int_max_str_digits()"
        if "integer string conversion" not in str(exc):
            raise
        limit = sys.get_int_max_str_digits()
        raise json.JSONDecodeError(f"a whole number of more than {limit:,} digits", doc, 0) from None


_LONE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # the start of a \\uD800-\\uDFFF escape
_SURROGATE = re.compile("[\ud800-\udfff]")


def provider_json(body: bytes) -> Any:
    """A provider's JSON body (a reply, a stream chunk, an error), with every lone surrogate
    its ``\\u`` escapes made (``"\\ud800"``) replaced by U+FFFD. Such a string cannot be
    encoded as UTF-8: an answer or error message holding one crashed ``ask`` as "unexpected
    UnicodeEncodeError" after the call was paid, the answer lost and the call charged its
    upper bound (hostile-16). Only a body holding such an escape is walked (a regex scan)."""
    data = json_loads(body)
    if not _LONE_ESCAPE.search(body):
        return data
    try:
        return _mended(data)
    except RecursionError:  # as deep as json_loads allows, but walked in Python
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (a JSON ``"\\ud800"``) as U+FFFD: UTF-8, and so the
    ledger, a terminal or a tokenizer, can hold it."""
    return _SURROGATE.sub("\ufffd", text)


def _mended(value: Any) -> Any:
    if isinstance(value, str):
        return without_surrogates(value)
    if isinstance(value, list):
        return [_mended(item) for item in value]
    if isinstance(value, dict):
        return {_mended(key): _mended(item) for key, item in value.items()}
    return value


def duplicate_key_line(text: str) -> int | None:
    """The line of the first key named a second time in one object of ``text`` (JSON that
    ``unique_keys`` refused), None if there is none. For an error's place: the refusal
    itself comes from ``object_pairs_hook``, which is told no position (a JSON array read
    whole said "line 1" for a key repeated on line 40). Walks the objects with the pure
    Python scanner, so it is only for that error's path."""
    import json.decoder
    import json.scanner

    found: list[int] = []
    space = json.decoder.WHITESPACE.match

    def parse_object(
        s_and_end: tuple[str, int], strict: bool, scan_once: Any, *_: Any
    ) -> tuple[dict[str, Any], int]:
        doc, pos = s_and_end
        seen: set[str] = set()
        pos = space(doc, pos).end()
        while doc[pos] != "}":
            start = pos
            key, pos = json.decoder.scanstring(doc, pos + 1, strict)
            if key in seen and not found:
                found.append(start)
            seen.add(key)
            pos = space(doc, space(doc, pos).end() + 1).end()  # past the ':'
            _, pos = scan_once(doc, pos)
            pos = space(doc, pos).end()
            if doc[pos] == ",":
                pos = space(doc, pos + 1).end()
        return {}, pos + 1

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object  # type: ignore[assignment]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    with contextlib.suppress(ValueError, IndexError, RecursionError):
        decoder.decode(text)
    return text.count("\n", 0, found[0]) + 1 if found else None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for input files (import, batch, quality, calibrate): a JSON
    object naming a key twice is refused (a ValueError, reported as bad JSON). ``{"cost":
    0.01, "cost": 5}`` was imported as $5 and ``{"user": "a", "user": "b"}`` billed b: the
    last wins in Python, the first in other readers; a CSV header naming a column twice is
    refused too."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"key {twice!r} appears twice in one object")
    return obj


_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 but tab and newline


def has_controls(text: str) -> bool:
    return _CONTROLS.search(text) is not None


def escape_controls(text: str) -> str:
    """``text`` with its control characters (ESC, BEL, CR, NUL...; not tab or newline)
    shown as ``\\x1b``: text from a provider, an import or a serve client that reaches a
    terminal must not be able to clear it, retitle it or rewrite what it shows (hostile-4)."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def shown_name(name: str) -> str:
    """``name`` with each character ``user_name`` refuses spelled out (``\\x0d``,
    ``\\u200b``): a name an older version stored with one (hostile-7) is shown as what it
    holds, not as the name it imitates, and that spelling finds it again (`budget rm`)."""
    out = []
    inner = range(len(name) - len(name.lstrip()), len(name.rstrip()))  # a space at an end is spelled out
    for index, char in enumerate(name):
        category = unicodedata.category(char)
        if category == "Cc" or index not in inner:
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        elif category == "Cf" and not _part_of_the_name(name, index):
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return "".join(out)


def spelled_name(given: str, names: Collection[str]) -> str | None:
    """The one rule for how a typed name finds a legacy one (stored by an older version with
    a character ``user_name`` now refuses: $'alice\\r', ' eve'; or not in NFC): the name
    of ``names`` that ``given`` spells as ``shown_name`` shows it, or that is canonically
    equivalent to it (``equivalent_name``). None when ``given`` is itself one of
    ``names``, spells none, or spells two."""
    if given in names:
        return None
    if (same := equivalent_name(given, names)) is not None:
        return same
    if "\\" not in given:  # every spelling shown_name makes has a backslash
        return None
    found = [name for name in names if shown_name(name) == given]
    return found[0] if len(found) == 1 else None
