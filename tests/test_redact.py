"""The one redaction function (issue 11): key-shaped text and key variables' values."""

from __future__ import annotations

import pytest

from cascadeflow_cli.engine.providers.base import key_problem
from cascadeflow_cli.redact import REDACTED, redact, secret_values


@pytest.mark.parametrize(
    "text",
    [
        "Invalid header value b'Bearer sk-SECRET123\\nsk-OTHER'",
        "Authorization: Bearer abcdefgh12345",
        "url?api_key=abcdef123456&x=1",
        '{"api-key": "abcdef123456"}',
        "Incorrect API key provided: sk-proj-abcdefghijklmnop",
    ],
)
def test_key_shapes_are_redacted(text: str) -> None:
    out = redact(text, [])
    assert REDACTED in out
    for secret in ("SECRET123", "abcdefgh12345", "abcdef123456", "abcdefghijklmnop"):
        assert secret not in out


def test_values_of_key_variables_are_redacted_also_in_parts() -> None:
    env = {
        "MY_PROVIDER_KEY": "zz-plain-secret\nsecond-part",
        "CUSTOM": "custom-secret-value",
        "HOME": "/root",
    }
    secrets = secret_values(["CUSTOM"], env)
    out = redact("failed: zz-plain-secret / second-part / custom-secret-value in /root", secrets)
    assert "zz-plain-secret" not in out and "second-part" not in out and "custom-secret-value" not in out
    assert "/root" in out  # not a secret variable


def test_ordinary_messages_are_untouched() -> None:
    text = "mini: provider returned HTTP 429: slow down; max_tokens=100; the token limit was reached"
    assert redact(text, []) == text


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("sk-a\nsk-b", "a line break"),
        ("sk-a b", "a space"),
        ("sk-é", "a non-ASCII character"),
        ("sk-\x07", "a control character"),
        ("sk-fine_123", None),
    ],
)
def test_key_problems_name_the_kind_never_the_value(key: str, problem: str | None) -> None:
    assert key_problem(key) == problem
