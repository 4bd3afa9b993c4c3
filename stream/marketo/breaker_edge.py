"""Where a connection's circuit breaker (`stream.core.breaker`) meets the Marketo client.

The transport asks the breaker before each logical call and tells it how the call ended. This
module holds the two decisions that are Marketo's and not the state machine's: which failures
are connection-wide (the instance is unreachable, down, or refuses the credentials, so every
other call would fail the same way) and what a call refused by an open breaker looks like to
the caller (a `circuit-open` failure with the time a probe may go, which the deliver step turns
into a parked outcome: no attempt spent, nothing sent).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from stream.core.breaker import Breaker, BreakerState
from stream.marketo.errors import FailureClass, MarketoFailure

__all__ = ["CIRCUIT_OPEN", "connection_wide", "judge", "open_failure"]

CIRCUIT_OPEN: Final = "circuit-open"
"""`MarketoFailure.code` (and the outcome's `marketo_code`) of a call the breaker refused."""

_SERVER_CODES: Final = frozenset({"603", "604", "608", "611", "614", "token-lapsed"})
"""Marketo codes that speak for the instance, not the request: access denied (the role or the
IP allow-list), timeouts, API unavailable, system error, subscription unreachable."""


def connection_wide(failure: MarketoFailure) -> bool:
    """A failure every call of this connection would share (counted by the breaker)."""
    if failure.kind is FailureClass.AUTH or failure.source == "transport":
        return True
    if failure.http_status is not None and failure.http_status >= 500:
        return True
    return failure.code in _SERVER_CODES


def judge(breaker: Breaker, failure: MarketoFailure | None) -> None:
    """Tell the breaker how an allowed call ended: any Marketo answer shows the instance up; a
    local refusal (the daily quota's park) says nothing either way."""
    if failure is None:
        breaker.succeeded()
    elif connection_wide(failure):
        breaker.failed(failure.describe())
    elif failure.source == "local":
        breaker.released()
    else:
        breaker.succeeded()


def open_failure(breaker: Breaker, connection_id: str, path: str, now: datetime) -> MarketoFailure:
    """The failure of a call the breaker refused, with when it is worth sending again."""
    view = breaker.view()
    if view.state is BreakerState.HALF_OPEN:
        why = "a probe call is testing whether Marketo is back"
    else:
        why = f"{view.failures} connection-wide failures in a row; last: {view.reason}"
    return MarketoFailure(
        kind=FailureClass.THROTTLE,
        code=CIRCUIT_OPEN,
        message=f"connection {connection_id!r} is paused by its circuit breaker ({why})",
        source="local",
        endpoint=path,
        retry_at=now + timedelta(seconds=breaker.retry_after()),
    )
