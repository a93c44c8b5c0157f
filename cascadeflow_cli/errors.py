"""Our exception tree. Every error a user can cause or meet maps to one class here,
and each class carries the exit code documented in CLI.md, so the CLI can turn any of
them into one readable line and the right status without knowing where it came from."""

from __future__ import annotations


class CascadeError(Exception):
    """Base of every error the CLI reports as one line (exit 1: usage or input)."""

    exit_code = 1
    # a request that failed after some of its calls may have been billed: what the ledger
    # recorded it costing (set by the cascade; `cascade batch` adds it to its run's spend)
    cost_nusd = 0


class ConfigError(CascadeError):
    """The configuration file is missing, unreadable or invalid."""


class InputError(CascadeError):
    """A bad argument or input file."""


class MissingExtraError(CascadeError):
    """An optional feature whose extra is not installed (e.g. --semantic without [semantic])."""


class PricingError(CascadeError):
    """A model has no known price: we refuse to count it as $0."""


class LedgerError(CascadeError):
    """The ledger database cannot be opened, read or written."""


class LedgerUnavailableError(LedgerError):
    """A PostgreSQL ledger cannot be reached or refuses us (server down, wrong password,
    no such database): checked before anything is reserved or sent. The URL in the
    message has its password masked."""


class LedgerSchemaError(LedgerError):
    """The ledger's schema is newer than this cascade knows (a later version migrated it):
    refused, untouched, rather than written with rows of the wrong shape."""


class MissingApiKeyError(CascadeError):
    """The environment variable holding a provider's API key is not set."""

    def __init__(self, model: str, env_var: str) -> None:
        super().__init__(f"no API key for model {model!r}: set the environment variable {env_var}")
        self.env_var = env_var


class InvalidApiKeyError(CascadeError):
    """The variable holding a provider's key is set, but to something no provider takes
    (a line break, a space, a non-ASCII or control character): refused before any call,
    and never echoed."""

    def __init__(self, model: str, env_var: str, problem: str) -> None:
        super().__init__(
            f"the API key in ${env_var} (model {model!r}) is not usable: it contains {problem}; "
            "a key is one line of printable ASCII"
        )
        self.env_var = env_var


class RevokedKeyError(CascadeError):
    """`cascade serve`: the caller's API key was revoked after the server last read it
    (found in its key cache, refused by the reservation's transaction): an HTTP 401."""


class BudgetBlockedError(CascadeError):
    """The user's budget refuses this request (exit 3)."""

    exit_code = 3


class NotRecordedError(CascadeError):
    """Answered (and paid for), but the ledger write failed after the call: the answer is
    still printed, the request waits in the side journal next to the ledger, and the next
    command records it (exit 4). ``result`` is the answer, ``journaled`` whether the
    journal could be written (if not, this cost is recorded nowhere: the message says so)."""

    exit_code = 4

    def __init__(self, message: str, result: object = None, *, journaled: bool = True) -> None:
        super().__init__(message)
        self.result = result
        self.journaled = journaled


class InterruptedRequest(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: finished calls are recorded, the rest released."""


class ProviderError(CascadeError):
    """A provider call failed (after retries, when retryable). Exit 2."""

    exit_code = 2
    retryable = False
    # a stream that failed mid-answer (a stall): what it had generated, the engine's
    # Completion (priced and recorded: it is paid for); None for every other failure
    partial: object | None = None
    # this try had sent its request (the provider may have it, and bill it) and no answer
    # came that could be priced: a timeout, a connection broken mid-answer, a 200 that is
    # no chat completion. Not an error status (providers bill none: a 5xx is their fault),
    # nor a connection never made. Charged an estimate (engine/attempts.py), never $0.
    sent: bool = False
    # the tries of this call, this one included, that were so: set by the retry loop
    unanswered: int = 0

    def __init__(
        self, message: str, *, model: str = "", status: int | None = None,
        retry_after: float | None = None, sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status = status
        self.retry_after = retry_after
        self.sent = sent


class ProviderAuthError(ProviderError):
    """The provider rejected our credentials (401/403)."""


class ProviderBadRequestError(ProviderError):
    """The provider rejected the request itself (400/404/422): retrying will not help."""


class ProviderRateLimitError(ProviderError):
    """429: too many requests."""

    retryable = True


class ProviderUnavailableError(ProviderError):
    """5xx or a refused/dropped connection."""

    retryable = True


class ProviderBrokenError(ProviderUnavailableError):
    """The connection broke after the answer began (the server was reached)."""


class ProviderTimeoutError(ProviderError):
    """No answer within the model's timeout."""

    retryable = True


class ProviderResponseError(ProviderError):
    """The provider answered with something that is not a chat completion."""

    retryable = True


class ProviderTooLargeError(ProviderResponseError):
    """The response passed the most cascade reads (transport.MAX_RESPONSE_BYTES): not
    retried, the same call would answer as much again."""

    retryable = False


class TelemetryError(CascadeError):
    """`cascade export --otlp` could not deliver the history to the collector."""


class ModelFileError(CascadeError):
    """A shipped or configured model file (e.g. the domain head's weights) is missing or damaged."""
