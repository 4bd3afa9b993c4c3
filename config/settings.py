"""Process settings from `SIGNAL_*` environment variables (and a `.env` file), DESIGN 4.1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.secret_refs import DEFAULT_PATTERNS, EnvAllowList

_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?\s*([KMGT]i?)?B", re.IGNORECASE)
"""A size as DuckDB's memory_limit and max_temp_directory_size take it."""
_LEAST_MEMORY = 64 * 1000**2
MIN_BROKER_MB = 64
"""The least `SIGNAL_EMBEDDED_BROKER_MAX_MB`: a new embedded broker holding the topics and a
group's offsets is some 20-40 MiB, so a lower limit would roll it over again and again."""


def size_bytes(value: str) -> float:
    """A size matching `_SIZE` in bytes (KB = 1000, KiB = 1024, as DuckDB counts)."""
    found = _SIZE.fullmatch(value.strip())
    if found is None:
        raise ValueError(f"not a size: {value!r}")
    unit = (found.group(2) or "").upper()
    power = " KMGT".index(unit[:1]) if unit else 0
    base = 1024 if unit.endswith("I") else 1000
    number = float(value.strip()[: found.start(2) if unit else found.end() - 1].strip())
    return number * float(base**power)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNAL_", env_file=".env", extra="ignore")

    broker: str | None = Field(
        default=None, description="Kafka URL (kafka://host:9092); unset starts the embedded broker."
    )
    data_dir: Path = Field(
        default=Path("./var"), description="DuckDB file, API token, embedded-broker state."
    )
    api: str = Field(default="127.0.0.1:6066", description="host:port the operator API binds.")
    recovery_every_s: float = Field(
        default=15.0, gt=0, description="Seconds between control's recovery scans."
    )
    recovery_grace_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a change or queued delivery may wait for its outcome before "
        "recovery re-drives it (and how long the first redrive waits for its answer; each "
        "further one waits twice as long as the one before).",
    )
    recovery_horizon_days: float = Field(
        default=7.0, gt=0, description="Recovery looks at changes received this many days back."
    )
    recovery_max_redrives: int = Field(
        default=5, ge=1, description="Redrives per (change, flow) before it counts as stranded."
    )
    recovery_batch: int = Field(
        default=2000, ge=1, description="Pairs (and changes) recovery takes per scan and kind."
    )
    recovery_defer_max_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds a change whose event control does not know may wait (deferred) "
        "before recovery records it as failed for the flows waiting for the event.",
    )
    recovery_defer_limit: int = Field(
        default=10_000,
        ge=0,
        description="Changes that may wait deferred at once; recovery records one more as "
        "failed at once.",
    )
    secret_env_allowlist: str = Field(
        default=",".join(DEFAULT_PATTERNS),
        description="Patterns (*, ?) of the environment variables a ${VAR} secret reference may "
        "name, separated by commas; empty: none. NAME@HOST binds an entry to the hosts its "
        "value may be sent to (identity and service URL); an unbound entry goes to any host.",
    )
    stop_deadline_s: float = Field(
        default=20.0,
        gt=0,
        description="Seconds control or a pipeline worker may take to stop after SIGTERM/SIGINT "
        "before it exits at once (the ledger keeps what was committed).",
    )
    config_key_file: Path | None = Field(
        default=None,
        description="Key sealing the secrets on signal-config; default <data dir>/config-key.",
    )
    db_memory_limit: str = Field(
        default="1GB",
        description="Memory control's DuckDB may use (operators' /sql statements included), "
        "e.g. 512MB, 2GB; past it a statement fails with DuckDB's out-of-memory error.",
    )
    db_temp_limit: str = Field(
        default="2GB",
        description="Disk control's DuckDB may use for temporary files (a sort or join "
        "bigger than the memory limit spills there), e.g. 2GB.",
    )
    retain_payload_days: int = Field(
        default=90,
        ge=1,
        le=36_500,
        description="Days a change's full payload (and a rejected record's text) is kept; "
        "after that the payload is redacted and the row, with its figures, stays.",
    )
    retain_outcomes_days: int = Field(
        default=400,
        ge=1,
        le=36_500,
        description="Days outcomes, outcome attempts, Marketo calls, delivery marks and "
        "recovery entries are kept; older ones are dropped and counted in hourly rollups.",
    )
    retain_retry_days: int = Field(
        default=30,
        ge=0,
        le=36_500,
        description="Days a resolved retry item is kept after it was resolved (open items "
        "stay until resolved).",
    )
    retention_batch: int = Field(
        default=5000,
        ge=100,
        le=1_000_000,
        description="Rows one retention step drops or redacts in one short transaction.",
    )

    breaker_threshold: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Connection-wide Marketo call failures in a row (each after the client's own "
        "retries) that open a connection's circuit breaker and park its deliveries.",
    )
    breaker_open_s: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="Seconds an opened breaker waits before its first probe call; doubled "
        "after each failed probe, up to SIGNAL_BREAKER_MAX_OPEN_S.",
    )
    breaker_max_open_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="The longest wait between two probes of an open breaker.",
    )

    embedded_broker_max_mb: int = Field(
        default=512,
        description="Memory (resident, MiB) past which `csignal run` rolls its embedded broker "
        "over to a new, empty one (0: never). The embedded broker keeps every message in memory "
        "and its fetches slow down as it fills; the ledger holds what a rollover drops.",
    )
    fresh_broker: bool = Field(
        default=False,
        description="Set by `csignal run` for the control it starts against an embedded broker "
        "it has just started empty: recovery re-drives what predates the start at once.",
    )

    @field_validator("embedded_broker_max_mb")
    @classmethod
    def _broker_limit(cls, value: int) -> int:
        if value != 0 and not MIN_BROKER_MB <= value <= 1_048_576:
            raise ValueError(
                f"expected 0 (never roll over) or {MIN_BROKER_MB} to 1048576 MiB, got {value}"
            )
        return value

    @field_validator("broker")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("secret_env_allowlist")
    @classmethod
    def _allowlist(cls, value: str) -> str:
        EnvAllowList.parse(value)
        return value

    @field_validator("db_memory_limit", "db_temp_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if _SIZE.fullmatch(value.strip()) is None:
            raise ValueError(
                f"expected a size such as 512MB, 1GB or 1.5GiB (B, KB, MB, GB, TB, KiB, MiB, "
                f"GiB, TiB), got {value!r}"
            )
        return value.strip()

    @field_validator("db_memory_limit")
    @classmethod
    def _enough_memory(cls, value: str) -> str:
        if size_bytes(value) < _LEAST_MEMORY:
            raise ValueError(
                f"expected at least 64MB (the ledger's own work needs it), got {value!r}"
            )
        return value

    @field_validator("api")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port (e.g. 127.0.0.1:6066), got {value!r}")
        return value

    @model_validator(mode="after")
    def _breaker_waits(self) -> Settings:
        if self.breaker_open_s > self.breaker_max_open_s:
            raise ValueError(
                f"SIGNAL_BREAKER_OPEN_S: expected at most SIGNAL_BREAKER_MAX_OPEN_S "
                f"({self.breaker_max_open_s:g}), got {self.breaker_open_s:g}"
            )
        return self

    @model_validator(mode="after")
    def _horizon_beyond_grace(self) -> Settings:
        if self.recovery_horizon_days * 86400.0 <= self.recovery_grace_s:
            raise ValueError("SIGNAL_RECOVERY_HORIZON_DAYS must be longer than the grace")
        # Recovery re-publishes payloads and reads outcomes of its horizon: retention must not
        # take them first.
        for name, days in (
            ("SIGNAL_RETAIN_PAYLOAD_DAYS", self.retain_payload_days),
            ("SIGNAL_RETAIN_OUTCOMES_DAYS", self.retain_outcomes_days),
        ):
            if days <= self.recovery_horizon_days:
                raise ValueError(
                    f"{name}: expected more days than SIGNAL_RECOVERY_HORIZON_DAYS "
                    f"({self.recovery_horizon_days:g}; recovery re-drives from what it keeps), "
                    f"got {days}"
                )
        return self

    @property
    def env_allowlist(self) -> EnvAllowList:
        return EnvAllowList.parse(self.secret_env_allowlist)

    @property
    def config_key_path(self) -> Path:
        """The key control seals connection secrets with before publishing them."""
        return self.config_key_file or self.data_dir / "config-key"

    @property
    def api_host(self) -> str:
        return self.api.rpartition(":")[0]

    @property
    def api_port(self) -> int:
        return int(self.api.rpartition(":")[2])

    @property
    def api_url(self) -> str:
        return f"http://{self.api}"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "signal.duckdb"

    @property
    def api_token_path(self) -> Path:
        return self.data_dir / "api-token"

    @property
    def api_read_only_token_path(self) -> Path:
        """The viewers' token: the API answers reads only (`csignal console --read-only`)."""
        return self.data_dir / "api-token-read-only"

    @property
    def account_path(self) -> Path:
        """The stored account configuration (export form: secrets only as `${VAR}` references)."""
        return self.data_dir / "account.yaml"


def settings_problems(error: ValidationError) -> str:
    """`Settings`' refusal as an operator reads it: each variable by its environment name, the
    value it had and what was expected, one per line."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        value = problem.get("input")
        message = _plain(problem)
        if not field:
            # A rule across settings (a model validator) names its variables itself.
            lines.append(message)
            continue
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        lines.append(f"SIGNAL_{field.upper()}{shown}: {message}")
    return "\n".join(lines)


_BOUNDS = {
    "greater_than_equal": "at least {ge}",
    "greater_than": "more than {gt}",
    "less_than_equal": "at most {le}",
    "less_than": "less than {lt}",
}


def _plain(problem: Any) -> str:
    """Pydantic's message in the README's words: "expected at least 100" rather than "Input
    should be greater than or equal to 100", a rule's own text without "Value error, "."""
    kind, ctx = problem["type"], problem.get("ctx") or {}
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), None)
        if isinstance(bound, int | float):
            return "expected " + _BOUNDS[kind].format(**{k: f"{v:,}" for k, v in ctx.items()})
    message = str(problem["msg"])
    return message.removeprefix("Value error, ")
