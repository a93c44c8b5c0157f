"""OpenAI's chat-completions shapes: the request we accept, the responses, chunks and
errors we send. Pure functions over plain data (no HTTP framework here), so the rules
are tested without a server and both the streaming and the plain path share them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cascadeflow_cli.config import AppConfig
from cascadeflow_cli.money import MAX_COUNT, usd
from cascadeflow_cli.redact import redact
from cascadeflow_cli.text import json_kind, text_problem

CHAIN = "cascade"  # the default chain; "cascade/<domain>" is that domain's chain
_ROLES = ("system", "developer", "user", "assistant")
# fields whose presence means a feature we do not pass through: refused, not ignored
_UNSUPPORTED = {
    "tools": "tool calls",
    "functions": "function calls",
    "tool_choice": "tool calls",
    "function_call": "function calls",
    "audio": "audio output",
    "prediction": "predicted outputs",
    # these were ignored (hostile-20): a client asking for JSON or log-probabilities got
    # prose or "logprobs": null, as if it had been honoured (`stop` is passed on: _stop)
    "response_format": "response formats other than text",
    "logprobs": "log-probabilities",
    "top_logprobs": "log-probabilities",
    "modalities": "output modalities other than text",
    "web_search_options": "web searches",
    # an answer that was to be biased or moderated would come back as neither
    "logit_bias": "logit biases",
    "moderation": "moderated completions",
}
# Not here, ignored as OpenAI-compatible servers do: hints on how a model samples or is
# billed (temperature, seed, reasoning_effort, verbosity, service_tier: the cascade's own
# config says how its models are asked), and what names or files the request (user,
# metadata, store, prompt_cache_key, safety_identifier); parallel_tool_calls without tools
_NOTHING_ASKED = (None, [], {}, "none")  # a field sent empty asks for nothing: accepted


def _asks_nothing(field: str, value: Any) -> bool:
    if field == "web_search_options":  # {} turns the search on, with its defaults
        return value is None
    if value in _NOTHING_ASKED:
        return True
    if field in ("tool_choice", "function_call"):  # reached once tools and functions asked
        return value == "auto"  # nothing (they come first): with none to call, none is called
    if field == "response_format":
        return isinstance(value, dict) and value.get("type") == "text"
    if field in ("logprobs", "top_logprobs"):  # false and 0 are off too
        return value in (False, 0, "") and not isinstance(value, float)
    if field == "modalities":
        return value == ["text"]
    return False


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}
        # who asked, for the access log, once the key was known: (key prefix, user, request id)
        self.caller: tuple[str, str, str | None] | None = None

    def body(self) -> dict[str, Any]:
        # redacted here, as every error line: a client's field (a key pasted as `model`) is echoed
        message = redact(self.message)
        return {"error": {"message": message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def both_lengths() -> str:
    """A request framed by both Content-Length and Transfer-Encoding (RFC 9112 section
    6.3): which one a proxy in front used decides where the next request starts (request
    smuggling), so it is refused whichever HTTP parser met it (server/protocol.py)."""
    return "the request has both Content-Length and Transfer-Encoding: send one of them"


@dataclass(frozen=True)
class Target:
    """What a request's ``model`` names: a chain (the default, or a domain's) or one model."""

    name: str  # as the client sent it, echoed in responses
    domain: str | None = None
    models: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ChatCall:
    """A validated chat-completions request."""

    target: Target
    messages: list[dict[str, str]]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    stop: tuple[str, ...] = ()


def model_names(config: AppConfig) -> list[str]:
    """Every name `model` may take: the chains, then each configured model."""
    return [CHAIN, *(f"{CHAIN}/{d}" for d in config.domains), *config.models]


def resolve_target(config: AppConfig, name: Any) -> Target:
    if not isinstance(name, str) or not name:
        raise bad_request("you must provide a model parameter", "model")
    if name == CHAIN:
        return Target(name)
    if name.startswith(f"{CHAIN}/") and name[len(CHAIN) + 1 :] in config.domains:
        return Target(name, domain=name[len(CHAIN) + 1 :])
    if name in config.models:
        return Target(name, models=(name,))
    shown = repr(name) if len(name) <= 200 else f"{name[:200]!r}..."  # a 100 KB name came back whole
    raise ApiError(
        404,
        f"the model {shown} does not exist here (see GET /v1/models)",
        code="model_not_found",
        param="model",
    )


def _text(content: Any, index: int) -> str:
    """A message's text: a string, or a list of text parts (joined). Images, audio and
    files are refused: the cascade's validator judges text, and no model here is known
    to take them."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for number, part in enumerate(content):
            where = f"messages[{index}].content[{number}]"
            if not isinstance(part, dict):  # it said "unknown content part None"
                raise bad_request(f"{where} must be an object with a 'type', got {json_kind(part)}",
                                  f"messages[{index}].content")
            kind = part.get("type")
            if not isinstance(kind, str):
                raise bad_request(f"{where}.type must be a string such as \"text\", got {json_kind(kind)}",
                                  f"messages[{index}].content")
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise bad_request(f"{where}.text must be a string, got {json_kind(part.get('text'))}",
                                      f"messages[{index}].content")
                parts.append(part["text"])
            elif kind in ("image_url", "input_image", "input_audio", "file"):
                raise bad_request(
                    f"messages[{index}]: {kind} content is not supported by this endpoint "
                    "(the cascade answers text only)",
                    f"messages[{index}].content",
                    "unsupported_content",
                )
            else:
                raise bad_request(
                    f"messages[{index}]: unknown content part {kind!r}", f"messages[{index}].content"
                )
        return "".join(parts)
    raise bad_request(f"messages[{index}].content must be a string or a list of parts", f"messages[{index}]")


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty array", "messages")
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object", f"messages[{index}]")
        role = message.get("role")
        if role in ("tool", "function") or message.get("tool_calls") or message.get("function_call"):
            raise bad_request(
                f"messages[{index}]: tool calls are not supported by this endpoint",
                f"messages[{index}]",
                "unsupported_feature",
            )
        if role not in _ROLES:
            raise bad_request(f"messages[{index}]: unknown role {role!r}", f"messages[{index}].role")
        text = _text(message.get("content"), index)
        problem = text_problem(text, from_bytes=False)
        if problem is not None:  # a JSON "\\ud800": the engine's hint spoke of a terminal (hostile-11)
            raise bad_request(
                f"messages[{index}].content is not valid Unicode text ({problem}): a \\u escape "
                "in the JSON body must not be half of a UTF-16 surrogate pair",
                f"messages[{index}].content",
            )
        # "developer" is OpenAI's newer name for the system message; every provider knows "system"
        messages.append({"role": "system" if role == "developer" else role, "content": text})
    if not any(m["role"] == "user" and m["content"].strip() for m in messages):
        raise bad_request("'messages' must contain a user message with text", "messages")
    return messages


