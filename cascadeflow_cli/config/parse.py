"""Reading `cascadeflow.toml` (tomllib) into an AppConfig.

Validation is strict on purpose: an unknown key is almost always a typo that would
otherwise silently fall back to a default (a budget that is never enforced, a price
that is never used). Every error names the file and the key.
"""

from __future__ import annotations

import math
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cascadeflow_cli.config.settings import (
    BUDGET_WINDOWS,
    CLIENTS,
    DEFAULT_MODELS,
    ENFORCEMENT_MODES,
    HOOK_NAMES,
    QUALITY_PRESETS,
    AppConfig,
    BudgetsConfig,
    CascadeConfig,
    LedgerConfig,
    ModelConfig,
    QualityConfig,
    TeamBudget,
    TelemetryConfig,
)
from cascadeflow_cli.dburl import parse_location
from cascadeflow_cli.errors import ConfigError, InputError
from cascadeflow_cli.files import expanded
from cascadeflow_cli.money import MAX_COUNT, amount_problem
from cascadeflow_cli.text import user_name

MAX_TIMEOUT_S = 86_400.0  # a model's timeout per attempt, seconds


def parse_config(text: str, path: Path | None = None) -> AppConfig:
    where = str(path) if path else "<config>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    return _Parser(where, path).config(raw)


