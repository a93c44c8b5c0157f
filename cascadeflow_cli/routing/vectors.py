"""Embeddings of many texts, made once and kept in the user cache directory.

The file is named by a hash of the model version and the texts, so the same examples are
never embedded twice, and edited examples make a new file. Written atomically (a
concurrent reader sees the old file or the new); a read-only cache just goes without.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from cascadeflow_cli.routing.semantic import Embedder

BATCH = 256  # texts per call to the embedder (which embeds them one at a time)


def similarities(vectors: np.ndarray, examples: np.ndarray) -> np.ndarray:
    """``vectors @ examples.T`` (rows x examples); one query's row without BLAS threads.

    A query against a couple of thousand examples is a matrix-vector product over OpenBLAS's
    threading threshold: it wakes a worker thread that then busy-waits for more work for
    milliseconds, on the core the model's run needs next. Measured on the 1,759 shipped kNN
    examples (2 cores, load ~3, bench/domain_eval.py's real-user file): a semantic query's CPU
    median 15.5 ms with it, 4.3 ms without. ``einsum`` does the row in this thread (~0.1 ms
    against BLAS's 0.02 ms); batches (training, a custom domain's threshold) keep BLAS.
    """
    import numpy as np

    if len(vectors) == 1:
        return np.einsum("ij,j->i", examples, vectors[0]).reshape(1, -1)
    return vectors @ examples.T


def content_hash(texts: list[str], version: str) -> str:
    digest = hashlib.sha256(version.encode("utf-8"))
    for text in texts:
        digest.update(b"\0")
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:20]


def cached_embeddings(embedder: Embedder, texts: list[str], *, kind: str = "examples",
                      directory: Path | None = None) -> np.ndarray:
    """Unit-length embeddings of ``texts`` (rows in order), from the cache when it has them;
    the cache is ``directory`` if given (the bench keeps one in the checkout), else the model's."""
    import numpy as np

    from cascadeflow_cli.routing.semantic import MODEL_VERSION

    directory = directory or embedder.directory
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{content_hash(texts, MODEL_VERSION)}.npy"
    try:
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape == (len(texts), 384):
            return vectors.astype(np.float32)
    except (OSError, ValueError, EOFError):
        pass  # not there yet, or unreadable: make it again
    if texts:
        vectors = np.concatenate([embedder.embed(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)])
    else:
        vectors = np.zeros((0, 384), dtype=np.float32)
    # rounded as the file keeps them: the run that makes the cache returns what later runs read
    # (it returned the float32 vectors, so a figure moved between a run that made the cache and
    # the next: the nested bench by a row, a custom domain's threshold by ~1e-5)
    vectors = vectors.astype(np.float16)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as fh:
            np.save(fh, vectors)
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
    return vectors.astype(np.float32)
