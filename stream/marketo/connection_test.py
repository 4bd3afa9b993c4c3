""" "Save & Test" and "Refresh Target Fields" for a connection, as library calls.

The person reading the result is an administrator who just typed a URL and a pair of credentials,
so every failure is phrased as what to fix (the URL, the secret, the API user's role), with
Marketo's own code kept alongside for support.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.marketo.client import CallHook, MarketoClient
from stream.marketo.errors import FailureClass, MarketoError, MarketoFailure
from stream.marketo.results import LeadField
from stream.marketo.settings import MarketoSettings

_NOT_MARKETO_CODES = frozenset({"not-marketo", "not-json", "malformed", "http-404", "http-405"})


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    name: str
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class ConnectionTestResult:
    ok: bool
    message: str
    checks: tuple[ConnectionCheck, ...] = ()
    failure: MarketoFailure | None = None
    fields: tuple[LeadField, ...] = field(default=(), repr=False)
    campaigns: int | None = None


def explain(failure: MarketoFailure, base_url: str, what: str) -> str:
    """One sentence an administrator can act on, for a failure met while checking `what`."""
    code = failure.code or ""
    if failure.source == "transport":
        return failure.message  # already "cannot reach <url>: <reason>"
    if failure.source == "identity" and failure.kind is FailureClass.AUTH:
        return failure.message  # "bad client id or secret: ..."
    if code in _NOT_MARKETO_CODES:
        return (
            f"that URL answers but is not a Marketo REST endpoint ({base_url}; {failure.message})"
        )
    if code == "603":
        return (
            f"the API user lacks permission to {what} (Marketo 603: {failure.message}); "
            "check the API role and the IP allow-list"
        )
    if code == "610":
        return (
            f"that URL answers but is not a Marketo REST endpoint ({base_url}; Marketo 610: "
            f"{failure.message})"
        )
    if failure.kind is FailureClass.QUOTA:
        return f"the instance's daily API quota is spent; {failure.message}"
    if failure.kind is FailureClass.THROTTLE:
        return f"Marketo is throttling this instance right now ({code}); try again in a minute"
    if failure.kind is FailureClass.AUTH:
        return f"Marketo rejected the access token ({code}: {failure.message})"
    suffix = f" ({code}: {failure.message})" if code else f" ({failure.message})"
    return f"could not {what}{suffix}"


async def test_connection(
    settings: MarketoSettings,
    *,
    on_call: CallHook | None = None,
    client: MarketoClient | None = None,
) -> ConnectionTestResult:
    """Check credentials, base URL and the API user's permissions, in that order."""
    own = client is None
    mk = client or MarketoClient(settings, on_call=on_call)
    checks: list[ConnectionCheck] = []
    try:
        try:
            token = await mk.authenticate()
        except MarketoError as exc:
            msg = explain(exc.failure, settings.base_url, "obtain an access token")
            checks.append(ConnectionCheck("credentials", False, msg))
            return ConnectionTestResult(False, msg, tuple(checks), exc.failure)
        who = token.scope or settings.client_id
        checks.append(ConnectionCheck("credentials", True, f"authenticated as {who}"))

        try:
            fields = await mk.describe(refresh=True)
        except MarketoError as exc:
            msg = explain(exc.failure, settings.base_url, "read lead fields")
            checks.append(ConnectionCheck("lead fields", False, msg))
            return ConnectionTestResult(False, msg, tuple(checks), exc.failure)
        checks.append(ConnectionCheck("lead fields", True, f"{len(fields)} lead fields"))

        try:
            campaigns = await mk.list_campaigns(triggerable_only=True)
        except MarketoError as exc:
            msg = explain(exc.failure, settings.base_url, "read campaigns")
            checks.append(ConnectionCheck("campaigns", False, msg))
            return ConnectionTestResult(False, msg, tuple(checks), exc.failure, tuple(fields))
        checks.append(ConnectionCheck("campaigns", True, f"{len(campaigns)} requestable campaigns"))
        message = (
            f"connected to {settings.base_url} as {who}: {len(fields)} lead fields, "
            f"{len(campaigns)} requestable campaigns"
        )
        return ConnectionTestResult(
            True, message, tuple(checks), None, tuple(fields), len(campaigns)
        )
    finally:
        if own:
            await mk.close()


async def refresh_target_fields(client: MarketoClient) -> list[LeadField]:
    """Re-read the instance's lead fields, replacing the client's cached copy.

    Raises MarketoError (with the administrator-facing sentence from `explain` available to the
    caller) when Marketo cannot be read.
    """
    return await client.refresh_fields()


# The name reads naturally for callers; keep test collectors from mistaking it for a test.
test_connection.__test__ = False  # type: ignore[attr-defined]