def is_http_url(url: str) -> bool:
    """An http(s) URL with a host and a valid port (a telemetry endpoint: in the config,
    and from the OTEL_* environment, telemetry/settings.check_endpoint)."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok


# --- validation -------------------------------------------------------------------


class _Parser:
    """Turns the raw TOML mapping into an AppConfig, naming ``file: key`` on any error."""

    def __init__(self, where: str, path: Path | None) -> None:
        self.where = where
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key}: {problem}")

    def table(self, raw: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(key, "must be a table")
        for name in raw:
            if name not in allowed and name.lower().replace("-", "_") in ("api_key", "apikey"):
                # said without "api_key: ...", which the redactor reads as a key's value: the
                # line once came out as "models[0].api_key: [redacted] key (allowed: ...)"
                where = f"{key}.{name}" if key else name
                raise ConfigError(f"{self.where}: {where} is not a setting: a key stays out of the "
                                  "config; name the variable that holds it with api_key_env")
            if name not in allowed:
                raise self.fail(
                    f"{key}.{name}" if key else name, f"unknown key (allowed: {', '.join(allowed)})"
                )
        return raw

    def typed(
        self,
        raw: Mapping[str, Any],
        section: str,
        name: str,
        check: Callable[[Any], bool],
        expected: str,
        default: Any = None,
    ) -> Any:
        if name not in raw:
            return default
        value = raw[name]
        if not check(value):
            raise self.fail(f"{section}.{name}" if section else name, f"must be {expected}, got {value!r}")
        return value

    def string(
        self, raw: Mapping[str, Any], section: str, name: str, default: str | None = None
    ) -> str | None:
        return self.typed(
            raw,
            section,
            name,
            lambda v: isinstance(v, str) and v.strip() != "",
            "a non-empty string",
            default,
        )

    def number(
        self,
        raw: Mapping[str, Any],
        section: str,
        name: str,
        *,
        minimum: float = 0.0,
        maximum: float = math.inf,
        default: float | None = None,
    ) -> float | None:
        value = self.typed(
            raw,
            section,
            name,
            lambda v: (
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and math.isfinite(v)
                and minimum <= v <= maximum
            ),
            f"a number between {minimum:g} and {maximum:g}"
            if maximum != math.inf
            else f"a number >= {minimum:g}",
            default,
        )
        return None if value is None else float(value)

    def whole(self, raw: Mapping[str, Any], section: str, name: str, *, minimum: int = 0,
              maximum: int, default: int | None = None) -> int | None:
        """A count (tokens, retries): ``max_tokens = 10.5`` was cut to 10 without a word.
        A float that is whole (``10.0``) is that count."""
        value = self.typed(
            raw, section, name,
            lambda v: (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                       and float(v).is_integer() and minimum <= v <= maximum),
            f"a whole number between {minimum:,} and {maximum:,}", default)
        return None if value is None else int(value)

    def price(self, raw: Mapping[str, Any], section: str, name: str) -> Decimal | None:
        value = self.number(raw, section, name)
        if value is None:
            return None
        # via str() so 0.15 becomes Decimal("0.15"), not its binary approximation
        amount = Decimal(str(raw[name]))
        # money-path: the per-value maximum; a budget that would round to $0 is refused
        problem = amount_problem(amount, allow_tiny=section != "budgets.default")
        if problem:
            raise self.fail(f"{section}.{name}", problem)
        return amount

    def names(self, raw: Mapping[str, Any], section: str, name: str) -> tuple[str, ...] | None:
        value = self.typed(
            raw,
            section,
            name,
            lambda v: isinstance(v, list) and len(v) >= 1 and all(isinstance(x, str) and x for x in v),
            "a non-empty list of model names",
        )
        return None if value is None else tuple(value)

    def config(self, raw: dict[str, Any]) -> AppConfig:
        self.table(
            raw, "", ("ledger", "models", "cascade", "budgets", "domains", "hooks", "telemetry", "quality")
        )
        models = self.models(raw.get("models"))
        cascade = self.cascade(raw.get("cascade", {}))
        config = AppConfig(
            models=models,
            cascade=cascade,
            ledger=self.ledger(raw.get("ledger", {})),
            budgets=self.budgets(raw.get("budgets", {})),
            domains=self.domains(raw.get("domains", {})),
            hooks=self.hooks(raw.get("hooks", {})),
            telemetry=self.telemetry(raw.get("telemetry", {})),
            source=self.path,
            quality=self.quality(raw.get("quality", {})),
            custom_domains=self.custom_domains(raw.get("domains", {})),
        )
        self.check_chains(config)
        return config

    def models(self, raw: Any) -> dict[str, ModelConfig]:
        if raw is None:
            return dict(DEFAULT_MODELS)
        if not isinstance(raw, list) or not raw:
            raise self.fail("models", "must be a non-empty array of [[models]] tables")
        allowed = (
            "name",
            "model",
            "api_base",
            "api_key_env",
            "input_cost_per_million",
            "output_cost_per_million",
            "cached_input_cost_per_million",
            "timeout",
            "max_retries",
            "retry_delay",
            "max_output_tokens",
            "client",
        )
        result: dict[str, ModelConfig] = {}
        for i, entry in enumerate(raw):
            sec = f"models[{i}]"
            self.table(entry, sec, allowed)
            name = self.string(entry, sec, "name")
            model = self.string(entry, sec, "model")
            if name is None or model is None:
                raise self.fail(sec, "needs both 'name' and 'model'")
            # a line break in it split `cascade models`' row and reached serve's headers
            self.name(name, f"{sec}.name", "the model name")
            sec = f"models.{name}"
            if name in result:
                raise self.fail(sec, "defined twice")
            client = self.string(entry, sec, "client", "auto")
            if client not in CLIENTS:
                raise self.fail(f"{sec}.client", f"must be one of {', '.join(CLIENTS)}")
            max_out = self.whole(entry, sec, "max_output_tokens", minimum=1, maximum=MAX_COUNT)
            api_base = self.string(entry, sec, "api_base")
            if api_base and "@" in urlsplit(api_base).netloc:
                # the client looked the whole user:password@host up as a host name ("Name
                # or service not known", hostile-4); a key belongs in api_key_env's variable
                raise self.fail(f"{sec}.api_base", "must not hold a user or password (user:...@host); "
                                "put the key in the variable named by api_key_env")
            result[name] = ModelConfig(
                name=name,
                model=model,
                api_base=api_base,
                api_key_env=self.string(entry, sec, "api_key_env"),
                input_cost_per_million=self.price(entry, sec, "input_cost_per_million"),
                output_cost_per_million=self.price(entry, sec, "output_cost_per_million"),
                cached_input_cost_per_million=self.price(entry, sec, "cached_input_cost_per_million"),
                # at most a day: 1e12 s overflowed the socket's time_t after the call's
                # in-flight line was written, so a call never sent was charged (hostile-13)
                timeout=self.number(entry, sec, "timeout", minimum=0.001, maximum=MAX_TIMEOUT_S,
                                    default=60.0),
                max_retries=self.whole(entry, sec, "max_retries", maximum=20, default=2),
                retry_delay=self.number(entry, sec, "retry_delay", maximum=60, default=0.5),
                max_output_tokens=max_out,
                client=client,
            )
            has_in = result[name].input_cost_per_million is not None
            has_out = result[name].output_cost_per_million is not None
            if has_in != has_out:
                raise self.fail(
                    sec, "set both input_cost_per_million and output_cost_per_million, or neither"
                )
        return result

    def cascade(self, raw: Any) -> CascadeConfig:
        sec = "cascade"
        self.table(raw, sec, ("models", "quality_threshold", "quality_preset", "max_tokens", "system"))
        preset = self.string(raw, sec, "quality_preset", "balanced")
        if preset not in QUALITY_PRESETS:
            raise self.fail(f"{sec}.quality_preset", f"must be one of {', '.join(QUALITY_PRESETS)}")
        return CascadeConfig(
            models=self.names(raw, sec, "models") or CascadeConfig.models,
            quality_threshold=self.number(raw, sec, "quality_threshold", maximum=1.0),
            quality_preset=preset,
            max_tokens=self.whole(raw, sec, "max_tokens", minimum=1, maximum=MAX_COUNT, default=1024),
            system=self.string(raw, sec, "system"),
        )

    def quality(self, raw: Any) -> QualityConfig:
        sec = "quality"
        self.table(
            raw, sec,
            ("calibration", "target_quality", "shadow_rate", "logprobs", "consistency_samples",
             "execute_code"),
        )
        path = self.string(raw, sec, "calibration")
        resolved = self.file_path(path)
        target = self.number(raw, sec, "target_quality", minimum=0.01, maximum=1.0)
        samples = self.typed(raw, sec, "consistency_samples",
                             lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 20,
                             "a whole number from 1 to 20", 1)
        return QualityConfig(
            calibration=resolved,
            target_quality=target,
            shadow_rate=float(self.number(raw, sec, "shadow_rate", maximum=1.0, default=0.0) or 0.0),
            logprobs=self.typed(raw, sec, "logprobs", lambda v: isinstance(v, bool), "true or false", False),
            consistency_samples=samples,
            execute_code=self.typed(raw, sec, "execute_code", lambda v: isinstance(v, bool), "true or false",
                                    None),
        )

    def ledger(self, raw: Any) -> LedgerConfig:
        sec = "ledger"
        self.table(raw, sec, ("path", "timezone", "store_prompts", "url", "password_env"))
        path = self.string(raw, sec, "path")
        url, password_env = self.string(raw, sec, "url"), self.string(raw, sec, "password_env")
        if url is not None:
            if path is not None:
                raise self.fail(f"{sec}.url", "give either ledger.path or ledger.url, not both")
            try:
                parse_location(url)
            except ConfigError as exc:
                raise self.fail(f"{sec}.url", str(exc)) from None
        tz = self.string(raw, sec, "timezone", "UTC")
        check_timezone(tz, lambda problem: self.fail(f"{sec}.timezone", problem))
        resolved = self.file_path(path)
        return LedgerConfig(
            path=resolved,
            url=url,
            password_env=password_env,
            timezone=tz,
            store_prompts=self.typed(
                raw, sec, "store_prompts", lambda v: isinstance(v, bool), "true or false", True
            ),
        )

    def budgets(self, raw: Any) -> BudgetsConfig:
        sec = "budgets"
        self.table(
            raw,
            sec,
            (
                "mode",
                "warn_at",
                "degrade_at",
                "block_at",
                "degraded_models",
                "default",
                "fallback_input_cost_per_million",
                "fallback_output_cost_per_million",
                "teams",
            ),
        )
        mode = self.string(raw, sec, "mode", "warn")
        if mode not in ENFORCEMENT_MODES:
            raise self.fail(f"{sec}.mode", f"must be one of {', '.join(ENFORCEMENT_MODES)}")
        default_raw = self.table(raw.get("default", {}), f"{sec}.default", BUDGET_WINDOWS)
        default = {w: self.price(default_raw, f"{sec}.default", w) for w in default_raw}
        budgets = BudgetsConfig(
            mode=mode,
            warn_at=self.number(raw, sec, "warn_at", maximum=10, default=0.8),
            degrade_at=self.number(raw, sec, "degrade_at", maximum=10, default=0.9),
            block_at=self.number(raw, sec, "block_at", minimum=0.01, maximum=10, default=1.0),
            degraded_models=self.names(raw, sec, "degraded_models"),
            default={w: v for w, v in default.items() if v is not None},
            fallback_input_cost_per_million=self.price(raw, sec, "fallback_input_cost_per_million"),
            fallback_output_cost_per_million=self.price(raw, sec, "fallback_output_cost_per_million"),
            teams=self.teams(raw.get("teams", {}), f"{sec}.teams"),
        )
        if not budgets.warn_at <= budgets.degrade_at <= budgets.block_at:
            raise self.fail(sec, "thresholds must satisfy warn_at <= degrade_at <= block_at")
        return budgets

    def teams(self, raw: Any, sec: str) -> dict[str, TeamBudget]:
        teams = {}
        for name in self.table(raw, sec, tuple(raw) if isinstance(raw, dict) else ()):
            where = f"{sec}.{name}"
            team = self.table(raw[name], where, ("members", *BUDGET_WINDOWS))
            members = self.typed(team, where, "members", lambda v: isinstance(v, list) and len(v) >= 1
                                 and all(isinstance(x, str) and x.strip() for x in v),
                                 "a non-empty list of user names")
            if members is None:
                raise self.fail(f"{where}.members", "must list at least one user")
            prices = {w: self.price(team, where, w) for w in BUDGET_WINDOWS if w in team}
            limits = {w: v for w, v in prices.items() if v is not None}
            if not limits:
                raise self.fail(where, f"give at least one of {', '.join(BUDGET_WINDOWS)}")
            team_name = self.name(name, where)
            if team_name in teams:  # two tables that look alike were two limits on the same members
                raise self.fail(where, f"the same team name as budgets.teams.{team_name} (one typed "
                                "composed, the other decomposed): give it once")
            teams[team_name] = TeamBudget(members=tuple(self.member(m, f"{where}.members") for m in members),
                                          limits=limits)
        return teams

    def name(self, name: str, key: str, what: str = "the team name") -> str:
        """A team's, model's or chain's name by ``user_name``'s rule (NFC, no spoofing or
        control characters): "José" typed composed and decomposed were two teams, each with
        its own limit (hostile-18)."""
        try:
            return user_name(name, what)
        except InputError as exc:
            raise self.fail(key, str(exc)) from None

    def member(self, value: str, key: str) -> str:
        """A team member's name as ``user_name`` makes every user name (NFC: "José"
        typed either way is one member), refused as `--user` refuses it."""
        try:
            return user_name(value)
        except InputError as exc:
            raise self.fail(key, f"{value!r}: {exc}") from None

    def file_path(self, path: str | None) -> Path | None:
        """A path in the config: ``~`` expanded, a relative one relative to the config file."""
        if path is None:
            return None
        resolved = expanded(Path(path))
        if not resolved.is_absolute() and self.path is not None:
            resolved = self.path.parent / resolved
        return resolved

    def domains(self, raw: Any) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            raise self.fail("domains", "must be a table of domain = [model names]")
        chains = {d: self.names(raw, "domains", d) or () for d in raw if d != "custom"}
        for name in chains:  # served as model "cascade/<name>", written into serve's access log
            self.name(name, f"domains.{name!r}", "the domain name")
        custom = self.custom_domains(raw)
        if chains:
            from cascadeflow_cli.routing.custom import domain_names

            detected = domain_names(custom)
            for name in chains:  # "Code" is never detected: its chain was silently never used
                plain = unicodedata.normalize("NFC", name).strip().lower()
                if name not in detected and plain in detected:
                    raise self.fail(f"domains.{name}", f"the domain is detected as {plain!r}, so a chain "
                                    f"for {name!r} would never be used; name it domains.{plain}")
        for name, domain in custom.items():  # a custom domain's own chain
            if domain.models and name in chains:
                raise self.fail(f"domains.custom.{name}.models", f"domains.{name} already names a chain")
            if domain.models:
                chains[name] = domain.models
        return chains

    def custom_domains(self, raw: Any) -> dict[str, Any]:
        """[domains.custom.NAME] tables (see routing.custom); parsed once per config."""
        if not isinstance(raw, dict) or "custom" not in raw:
            return {}
        if not hasattr(self, "_custom"):
            from cascadeflow_cli.routing.custom import parse_custom

            base = self.path.parent if self.path is not None else None
            self._custom = parse_custom(raw["custom"], base, self.fail, self.names)
        return self._custom

    def hooks(self, raw: Any) -> dict[str, str]:
        self.table(raw, "hooks", HOOK_NAMES)
        result = {}
        for name in raw:
            value = self.string(raw, "hooks", name)
            if value is None or ":" not in value:
                raise self.fail(f"hooks.{name}", "must be 'module:function'")
            result[name] = value
        return result

    def telemetry(self, raw: Any) -> TelemetryConfig:
        sec = "telemetry"
        flags = ("enabled", "emit_cost", "capture_content", "record_user")
        self.table(raw, sec, (*flags, "endpoint", "flush_timeout"))
        default = TelemetryConfig()
        values = {
            n: self.typed(raw, sec, n, lambda v: isinstance(v, bool), "true or false", getattr(default, n))
            for n in flags
        }
        endpoint = self.string(raw, sec, "endpoint")
        if endpoint is not None and not is_http_url(endpoint):  # `config show` passed it (hostile-13)
            raise self.fail(f"{sec}.endpoint", f"{endpoint!r} is not an http:// or https:// URL with a host")
        return TelemetryConfig(
            endpoint=endpoint,
            flush_timeout=self.number(raw, sec, "flush_timeout", minimum=0.0, maximum=60.0, default=2.0),
            **values,
        )

    def check_chains(self, config: AppConfig) -> None:
        chains = {"cascade.models": config.cascade.models}
        if config.budgets.degraded_models:
            chains["budgets.degraded_models"] = config.budgets.degraded_models
        chains.update({f"domains.{d}": c for d, c in config.domains.items()})
        for key, chain in chains.items():
            for index, name in enumerate(chain):
                if name not in config.models:
                    known = ", ".join(sorted(config.models))
                    raise self.fail(key, f"names undefined model {name!r} (defined: {known})")
                if name in chain[:index]:  # escalating to the model that just failed: paid twice
                    raise self.fail(key, f"names model {name!r} twice (a chain escalates to a "
                                    "different model)")


def check_timezone(name: str, fail: Callable[[str], Exception]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown IANA time zone {name!r}") from None
