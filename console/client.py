"""The console's names for the operator API's client, now in the top-level `apiclient` package.

Kept only while importers move to `apiclient`; it is deleted once none is left.
"""

from __future__ import annotations

from apiclient.access import api_base_url, login_name, read_token, token_file
from apiclient.client import CONSOLE_TIMEOUT_S, ApiClient
from apiclient.errors import ApiError, NotAvailable, Problem
from apiclient.errors import ControlUnreachable as Unreachable
from apiclient.errors import RequestRefused as Refused
from apiclient.errors import TokenRefused as Unauthorized
from apiclient.rows import (
    ConnectionRow,
    FlowRow,
    FlowStats,
    RetryFilters,
    RetryPage,
    RetryRow,
    SqlResult,
    SubmitResult,
    TargetField,
    TestResult,
)

__all__ = [
    "ApiError",
    "ConnectionRow",
    "ConsoleClient",
    "FlowRow",
    "FlowStats",
    "NotAvailable",
    "Problem",
    "Refused",
    "RetryFilters",
    "RetryPage",
    "RetryRow",
    "SqlResult",
    "SubmitResult",
    "TargetField",
    "TestResult",
    "Unauthorized",
    "Unreachable",
    "api_base_url",
    "login_name",
    "read_token",
    "token_file",
]


class ConsoleClient(ApiClient):
    """`ApiClient.for_console` under its old name."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        actor: str | None = None,
        *,
        token_hint: str | None = None,
    ) -> None:
        super().__init__(
            base_url,
            token,
            actor=f"console:{(actor or '').strip() or login_name()}",
            token_hint=token_hint,
            timeout=CONSOLE_TIMEOUT_S,
        )
