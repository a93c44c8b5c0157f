"""Domains users define with examples, no code: ``[domains.custom.NAME]``.

    [domains.custom.support]
    examples = ["where is my order?", "I want a refund"]   # and/or
    examples_file = "support.txt"      # one example a line, or JSONL rows with "query"
    models = ["mini", "big"]           # optional: the chain for it (else [cascade])

How a custom domain is detected:
- with the [semantic] extra (``cascade domain --semantic``): by nearest examples -- the
  mean cosine similarity of the query to its TOP_K closest examples, turned into a
  probability by a logistic of width SPREAD around a threshold the examples set (how close
  they are to each other, see semantic.threshold); the built-in domains share
  what is left. Examples are embedded once and cached by content hash; a domain with more
  than MAX_EMBEDDED examples uses an evenly spaced sample of them.
- without it (the rules, and `cascade ask` routing): by word overlap -- each distinct
  content word of the query that is common among the domain's examples is a signal of
  weight WORD_WEIGHT (at most MAX_WORDS count), competing with the built-in rules. The
  words are counted when first needed, and kept by content hash for large domains.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cascadeflow_cli.files import TooLargeError, read_path_capped
from cascadeflow_cli.text import is_blank, json_loads

BUILT_IN = ("code", "math", "medical", "legal", "finance", "general")  # = routing.domain.DOMAINS
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
MAX_EMBEDDED = 2000
WORD_WEIGHT = 1.5
MAX_WORDS = 4
VOCABULARY = 400  # the most common content words of a domain's examples
CACHED_FROM = 2000  # examples from which their word count is kept on disk (common_words)
WORDS_VERSION = "words-2"  # of count_words: a new rule, a new cache key (2: rule_text)
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "you",
        "your",
        "with",
        "this",
        "that",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "how",
        "why",
        "are",
        "was",
        "were",
        "been",
        "have",
        "has",
        "had",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "not",
        "but",
        "any",
        "all",
        "our",
        "out",
        "about",
        "from",
        "into",
        "onto",
        "than",
        "then",
        "them",
        "they",
        "their",
        "there",
        "these",
        "those",
        "its",
        "it's",
        "also",
        "just",
        "like",
        "some",
        "such",
        "very",
        "more",
        "most",
        "much",
        "many",
        "one",
        "two",
        "get",
        "got",
        "give",
        "make",
        "made",
        "want",
        "need",
        "please",
        "help",
        "tell",
        "know",
        "does",
        "did",
        "doing",
        "done",
        "here",
        "use",
        "using",
        "used",
        "way",
        "ways",
        "thing",
        "things",
        "something",
        "anything",
        "there's",
        "i'm",
        "i've",
        "don't",
        "can't",
        "let",
        "let's",
        "able",
        "each",
        "other",
        "over",
        "under",
        "only",
        "own",
        "same",
        "too",
        "off",
        "again",
        "once",
        "yes",
    ]
)


@dataclass(frozen=True)
class CustomDomain:
    name: str
    examples: tuple[str, ...]
    models: tuple[str, ...] | None = None

    @cached_property
    def words(self) -> Mapping[str, int]:
        """Common content word -> how many examples have it. Counted when first needed
        (every command reads the config; only routing needs these), cached by content
        above CACHED_FROM examples (common_words)."""
        return common_words(self.examples)

    def embedded_examples(self) -> list[str]:
        """The examples the semantic detector embeds: all, or an evenly spaced sample."""
        if len(self.examples) <= MAX_EMBEDDED:
            return list(self.examples)
        step = len(self.examples) / MAX_EMBEDDED
        return [self.examples[int(i * step)] for i in range(MAX_EMBEDDED)]

    def overlap(self, words: set[str]) -> list[str]:
        """The query's content words that are common among this domain's examples."""
        return sorted(words & self.words.keys(), key=lambda w: -self.words[w])[:MAX_WORDS]


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def make_domain(name: str, examples: tuple[str, ...], models: tuple[str, ...] | None = None) -> CustomDomain:
    return CustomDomain(name, examples, models)


def count_words(examples: tuple[str, ...]) -> dict[str, int]:
    """The VOCABULARY most common content words of ``examples`` and how many have each."""
    from cascadeflow_cli.routing.scripts import rule_text

    counts: Counter[str] = Counter()
    for example in examples:  # read as the rules read a query: NFC, "Python" in "用Python写"
        counts.update(content_words(rule_text(example)))
    floor = max(1, len(examples) // 200)  # with many examples, a word one of them uses is noise
    return {w: n for w, n in counts.most_common(VOCABULARY) if n >= floor}


def common_words(examples: tuple[str, ...], directory: Path | None = None) -> dict[str, int]:
    """count_words, kept in the user cache directory (``directory`` if given) by a hash of
    the examples once there are CACHED_FROM of them: counting is ~5-17 us an example (100,000
    real prompts: 1.7 s CPU), reading the kept count ~20 ms of hashing. Written atomically; an
    unreadable or read-only cache just goes without."""
    import os

    from cascadeflow_cli.routing.vectors import content_hash

    if len(examples) < CACHED_FROM:
        return count_words(examples)
    if directory is None:
        import platformdirs

        from cascadeflow_cli.config import APP_NAME

        directory = Path(platformdirs.user_cache_dir(APP_NAME)) / "custom-words"
    path = directory / f"{content_hash(list(examples), WORDS_VERSION)}.json"
    try:
        kept = json_loads(path.read_text(encoding="utf-8"))
        if isinstance(kept, dict) and all(isinstance(n, int) for n in kept.values()):
            return kept
    except (OSError, ValueError):
        pass  # not there yet, or unreadable: count again
    words = count_words(examples)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(words), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
    return words


def parse_custom(
    raw: Any,
    base: Path | None,
    fail: Callable[[str, str], Exception],
    names: Callable[[Mapping[str, Any], str, str], tuple[str, ...] | None],
) -> dict[str, CustomDomain]:
    """``[domains.custom]`` of a config file: NAME -> CustomDomain; ``fail(key, problem)``
    makes the config error; relative ``examples_file`` paths are from the config's folder."""
    if not isinstance(raw, dict):
        raise fail("domains.custom", "must be a table of [domains.custom.NAME] tables")
    out = {}
    for name, table in raw.items():
        key = f"domains.custom.{name}"
        check_name(name, key, fail)
        if not isinstance(table, dict):
            raise fail(key, "must be a table with examples and/or examples_file")
        unknown = [k for k in table if k not in ("examples", "examples_file", "models")]
        if unknown:
            raise fail(f"{key}.{unknown[0]}", "unknown key (allowed: examples, examples_file, models)")
        examples: list[str] = []
        if "examples" in table:
            listed = table["examples"]
            if not isinstance(listed, list) or not all(isinstance(e, str) for e in listed):
                raise fail(f"{key}.examples", "must be a list of strings")
            examples += [e.strip() for e in listed if not is_blank(e)]
        if "examples_file" in table:
            if not isinstance(table["examples_file"], str) or not table["examples_file"].strip():
                raise fail(f"{key}.examples_file", "must be a path")
            path = Path(table["examples_file"]).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            examples += read_examples(path, lambda problem, k=f"{key}.examples_file": fail(k, problem))
        if not examples:
            raise fail(key, "has no examples (give examples = [...] or examples_file)")
        models = names(table, key, "models") if "models" in table else None
        # NFC: "José" composed and decomposed are one example, read as a composed query is
        out[name] = make_domain(name, tuple(dict.fromkeys(unicodedata.normalize("NFC", e) for e in examples)),
                                models)
    return out


