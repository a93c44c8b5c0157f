"""The ledger's shape, declared once: every table and column (with its type and the
migration that added it), the record dataclasses the engine builds, the export's column
order (which is also the import's mapping), the conversions between records and rows,
and the fields derived from a request's calls.

Everything else derives from here: both backends' migrations (ledger/schema_ddl.py, in a
dialect's ``DdlStyle``), the prepared
inserts (``request_row`` / ``call_row``), reading back (``request_from_row``), the
export's SELECT (ledger/export.py renders ``EXPORT_COLUMNS`` as SQL), and the importer
(which parses each export column by its ``kind`` into the record field it names).
PostgreSQL renders the same tables with its own quoting and type names (ledger/postgres/ddl.py).
Rules, kept by the tests: a migration, once released, never changes, so a column's
``since`` never changes either; new columns get a new migration name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

# --- migrations, in order (append only) ------------------------------------------------

M001 = "001_initial"
M002 = "002_budgets"
M003 = "003_batch_external_ids"
M004 = "004_call_details"
M005 = "005_quality_labels"
M006 = "006_api_keys"
M007 = "007_api_key_budgets"
M008 = "008_api_key_windows"
# the words the role and status columns hold (import refuses others: "verfier" or "okay"
# was stored as it came, and no report counted those rows as what they meant)
CALL_ROLES = ("draft", "verifier", "sample", "shadow", "external")
CALL_STATUSES = ("ok", "error", "interrupted")
REQUEST_STATUSES = ("ok", "error", "interrupted", "blocked")

MIGRATION_NAMES = (M001, M002, M003, M004, M005, M006, M007, M008)

TEXT, INTEGER, REAL = "text", "integer", "real"


def _col(default: Any = MISSING, *, since: str = M001, not_null: bool = False,
         false_is_null: bool = False) -> Any:
    """A record field that is also a column. ``false_is_null``: False is stored as NULL
    (``calibrated``: NULL means a rule score, or an import that did not say)."""
    meta = {"since": since, "not_null": not_null, "false_is_null": false_is_null}
    return field(metadata=meta) if default is MISSING else field(default=default, metadata=meta)


def _derived(default: Any) -> Any:
    """A record field that is not a column of its own table (calls, signals)."""
    return field(default=default, metadata={"column": False})


# --- the records -----------------------------------------------------------------------


@dataclass(frozen=True)
class CallSignals:
    """Live signals of one draft call, as the engine measured them (table call_signals)."""

    call_id: str
    logprobs: Sequence[float] | None = None
    samples: int | None = None
    agreement: float | None = None
    features: Mapping[str, float] | None = None  # quality/live_signals.py: what the check saw


@dataclass(frozen=True)
class CallRecord:
    """One model call (draft, verifier, sample, shadow, external), successful or not."""

    id: str
    request_id: str = _col(not_null=True)
    ts: str = _col(not_null=True)
    seq: int = _col()
    role: str = _col()  # "draft" | "verifier" | "sample" | "shadow" | "external"
    model: str = _col(not_null=True)  # our name for it
    model_id: str = _col()  # litellm's id
    provider: str = _col()
    status: str = _col(not_null=True)  # "ok" | "error"
    input_tokens: int = _col(0)
    output_tokens: int = _col(0)
    cached_tokens: int = _col(0)
    reasoning_tokens: int = _col(0)
    cost_nusd: int = _col(0, not_null=True)
    cost_source: str = _col("config")
    latency_ms: float = _col(0.0)
    attempts: int = _col(1)
    finish_reason: str | None = _col(None)
    quality_score: float | None = _col(None)
    quality_reasons: tuple[str, ...] = _col(())
    accepted: bool | None = _col(None)
    answer: str | None = _col(None)
    error: str | None = _col(None)
    # what OpenTelemetry's GenAI spans want and the calls above do not say
    response_id: str | None = _col(None, since=M004)
    response_model: str | None = _col(None, since=M004)
    max_tokens: int | None = _col(None, since=M004)
    error_type: str | None = _col(None, since=M004)  # the exception's class name, low-cardinality


@dataclass(frozen=True)
class RequestRecord:
    """One user query and what the cascade made of it."""

    id: str
    ts: str = _col(not_null=True)
    user: str = _col(not_null=True)
    status: str = _col(not_null=True)  # "ok" | "error" | "interrupted" | "blocked"
    query: str | None = _col()
    answer: str | None = _col()
    domain: str | None = _col(None)
    domain_confidence: float | None = _col(None)
    model: str | None = _col(None)
    draft_model: str | None = _col(None)
    draft_accepted: bool = _col(False)
    escalated: bool = _col(False)
    quality_score: float | None = _col(None)
    quality_reasons: tuple[str, ...] = _col(())
    cost_nusd: int = _col(0, not_null=True)
    verifier_only_cost_nusd: int = _col(0)
    savings_nusd: int = _col(0)
    enforcement: str = _col("allow")
    enforcement_message: str | None = _col(None)
    latency_ms: float = _col(0.0)
    error: str | None = _col(None)
    calls: tuple[CallRecord, ...] = _derived(())
    external_id: str | None = _col(None, since=M003)  # "<batch id>:<row id>" for `cascade batch`
    quality_threshold: float | None = _col(None, since=M005)  # what quality_score was compared with
    calibrated: bool = _col(False, since=M005, false_is_null=True)  # a calibrated probability
    signals: tuple[CallSignals, ...] = _derived(())  # live signals of draft calls (own table)


# --- tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # TEXT | INTEGER | REAL
    not_null: bool = False
    since: str | None = None  # the migration that added it; None: the one that made its table
    default: str | None = None  # an SQL literal
    references: str | None = None  # "table(column)"


@dataclass(frozen=True)
class Index:
    columns: tuple[str, ...]
    since: str = M001
    unique: bool = False
    name: str | None = None  # default: sqlite-utils' idx_<table>_<columns>


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    since: str = M001
    indexes: tuple[Index, ...] = ()
    without_rowid: bool = False

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def of_request(self) -> bool:
        """Its rows belong to a request (a ``request_id`` referencing ``requests``)."""
        return any(c.name == "request_id" and c.references == "requests(id)" for c in self.columns)


_TYPE_OF = {"str": TEXT, "int": INTEGER, "float": REAL, "bool": INTEGER, "tuple": TEXT}


def _column_fields(record: type) -> list[Field[Any]]:
    return [f for f in fields(record) if f.metadata.get("column", True)]


def _record_columns(record: type, references: dict[str, str] | None = None) -> tuple[Column, ...]:
    """A record's column fields as columns: the type from the annotation's first member
    (``str | None`` is text; a tuple of reasons is stored as JSON text; a flag as 0/1)."""
    out = []
    for f in _column_fields(record):
        base = str(f.type).split("|")[0].split("[")[0].strip()
        out.append(Column(f.name, _TYPE_OF[base], f.metadata.get("not_null", False) or f.name == "id",
                          f.metadata.get("since", M001), references=(references or {}).get(f.name)))
    return tuple(out)


REQUESTS = Table("requests", _record_columns(RequestRecord), ("id",), indexes=(
    Index(("user", "ts")), Index(("ts",)),
    Index(("external_id",), M003, unique=True, name="requests_external_id")))
CALLS = Table("calls", _record_columns(CallRecord, {"request_id": "requests(id)"}), ("id",), indexes=(
    Index(("request_id",)), Index(("ts",)), Index(("request_id", "seq"), M003, name="calls_request_seq")))
BUDGETS = Table("budgets", (
    Column("user", TEXT), Column("daily_nusd", INTEGER), Column("weekly_nusd", INTEGER),
    Column("monthly_nusd", INTEGER), Column("total_nusd", INTEGER), Column("updated_at", TEXT),
), ("user",), M002)
RESERVATIONS = Table("reservations", (
    Column("id", TEXT), Column("user", TEXT, True), Column("request_id", TEXT),
    Column("amount_nusd", INTEGER, True), Column("created_at", TEXT), Column("expires_at", TEXT, True),
    Column("pid", INTEGER), Column("host", TEXT),
), ("id",), M002, (Index(("user",), M002),))
BUDGET_WARNINGS = Table("budget_warnings", (
    Column("user", TEXT), Column("window", TEXT), Column("window_start", TEXT),
    Column("threshold", TEXT), Column("warned_at", TEXT),
), ("user", "window", "window_start", "threshold"), M002)
# running spend aggregates, kept by triggers on requests (dialect-specific: ledger/budgets.py)
SPEND_BUCKETS = Table("spend_buckets", (
    Column("user", TEXT, True), Column("bucket", TEXT, True), Column("cost_nusd", INTEGER, True, default="0"),
), ("user", "bucket"), M002, without_rowid=True)
SPEND_TOTALS = Table("spend_totals", (
    Column("user", TEXT), Column("cost_nusd", INTEGER, True, default="0"),
    Column("requests", INTEGER, True, default="0"),
), ("user",), M002)
BATCHES = Table("batches", (
    Column("id", TEXT), Column("output", TEXT), Column("input", TEXT), Column("started_at", TEXT),
), ("id",), M003, (Index(("output", "started_at"), M003),))
QUALITY_LABELS = Table("quality_labels", (
    Column("request_id", TEXT, True, references="requests(id)"), Column("source", TEXT, True),
    Column("correct", INTEGER),  # null: no verdict (a shadow call that failed or was blocked)
    Column("agreement", REAL), Column("method", TEXT), Column("note", TEXT),
    Column("status", TEXT, True, default="'ok'"), Column("call_id", TEXT),
    Column("created_at", TEXT, True), Column("updated_at", TEXT, True),
), ("request_id", "source"), M005)
CALL_SIGNALS = Table("call_signals", (
    Column("call_id", TEXT), Column("request_id", TEXT, True, references="requests(id)"),
    Column("logprobs", TEXT),  # JSON list of the chosen sample's token log-probabilities
    Column("samples", INTEGER), Column("agreement", REAL),
    Column("features", TEXT),  # JSON: the live features the quality check got
), ("call_id",), M005, (Index(("request_id",), M005, name="call_signals_request"),))
# `cascade serve`'s callers (ledger/keys.py): a key's hash and prefix, never the key
API_KEYS = Table("api_keys", (
    Column("prefix", TEXT), Column("user", TEXT, True), Column("name", TEXT), Column("key_hash", TEXT, True),
    Column("created_at", TEXT, True), Column("revoked_at", TEXT), Column("rpm", INTEGER),  # rpm: per minute
    # a key's own budget (NULL: no limit), besides its user's
    *(Column(f"{w}_nusd", INTEGER, since=M007) for w in ("daily", "weekly", "monthly", "total")),
), ("prefix",), M006, (Index(("key_hash",), M006, unique=True, name="api_keys_hash"),))
# which key made each request, for a key's own budget: written with its reservation, so a
# key's spend is its requests' recorded cost and its in-flight amount their reservations
API_KEY_REQUESTS = Table("api_key_requests", (
    Column("request_id", TEXT), Column("prefix", TEXT, True),
), ("request_id",), M007, (Index(("prefix",), M007, name="api_key_requests_prefix"),))
# a key's requests-per-minute window where several hosts share the ledger (PostgreSQL:
# ledger/postgres/keys.py; a SQLite ledger's servers, on one host, share a file beside it,
# server/limits.py):
# its requests counted per 1/60th of the window (bucket numbers on the database's clock)
API_KEY_WINDOWS = Table("api_key_windows", (
    Column("prefix", TEXT), Column("buckets", TEXT), Column("counts", TEXT),  # PostgreSQL: bigint[]
), ("prefix",), M008)
MIGRATIONS_TABLE = Table("_migrations", (
    Column("id", INTEGER), Column("name", TEXT), Column("applied_at", TEXT)), ("id",))

TABLES: tuple[Table, ...] = (REQUESTS, CALLS, BUDGETS, RESERVATIONS, BUDGET_WARNINGS, SPEND_BUCKETS,
                             SPEND_TOTALS, BATCHES, QUALITY_LABELS, CALL_SIGNALS, API_KEYS, API_KEY_REQUESTS,
                             API_KEY_WINDOWS)


# --- records <-> rows ------------------------------------------------------------------

REQUEST_COLUMNS = REQUESTS.names
CALL_COLUMNS = CALLS.names


def _encoders(record: type) -> tuple[tuple[str, Any], ...]:
    """(field, how its value is stored) for each column field of ``record``."""
    out = []
    for f in _column_fields(record):
        base = str(f.type).split("|")[0].split("[")[0].strip()
        if base == "tuple":
            out.append((f.name, _json_list))
        elif f.metadata.get("false_is_null"):
            out.append((f.name, _true_or_null))
        elif base == "bool":
            out.append((f.name, _flag))
        else:
            out.append((f.name, None))
    return tuple(out)


def _json_list(value: Iterable[str]) -> str:
    return json.dumps(list(value))


def _true_or_null(value: bool) -> int | None:
    return 1 if value else None


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


_REQUEST_ENCODERS = _encoders(RequestRecord)
_CALL_ENCODERS = _encoders(CallRecord)


def _row(record: Any, encoders: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    # shallow: dataclasses.asdict deep-copies every value, a request's calls included,
    # which cost more than the insert itself
    return {name: getattr(record, name) if enc is None else enc(getattr(record, name))
            for name, enc in encoders}


def request_row(record: RequestRecord) -> dict[str, Any]:
    """A request as its ``requests`` row (column -> stored value), in column order."""
    return _row(record, _REQUEST_ENCODERS)


def call_row(record: CallRecord) -> dict[str, Any]:
    return _row(record, _CALL_ENCODERS)


def _decoders(record: type) -> tuple[tuple[str, Any, Any], ...]:
    """(field, decode, default for NULL) of each column field: NULL reads back as the
    field's default, so rows written before a column existed read as records."""
    out = []
    for f in _column_fields(record):
        base = str(f.type).split("|")[0].split("[")[0].strip()
        default = f.default if f.default is not MISSING else None
        decode = _reasons if base == "tuple" else (_as_bool if "bool" in str(f.type) else None)
        out.append((f.name, decode, default))
    return tuple(out)


