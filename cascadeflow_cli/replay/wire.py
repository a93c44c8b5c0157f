"""The replay server's wire format: OpenAI's chat-completion bodies, stream chunks and
error shapes, and the small request helpers the handler uses. Standard library only."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

GARBAGE = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
STREAM_PIECE_WORDS = 3

# status -> (error type, error code, message), shaped like OpenAI's error bodies
ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "not_found", "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded. Please try again later."),
}


@dataclass
class WireCompletion:
    id: str
    created: int
    model: str
    content: str
    finish_reason: str
    usage: dict[str, Any]
    extra: list[dict[str, Any]] | None = None  # every choice: text, finish_reason, logprobs

    def response(self) -> dict[str, Any]:
        """The non-streaming ``chat.completion`` object."""
        choices = self.extra or [
            {"text": self.content, "finish_reason": self.finish_reason, "logprobs": None}
        ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": c["text"]},
                    "logprobs": c["logprobs"],
                    "finish_reason": c["finish_reason"],
                }
                for i, c in enumerate(choices)
            ],
            "usage": self.usage,
        }

    def chunks(self, include_usage: bool, empty: str | None = None) -> Iterator[dict[str, Any]]:
        """The ``chat.completion.chunk`` objects of a streamed answer (``empty``: of none,
        ModelBehavior.empty_stream)."""
        if empty is not None:
            yield self._chunk([] if empty == "no choices" else [delta_choice({"role": "assistant"}, None)],
                              include_usage)
            if include_usage:
                yield {**self._chunk([], include_usage), "usage": self.usage}
            return
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": piece} for piece in pieces(self.content)]
        for delta in deltas:
            yield self._chunk([delta_choice(delta, None)], include_usage)
        yield self._chunk([delta_choice({}, self.finish_reason)], include_usage)
        if include_usage:
            yield {**self._chunk([], include_usage), "usage": self.usage}

    def _chunk(self, choices: list[dict[str, Any]], include_usage: bool) -> dict[str, Any]:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        return {**chunk, "usage": None} if include_usage else chunk


def delta_choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def route(path: str) -> str:
    """The endpoint of a request path, without query string, ``/v1`` prefix or final slash."""
    path = path.split("?", 1)[0].rstrip("/")
    return path.removeprefix("/v1")


def invalid(payload: dict[str, Any]) -> str | None:
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        return "You must provide a model parameter."
    if not isinstance(payload.get("messages"), list) or not payload["messages"]:
        return "'messages' must be a non-empty array."
    return None


def bare(model: str) -> str:
    """A model id without its provider prefix: "openai/gpt-4o" -> "gpt-4o"."""
    return model.split("/", 1)[1] if "/" in model else model


def same_model(sent: Any, model: str) -> bool:
    return isinstance(sent, str) and (sent == model or bare(sent) == bare(model))


def match_model(known: Iterable[str], model: str) -> str | None:
    """The known model id that ``model`` names, exactly or with a provider prefix stripped."""
    keys = list(known)
    if model in keys:
        return model
    return next((key for key in keys if same_model(key, model)), None)


def text_of(content: Any) -> str:
    """The text of a message's content: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content")).strip()
    return ""


def token_limit(body: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def usage(prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def generic_answer(model: str, query: str) -> str:
    return (
        f"Replayed answer from {model}. The replay server has no recording for this query, "
        f"so it returns this deterministic placeholder in its place. The query was: {query}"
    )


def pieces(text: str) -> list[str]:
    """Split an answer into stream deltas of a few words each (whitespace kept)."""
    words = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    step = STREAM_PIECE_WORDS
    return ["".join(words[i : i + step]) for i in range(0, len(words), step)]


def sse_event(event: Any) -> bytes:
    """One server-sent event: a ``data:`` line with a JSON object (or ``[DONE]``)."""
    return f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n".encode()


def format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