def _positive_int(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_COUNT:
        # the bound: a limit each call keeps in the ledger (int64); 10**23 was sent and paid,
        # then could not be recorded
        raise bad_request(f"'{field}' must be a positive integer up to {MAX_COUNT:,}", field)
    return value


_MAX_STOPS = 4  # OpenAI's limit


def _stop(value: Any) -> tuple[str, ...]:
    """``stop``: a string or up to four, passed on to every model the cascade asks (LangChain's
    agents send ``["Observation:"]``: refused, they could not use the endpoint at all)."""
    if value is None or value == "":
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_request("'stop' must be a string or an array of strings", "stop")
    if len(stops) > _MAX_STOPS:
        raise bad_request(f"'stop' takes at most {_MAX_STOPS} sequences, got {len(stops)}", "stop")
    if any(s == "" or text_problem(s, from_bytes=False) is not None for s in stops):
        raise bad_request("each 'stop' sequence must be non-empty Unicode text", "stop")
    return tuple(stops)


def parse_chat(config: AppConfig, body: Any) -> ChatCall:
    """A request body to a ChatCall, or the ApiError to answer. Unknown fields are
    ignored (as OpenAI-compatible servers do); fields for features we cannot honour
    (tools, n > 1, images) are a 400 that says so, never a silent wrong answer."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    target = resolve_target(config, body.get("model"))
    if body.keys() & _UNSUPPORTED.keys():  # usually none: not a dozen lookups a request
        for field, what in _UNSUPPORTED.items():  # in this order: the first one is named
            if not _asks_nothing(field, body.get(field)):
                raise bad_request(
                    f"{what} ('{field}') are not supported by this endpoint", field, "unsupported_feature"
                )
    n = body.get("n", 1)
    if n is not None and (n != 1 or isinstance(n, bool)):
        raise bad_request("only n = 1 is supported: the cascade picks one answer", "n", "unsupported_feature")
    messages = _messages(body.get("messages"))
    tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise bad_request("'stream' must be a boolean", "stream")
    options = body.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", "stream_options")
    include = options.get("include_usage")
    if include is not None and not isinstance(include, bool):  # "no" is truthy
        raise bad_request("'stream_options.include_usage' must be a boolean", "stream_options.include_usage")
    stop = _stop(body.get("stop"))
    return ChatCall(target, messages, tokens, bool(stream), bool(include), stop)


def query_of(messages: list[dict[str, str]]) -> str:
    """The text the cascade judges and the ledger keeps: the last user message."""
    return next(m["content"] for m in reversed(messages) if m["role"] == "user" and m["content"].strip())


# --- responses --------------------------------------------------------------------


def usage(result: Any, record: Any) -> dict[str, Any]:
    """Tokens of every call made (what was paid for), and our cost (USD) alongside, as
    several OpenAI-compatible routers report it."""
    calls = result.record.calls  # the records themselves: result.calls wraps each anew
    prompt = sum(c.input_tokens for c in calls)
    completion = sum(c.output_tokens for c in calls)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": usd(result.record.cost_nusd),
    }
    if record is not None and any("estimated" in (c.cost_source or "") for c in record.calls):
        out["estimated"] = True
    return out


def extension(result: Any) -> dict[str, Any]:
    """Our own fields, under one key a client can ignore."""
    # the record's fields read from it: through CascadeResult.__getattr__ each is a failed
    # lookup first (~1 µs), and a response reads a dozen
    r = result.record
    return {
        "request_id": r.id,
        "model": result.model,
        "draft_model": result.draft_model,
        "draft_accepted": r.draft_accepted,
        "escalated": r.escalated,
        "quality_score": r.quality_score,
        "cost": usd(r.cost_nusd),
        "savings": usd(result.savings_nusd),
        "enforcement": r.enforcement,
    }


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def chat_completion(name: str, result: Any, finish_reason: str | None, record: Any) -> dict[str, Any]:
    return {
        "id": completion_id(result.request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason or "stop",
            }
        ],
        "usage": usage(result, record),
        "cascade": extension(result),
    }


def chunk(
    cid: str,
    name: str,
    created: int,
    delta: dict[str, Any],
    finish: str | None = None,
    *,
    include_usage: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": name,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if include_usage:
        out["usage"] = None  # OpenAI sends null here on every chunk but the last
    return out


def header_text(text: str) -> str:
    """``text`` fit for an HTTP header: printable ASCII as it is, anything else (a model
    named "模型") percent-encoded as UTF-8. Headers go out as Latin-1: such a name made every
    answer it gave a 500, after it was paid for (hostile-20)."""
    if text.isascii() and text.isprintable() and "%" not in text:
        return text
    return quote(text, safe=" !\"#$&'()*+,/:;<=>?@[\\]^_`{|}~")


def cascade_headers(result: Any) -> dict[str, str]:
    return {
        "x-cascade-request-id": result.record.id,
        "x-cascade-model": header_text(result.model),
        "x-cascade-draft-accepted": "true" if result.record.draft_accepted else "false",
        "x-cascade-cost": _amount(result.record.cost_nusd),
        "x-cascade-savings": _amount(result.savings_nusd),
    }


def _amount(nusd: int) -> str:
    """USD with nano-dollar precision, exactly, never in scientific notation."""
    sign = "-" if nusd < 0 else ""
    whole, frac = divmod(abs(nusd), 10**9)
    return f"{sign}{whole}.{frac:09d}".rstrip("0").rstrip(".") if frac else f"{sign}{whole}"
