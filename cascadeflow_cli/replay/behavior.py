"""How the replay server answers a model: the knobs tests turn to play a good, slow,
broken or hostile provider."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class ModelBehavior:
    """How the server answers one model (or every model, as the default)."""

    answer: str | None = None  # None: recordings, else a generic deterministic answer
    prompt_tokens: int | None = None  # default ceil(chars of all messages / 4)
    completion_tokens: int | None = None  # default ceil(chars of the answer / 4)
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    status: int | None = None  # answer with this HTTP error status
    # with a fault (status, latency_s, hang, garbage, a stall, reset or close): only the
    # first N requests get it, the rest a plain answer (a call that succeeds on a retry)
    fail_times: int | None = None
    retry_after: float | None = None  # Retry-After header on error responses
    finish_reason: str = "stop"
    garbage: bool = False  # 200 with a non-JSON body
    hang: bool = False  # never answer (until the server stops)
    # live quality signals (issue 9): a real provider may honour `logprobs` and `n`, or not
    honor_logprobs: bool = True  # False: answer as if `logprobs` had not been asked
    honor_n: bool = True  # False: always one choice, whatever `n` says
    logprob: float | None = None  # every token's log-probability; None: derived from the token
    # answers of the 2nd, 3rd... sample (cycled); the same answer again when None. Without
    # `n`, successive requests for the same query walk through [answer, *samples].
    samples: tuple[str, ...] | None = None
    # streaming (`"stream": true`): chunks go out one by one, this far apart; with
    # stall_after, the stream stops after that many content chunks and never ends (a
    # provider that stalls mid-stream) until the client leaves or the server stops
    stream_delay_s: float = 0.0
    stall_after: int | None = None
    # reset the connection (TCP RST) where `data: [DONE]` would go: the whole answer, its
    # finish_reason and usage were sent (and acknowledged), the end never comes
    reset_before_done: bool = False
    # refuse (400, as OpenAI does) a max_tokens above this: the model's output limit
    max_tokens_limit: int | None = None
    # a stream that holds no answer, then [DONE]: "no choices" (every chunk's choices
    # empty) or "no content" (a role delta, no text, no finish_reason)
    empty_stream: str | None = None
    ignore_max_tokens: bool = False  # answer in full whatever max_tokens says (a broken server)
    ignore_stream: bool = False  # answer `"stream": true` with one JSON body, as some servers do
    # reset after this many content chunks (mid-answer); a whole answer, after this many bytes
    reset_after: int | None = None
    # close (FIN) after this many content chunks, at a chunk boundary, without the
    # chunked body's end: a server that died mid-answer, cleanly on the wire
    close_after: int | None = None
    # close (FIN) once the request is read, answering nothing: a server or proxy that died
    # after the request was sent (the provider may have it, and bill it)
    close_unanswered: bool = False
    # a hostile provider's odd JSON: every JSON object sent for this model (the reply, each
    # stream chunk, an error body) passes through this first, e.g. to set a finish_reason
    # of 7 or a text holding a lone surrogate (json.dumps sends it as a \ud800 escape)
    reshape: Callable[[dict[str, Any]], dict[str, Any]] | None = None
