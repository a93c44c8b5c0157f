"""What SDKs really send, through the official openai SDK as the client: the openai SDK's
and LangChain's fields with their neutral or off values are served, as if absent; a value
that asks for what the cascade cannot give is a 400 in OpenAI's error shape, naming its
field, before anything is asked or paid for."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from cascadeflow_cli.replay.wire import token_limit
from tests.cli.support import QUERY
from tests.conftest import ledger_rows
from tests.server.conftest import Stack

MESSAGES = [{"role": "user", "content": QUERY}]

# every one of them at once, each at the value that turns its feature off (or a mere hint)
NEUTRAL: dict[str, Any] = {
    "tools": [], "tool_choice": "none", "parallel_tool_calls": False, "functions": [],
    "function_call": "none", "user": "alice@example.com", "seed": 7, "metadata": {"app": "x"},
    "store": False, "reasoning_effort": "medium", "verbosity": "medium", "service_tier": "auto",
    "max_completion_tokens": 300, "logprobs": False, "top_logprobs": 0, "n": 1,
    "response_format": {"type": "text"}, "logit_bias": {}, "moderation": None, "temperature": 0.7,
    "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0, "prompt_cache_key": "k",
    "safety_identifier": "s", "modalities": ["text"], "audio": None, "prediction": None,
}


def _answer(stack: Stack, stream: bool, **fields: Any) -> str:
    client = stack.client()
    if not stream:
        completion = client.chat.completions.create(model="cascade", messages=MESSAGES, **fields)
        return completion.choices[0].message.content or ""
    chunks = list(client.chat.completions.create(model="cascade", messages=MESSAGES, stream=True, **fields))
    if (fields.get("stream_options") or {}).get("include_usage"):
        assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_sdk_fields_at_their_neutral_values_are_served(stack: Stack, stream: bool) -> None:
    options = {"stream_options": {"include_usage": True, "include_obfuscation": False}} if stream else {}
    assert _answer(stack, stream, **NEUTRAL, **options)
    [req] = ledger_rows(stack.db, "requests")
    assert req["status"] == "ok"
    # max_completion_tokens is honoured, not dropped
    assert [token_limit(body) for body in stack.replay.requests] == [300] * len(stack.replay.requests)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_langchain_s_usual_request_is_served(stack: Stack, stream: bool) -> None:
    # ChatOpenAI's defaults: n and a temperature, usage asked of a stream
    options = {"stream_options": {"include_usage": True}} if stream else {}
    assert _answer(stack, stream, n=1, temperature=0.7, **options)


@pytest.mark.parametrize("field", ["tool_choice", "function_call"])
def test_auto_with_nothing_to_call_is_neutral(stack: Stack, field: str) -> None:
    # refused before: 'auto' with no tools (or an empty list of them) calls none
    assert _answer(stack, False, **{field: "auto"})
    assert _answer(stack, False, tools=[], functions=[], **{field: "auto"})


TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"tools": [TOOL]}, "tools"), ({"tools": [TOOL], "tool_choice": "none"}, "tools"),
     ({"tool_choice": "required"}, "tool_choice"),
     ({"tool_choice": {"type": "function", "function": {"name": "lookup"}}}, "tool_choice"),
     ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
     ({"function_call": {"name": "f"}}, "function_call"), ({"n": 2}, "n"),
     ({"logprobs": True}, "logprobs"), ({"response_format": {"type": "json_object"}}, "response_format"),
     ({"logit_bias": {"50256": -100}}, "logit_bias"),
     ({"moderation": {"model": "omni-moderation-latest", "policy": {"output": {"mode": "block"}}}},
      "moderation")],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_value_that_asks_for_what_the_cascade_cannot_give_is_a_clear_400(
    stack: Stack, fields: dict[str, Any], param: str, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _answer(stack, stream, **fields)
    assert caught.value.status_code == 400
    error = caught.value.body
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["code"] == "unsupported_feature"
    assert "not supported" in error["message"] or "n = 1" in error["message"]
    assert ledger_rows(stack.db, "requests") == [] and stack.replay.requests == []
