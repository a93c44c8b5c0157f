"""Token log-probabilities the replay server sends back when asked (`logprobs: true`), in
OpenAI's ``choice.logprobs`` shape. Standard library only, like the server."""

from __future__ import annotations

import re
import zlib
from typing import Any


def logprobs_payload(model: str, text: str, fixed: float | None) -> dict[str, Any]:
    """OpenAI's ``choice.logprobs`` for ``text``: one entry per word-piece, its value fixed
    or derived from a hash of the model and the piece (deterministic, mostly near 0 with
    a tail of unsure tokens, like a real model's)."""
    content = []
    for token in re.findall(r"\s*\S+", text):
        if fixed is not None:
            value = fixed
        else:
            u = zlib.crc32(f"{model}\0{token}".encode()) / 2**32
            value = -round(6.0 * u**4, 4)
        content.append({"token": token, "logprob": value, "bytes": list(token.encode()), "top_logprobs": []})
    return {"content": content, "refusal": None}
