"""The trained domain head: a multinomial logistic regression over MiniLM embeddings.

Its weights ship as ``cascadeflow_cli/data/domain_head.npz`` (float16; with the
training rows' int8 embeddings for the nearest-examples vote, ~450 KB), made by
bench/train_domain_head.py from labelled queries (sources and licences there). The file
carries a format version, the domain order, the temperature fitted out-of-fold, and the
model it expects embeddings from; a file that is missing, damaged or made for another
version is refused with one line (ModelFileError), never half-used.

``CASCADE_DOMAIN_HEAD`` names another weights file (one you trained yourself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cascadeflow_cli.errors import ModelFileError
from cascadeflow_cli.routing.domain import DOMAINS, MIN_CONFIDENCE
from cascadeflow_cli.routing.vectors import similarities

if TYPE_CHECKING:
    import numpy as np

HEAD_VERSION = 1
EMBEDDING_MODEL = "minilm-int8-1.0.0-mm8-t256"  # the vectors the head was trained on (semantic.MODEL_VERSION)
ENV_VAR = "CASCADE_DOMAIN_HEAD"
KNN_K = 25  # nearest training examples that vote
KNN_SHARPNESS = 0.05  # a neighbour's vote: exp(similarity / KNN_SHARPNESS)


def head_path() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    from importlib.resources import files

    return Path(str(files("cascadeflow_cli") / "data" / "domain_head.npz"))


@dataclass(frozen=True)
class DomainHead:
    """``coef``: domains x dim, ``bias``: domains; probabilities = softmax(logits / T)."""

    coef: np.ndarray
    bias: np.ndarray
    temperature: float = 1.0
    rules_weight: float = 0.0  # how much the rules' log-probabilities add to the logits
    rules_temperature: float = 1.0  # calibrates the rules' own confidence where they decide alone
    rules_sure: float = 0.8  # the rules' confidence from which they decide alone (chosen out-of-fold)
    knn_weight: float = 0.0  # how much the nearest training examples' vote adds to the logits
    general_below: float = MIN_CONFIDENCE  # the head's confidence below which a domain counts as general
    examples: np.ndarray | None = None  # training embeddings (rows x dim), for that vote
    example_labels: np.ndarray | None = None  # their domains' indices
    example_weights: np.ndarray | None = None  # their training weights
    rule_coef: np.ndarray | None = None  # domains x len(rule_names): weights of the rules' evidence
    rule_names: tuple[str, ...] = ()  # the rule features those weights are for (rule_feature_names)

    def rules_confidence(self, rule_scores: Mapping[str, float], domain: str) -> float:
        """The rules' probability of ``domain``, temperature-scaled as fitted in training."""
        import numpy as np

        z = rule_log_probabilities(rule_scores) / self.rules_temperature
        p = np.exp(z - z.max())
        return float(p[DOMAINS.index(domain)] / p.sum()) if domain in DOMAINS else 1.0

    def combined(self, vector: np.ndarray, rule_scores: Mapping[str, float],
                 signals: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, float]:
        """The built-in domains' probabilities for one embedded query, given the rules'
        scores and signals (routing.domain): softmax((logits + w * log p_rules) / T), the
        logits including the weighted rule features."""
        import numpy as np

        vectors = vector.reshape(1, -1)
        z = self.logits(vectors)[0] + self.rules_weight * rule_log_probabilities(rule_scores)
        if self.rule_coef is not None:
            z = z + self.rule_coef @ rule_features(rule_scores, signals or {}, self.rule_names)
        if self.knn_weight:
            z = z + self.knn_weight * self.knn_log_probabilities(vectors)[0]
        z = z / self.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        return {d: float(v) for d, v in zip(DOMAINS, p, strict=True)}

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        return vectors @ self.coef.T + self.bias

    def knn_log_probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Per vector, the log of its KNN_K nearest training examples' weighted vote per domain
        (smoothed: a domain no neighbour has is unlikely, not impossible); zeros without examples."""
        import numpy as np

        out = np.zeros((len(vectors), len(DOMAINS)))
        if self.examples is None or self.example_labels is None or not len(self.examples):
            return out
        similarity = similarities(vectors, self.examples)
        k = min(KNN_K, similarity.shape[1])
        weights = self.example_weights if self.example_weights is not None else np.ones(len(self.examples))
        for i, row in enumerate(similarity):
            nearest = np.argpartition(-row, k - 1)[:k]
            votes = weights[nearest] * np.exp((row[nearest] - row[nearest].max()) / KNN_SHARPNESS)
            np.add.at(out[i], self.example_labels[nearest], votes)
        out /= out.sum(axis=1, keepdims=True)
        return np.log(out + 1e-3)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        import numpy as np

        z = self.logits(vectors) / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path, **meta: object) -> None:
        import json

        import numpy as np

        info = {
            "version": HEAD_VERSION,
            "domains": list(DOMAINS),
            "embedding_model": EMBEDDING_MODEL,
            "temperature": float(self.temperature),
            "rules_weight": float(self.rules_weight),
            "rules_temperature": float(self.rules_temperature),
            "rules_sure": float(self.rules_sure),
            "knn_weight": float(self.knn_weight),
            "general_below": float(self.general_below),
            **meta,
        }
        arrays = {}
        if self.knn_weight and self.examples is not None:  # int8: unit vectors lose ~0.4% to rounding
            arrays = {"examples": np.round(self.examples * 127).astype(np.int8),
                      "example_labels": np.asarray(self.example_labels).astype(np.int8),
                      "example_weights": np.asarray(self.example_weights).astype(np.float16)}
        if self.rule_coef is not None:
            info["rule_names"] = list(self.rule_names)
            arrays["rule_coef"] = self.rule_coef.astype(np.float16)
        np.savez_compressed(
            path,
            coef=self.coef.astype(np.float16),
            bias=self.bias.astype(np.float16),
            meta=np.array(json.dumps(info)),
            **arrays,
        )

    @classmethod
    def load(cls, path: Path | None = None) -> DomainHead:
        """Read and check a weights file; ModelFileError (one line) if it is not usable."""
        import json
        import zipfile

        import numpy as np

        path = path or head_path()
        where = f"domain head weights {path}"
        try:
            with np.load(path, allow_pickle=False) as data:
                info = json.loads(str(data["meta"]))
                coef = data["coef"].astype(np.float32)
                bias = data["bias"].astype(np.float32)
                extra: dict[str, np.ndarray] = {}
                if "rule_coef" in data:
                    extra["rule_coef"] = data["rule_coef"].astype(np.float32)
                if "examples" in data:
                    extra.update({"examples": data["examples"].astype(np.float32) / 127,
                                  "example_labels": data["example_labels"].astype(np.int64),
                                  "example_weights": data["example_weights"].astype(np.float64)})
        except FileNotFoundError:
            raise ModelFileError(
                f"{where}: not found (reinstall cascadeflow-cli, or unset {ENV_VAR})"
            ) from None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
            raise ModelFileError(
                f"{where}: unreadable ({type(exc).__name__}); reinstall or retrain it"
            ) from None
        if not isinstance(info, dict) or info.get("version") != HEAD_VERSION:
            raise ModelFileError(
                f"{where}: format version {info.get('version') if isinstance(info, dict) else '?'}"
                f", this cascade reads version {HEAD_VERSION}"
            )
        if info.get("domains") != list(DOMAINS) or info.get("embedding_model") != EMBEDDING_MODEL:
            raise ModelFileError(f"{where}: made for other domains or another embedding model")
        if (
            coef.shape != (len(DOMAINS), 384)
            or bias.shape != (len(DOMAINS),)
            or not (np.isfinite(coef).all() and np.isfinite(bias).all())
        ):
            raise ModelFileError(f"{where}: damaged (unexpected shapes or values)")
        temperature, weight = float(info.get("temperature", 1.0)), float(info.get("rules_weight", 0.0))
        rules_t, gate = float(info.get("rules_temperature", 1.0)), float(info.get("rules_sure", 0.8))
        if not (0.01 <= temperature <= 100 and 0 <= weight <= 100 and 0.01 <= rules_t <= 100
                and 0 < gate <= 1):
            raise ModelFileError(f"{where}: damaged (temperature {temperature}, rules weight {weight})")
        knn = float(info.get("knn_weight", 0.0))
        general_below = float(info.get("general_below", MIN_CONFIDENCE))  # older files: the rules' own
        if not 0 <= general_below <= 1:
            raise ModelFileError(f"{where}: damaged (general_below {general_below})")
        examples = extra.get("examples")
        if not 0 <= knn <= 100 or (examples is not None and (
                examples.ndim != 2 or examples.shape[1] != 384
                or extra["example_labels"].shape != (len(examples),)
                or extra["example_weights"].shape != (len(examples),)
                or not (extra["example_labels"] >= 0).all()
                or not (extra["example_labels"] < len(DOMAINS)).all()
                # a NaN weight (or a float example) made every confidence NaN (exit 0, 'confidence nan')
                or not (np.isfinite(extra["example_weights"]) & (extra["example_weights"] >= 0)).all()
                or not np.isfinite(examples).all())):
            raise ModelFileError(f"{where}: damaged (nearest examples)")
        if examples is None:
            knn = 0.0
        rule_coef = extra.pop("rule_coef", None)
        names = info.get("rule_names", [])
        if rule_coef is not None and (
                not isinstance(names, list) or not all(isinstance(n, str) for n in names)
                or rule_coef.shape != (len(DOMAINS), len(names)) or not np.isfinite(rule_coef).all()):
            raise ModelFileError(f"{where}: damaged (rule features)")
        return cls(coef, bias, temperature, weight, rules_t, gate, knn, general_below,
                   **extra,  # type: ignore[arg-type]
                   rule_coef=rule_coef, rule_names=tuple(names) if rule_coef is not None else ())


def rule_log_probabilities(scores: Mapping[str, float]) -> np.ndarray:
    """The rules' log-softmax over the built-in domains (their scores; general's prior)."""
    import numpy as np

    z = np.array([float(scores.get(d, 0.0)) for d in DOMAINS])
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def rule_feature_names() -> tuple[str, ...]:
    """The rules' evidence the head can weigh: each built-in domain's score, and whether each
    shape (routing.domain.SHAPES: a stack trace, LaTeX, a writing task...) was seen."""
    from cascadeflow_cli.routing.domain import SHAPES

    return (*(f"score:{d}" for d in DOMAINS),
            *(f"shape:{d}:{shape.name}" for d, shapes in SHAPES.items() for shape in shapes))


def rule_features(scores: Mapping[str, float], signals: Mapping[str, tuple[str, ...]],
                  names: tuple[str, ...]) -> np.ndarray:
    """``names`` (rule_feature_names) as numbers: log(1 + score) for a score, 1 or 0 for a
    shape. A name this version of the rules does not know is 0 (never seen)."""
    import math

    import numpy as np

    out = np.zeros(len(names))
    for i, name in enumerate(names):
        kind, _, rest = name.partition(":")
        if kind == "score":
            out[i] = math.log1p(max(0.0, float(scores.get(rest, 0.0))))
        else:
            domain, _, shape = rest.partition(":")
            out[i] = float(shape in signals.get(domain, ()))
    return out
