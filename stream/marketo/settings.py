"""What the client needs to reach one Marketo instance, and how hard it may push it.

Marketo's limits are per instance and shared by every integration on it, so the rate is expressed
as a share of the instance's budget rather than an absolute number.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

MARKETO_CALLS_PER_WINDOW = 100
MARKETO_WINDOW_S = 20.0
MARKETO_MAX_CONCURRENT = 10
MARKETO_LEAD_BATCH = 300
MARKETO_CAMPAIGN_BATCH = 100
MARKETO_MAX_BODY_BYTES = 1_000_000

PositiveSeconds = Annotated[float, Field(gt=0)]


def _http_url(value: str) -> str:
    value = value.strip().rstrip("/")
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest:
        raise ValueError("must be an http:// or https:// URL")
    return value


class MarketoSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    connection_id: str = Field(default="default", min_length=1)
    base_url: str = Field(description="REST endpoint, e.g. https://123-ABC-456.mktorest.com")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    identity_url: str | None = Field(
        default=None, description="token endpoint; default <base_url>/identity/oauth/token"
    )
    scope: str | None = None

    rate_share: float = Field(default=1.0, gt=0, le=1)
    rate_limit_calls: int = Field(default=MARKETO_CALLS_PER_WINDOW, ge=1)
    rate_window_s: PositiveSeconds = MARKETO_WINDOW_S
    max_in_flight: int = Field(default=MARKETO_MAX_CONCURRENT, ge=1, le=MARKETO_MAX_CONCURRENT)

    connect_timeout_s: PositiveSeconds = 5.0
    # Above Marketo's own server timeouts (30 s, 60 s filter reads, 90 s sync), so we never give
    # up on a call Marketo is still working on.
    request_timeout_s: PositiveSeconds = 120.0
    identity_timeout_s: PositiveSeconds = 30.0
    token_refresh_margin_s: float = Field(default=60.0, ge=0)

    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_cap_s: float = Field(default=8.0, ge=0)
    concurrency_backoff_s: float = Field(default=1.0, ge=0)
    # A delivery holds its stream partition while the client works on it: bound the whole of
    # one logical call (throttle waits, technical retries) well below Faust's 300 s livelock
    # warnings.
    max_throttle_wait_s: float = Field(default=120.0, ge=0)
    max_call_s: PositiveSeconds = 240.0

    lead_batch_size: int = Field(default=MARKETO_LEAD_BATCH, ge=1, le=MARKETO_LEAD_BATCH)
    campaign_batch_size: int = Field(
        default=MARKETO_CAMPAIGN_BATCH, ge=1, le=MARKETO_CAMPAIGN_BATCH
    )
    max_body_bytes: int = Field(default=MARKETO_MAX_BODY_BYTES, ge=1024)

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        value = _http_url(value)
        # Administrators paste the URL Marketo shows them, which ends in /rest.
        return value.removesuffix("/rest")

    @field_validator("identity_url")
    @classmethod
    def _identity(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _http_url(value)

    @property
    def token_url(self) -> str:
        return self.identity_url or f"{self.base_url}/identity/oauth/token"

    @property
    def calls_per_window(self) -> int:
        return max(1, math.floor(self.rate_limit_calls * self.rate_share + 1e-9))