def check_name(name: str, key: str, fail: Callable[[str, str], Exception]) -> None:
    """A custom domain's name as NAME spells it, or a config error that says why: a name
    that is a built-in one in another case or form ("Finance", "CODE") says so, and one
    that NAME spells once lowercased, NFC and with '-' for spaces ("Support", "my
    support") is named in the error (hostile-18)."""
    plain = unicodedata.normalize("NFC", name).strip().lower()
    if plain in BUILT_IN:
        what = f"{name!r} is a built-in domain" if plain == name else (
            f"{name!r} is the built-in domain {plain!r} written another way")
        raise fail(key, f"{what}; give your domain another name")
    if NAME.match(name):
        return
    hint = "-".join(plain.split())
    raise fail(key, "a domain name is lowercase ASCII letters, digits, '-' or '_', starting with a letter "
               "(at most 40)" + (f": say {hint!r}" if NAME.match(hint) else ""))


def read_examples(path: Path, fail: Callable[[str], Exception]) -> list[str]:
    """One example a line, or JSON Lines rows with "query" (or "text"); blank lines skipped."""
    try:
        text = read_path_capped(path).decode("utf-8")
    except TooLargeError as exc:
        raise fail(str(exc)) from None
    except FileNotFoundError:
        raise fail(f"{path}: not found") from None
    except UnicodeDecodeError:
        raise fail(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror or 'unreadable'}") from None
    lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if not is_blank(line)]
    if not lines or not lines[0][1].lstrip().startswith("{"):
        return [line.strip() for _, line in lines]
    out = []
    for n, line in lines:
        try:
            row = json_loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"{path}:{n}: not JSON ({exc.msg})") from None
        value = row.get("query", row.get("text")) if isinstance(row, dict) else None
        if not isinstance(value, str):
            raise fail(f'{path}:{n}: a row needs a string "query" (or "text")')
        if not is_blank(value):
            out.append(value.strip())
    return out


def domain_names(custom: Mapping[str, CustomDomain] | None = None) -> tuple[str, ...]:
    """Every domain a query can be given or detected as: the built-in ones, then the custom."""
    return (*BUILT_IN, *(custom or {}))
