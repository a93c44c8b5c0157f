"""server/http.py: the JSON answer is the bytes and headers Starlette's JSONResponse
sends (the SDK reads them), built in one step."""

from __future__ import annotations

import math

import pytest
from starlette.responses import JSONResponse

from cascadeflow_cli.server.http import JsonAnswer


@pytest.mark.parametrize(
    "content",
    [
        {"id": "chatcmpl-1", "choices": [{"message": {"content": "Paris, é, 日本, \u2028 \"q\" \\\\"}}],
         "usage": {"cost": 3e-05, "n": None, "ok": True}},
        [1, 2.5, "x"],
        {},
    ],
)
def test_a_json_answer_is_what_jsonresponse_sends(content: object) -> None:
    headers = {"x-cascade-request-id": "abc", "x-cascade-cost": "0.00003", "Retry-After": "7"}
    ours, theirs = JsonAnswer(content, headers, 429), JSONResponse(content, status_code=429, headers=headers)
    assert ours.body == theirs.body
    assert ours.raw_headers == theirs.raw_headers
    assert ours.status_code == theirs.status_code


def test_a_json_answer_refuses_nan_as_jsonresponse_does() -> None:
    with pytest.raises(ValueError):
        JSONResponse({"x": math.nan})
    with pytest.raises(ValueError):
        JsonAnswer({"x": math.nan}, {})