def _reasons(text: Any) -> tuple[str, ...]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _as_bool(value: Any) -> bool:
    return bool(value)


_REQUEST_DECODERS = _decoders(RequestRecord)
_CALL_DECODERS = _decoders(CallRecord)


def _from_row(row: Mapping[str, Any], decoders: tuple[tuple[str, Any, Any], ...]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, decode, default in decoders:
        value = row.get(name)
        if value is None:
            data[name] = () if decode is _reasons else default
        else:
            data[name] = value if decode is None else decode(value)
    return data


def call_from_row(row: Mapping[str, Any]) -> CallRecord:
    """A ``calls`` row (a mapping of column to stored value) as its record."""
    return CallRecord(**_from_row(row, _CALL_DECODERS))


def request_from_row(row: Mapping[str, Any], calls: Iterable[Mapping[str, Any] | CallRecord] = ()
                     ) -> RequestRecord:
    """A ``requests`` row and its calls' rows (or records) as a record."""
    call_records = tuple(c if isinstance(c, CallRecord) else call_from_row(c) for c in calls)
    return RequestRecord(**_from_row(row, _REQUEST_DECODERS), calls=call_records)


# --- the fields a request derives from its calls: the one place -----------------------


def answering(calls: Sequence[CallRecord]) -> list[CallRecord]:
    """The calls that each stand for one model of the chain (a draft's extra sample calls
    are part of its draft)."""
    return [c for c in calls if c.role != "sample"]


@dataclass(frozen=True)
class Derived:
    """What a request's row says about its calls."""

    draft_accepted: bool
    escalated: bool
    verifier_only_cost_nusd: int
    savings_nusd: int


def derive(status: str, calls: Sequence[CallRecord], cost_nusd: int,
           verifier_only_nusd: int | None = None) -> Derived:
    """Draft accepted (the request ended on its draft: one answering call, a draft, and
    accepted), escalated (more than one model answered), the verifier-only cost (what the
    chain's last model alone would have cost: the caller's estimate, else the calls' own
    cost) and the savings (that minus the cost: negative when a draft was paid for and
    thrown away). A request that did not end well saved nothing and had no baseline."""
    ok = status == "ok"
    models = answering(calls)
    accepted = ok and len(models) == 1 and models[0].role == "draft" and bool(models[0].accepted)
    baseline = (cost_nusd if verifier_only_nusd is None else verifier_only_nusd) if ok else 0
    return Derived(accepted, len(models) > 1, baseline, savings(baseline, cost_nusd) if ok else 0)


def savings(verifier_only_nusd: int, cost_nusd: int) -> int:
    """Positive when cheaper than the last model alone; negative when a draft was paid
    for and then thrown away."""
    return verifier_only_nusd - cost_nusd


# --- the export's columns, which are also the import's mapping -------------------------


@dataclass(frozen=True)
class ExportColumn:
    """One column of `cascade export` (docs/ledger-columns.md), read back by `import`.

    ``source``: the ``requests`` (``r``) or ``calls`` (``c``) field it shows; ``kind``:
    "value" (numbers, our timestamps), "code" (ids and status words: never hold a comma,
    a quote or a line break; the importer refuses such values), "text" (anything),
    "money" (nano-dollars shown as an exact USD decimal), "flag" (true/false), "json" (a
    JSON text). ``once``: shown on a request's first row only (request-level amounts, so
    a spreadsheet's column sum is right)."""

    name: str
    source: str  # "r.<field>" or "c.<field>"
    kind: str = "value"
    once: bool = False
    fallback: str | None = None  # shown when ``source`` is NULL (a request without calls)

    @property
    def table(self) -> str:
        return REQUESTS.name if self.source.startswith("r.") else CALLS.name

    @property
    def field(self) -> str:
        return self.source[2:]

    @property
    def type(self) -> str:
        table = REQUESTS if self.table == REQUESTS.name else CALLS
        return table.column(self.field).type


EXPORT_COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn("id", "c.id", "code"),
    ExportColumn("request_id", "r.id", "code"),
    ExportColumn("timestamp", "c.ts", fallback="r.ts"),  # our fixed format: never needs quoting
    ExportColumn("user", "r.user", "text"),
    ExportColumn("model", "c.model", "text"),
    ExportColumn("model_id", "c.model_id", "text"),
    ExportColumn("provider", "c.provider", "text"),
    ExportColumn("role", "c.role", "code"),
    ExportColumn("seq", "c.seq"),
    ExportColumn("status", "c.status", "code"),
    ExportColumn("input_tokens", "c.input_tokens"),
    ExportColumn("output_tokens", "c.output_tokens"),
    ExportColumn("cached_tokens", "c.cached_tokens"),
    ExportColumn("reasoning_tokens", "c.reasoning_tokens"),
    ExportColumn("cost", "c.cost_nusd", "money"),
    ExportColumn("cost_source", "c.cost_source", "code"),
    ExportColumn("latency_ms", "c.latency_ms"),
    ExportColumn("attempts", "c.attempts"),
    ExportColumn("finish_reason", "c.finish_reason", "text"),
    ExportColumn("quality_score", "c.quality_score"),
    ExportColumn("quality_reasons", "c.quality_reasons", "json"),
    ExportColumn("accepted", "c.accepted", "flag"),
    ExportColumn("error", "c.error", "text"),
    ExportColumn("request_status", "r.status", "code"),
    ExportColumn("request_error", "r.error", "text"),
    ExportColumn("domain", "r.domain", "text"),
    ExportColumn("domain_confidence", "r.domain_confidence"),
    ExportColumn("draft_accepted", "r.draft_accepted", "flag"),
    ExportColumn("escalated", "r.escalated", "flag"),
    ExportColumn("verifier_only_cost", "r.verifier_only_cost_nusd", "money", once=True),
    ExportColumn("savings", "r.savings_nusd", "money", once=True),
    ExportColumn("enforcement", "r.enforcement", "code"),
    ExportColumn("enforcement_message", "r.enforcement_message", "text"),
    ExportColumn("request_latency_ms", "r.latency_ms"),
    ExportColumn("external_id", "r.external_id", "text"),
    ExportColumn("query", "r.query", "text"),
    ExportColumn("answer", "c.answer", "text"),
)
EXPORT_NAMES: tuple[str, ...] = tuple(c.name for c in EXPORT_COLUMNS)
EXPORT_BY_NAME: dict[str, ExportColumn] = {c.name: c for c in EXPORT_COLUMNS}
