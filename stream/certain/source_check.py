"""Save & Test for a Certain source: can Signal sign in, and which events would it watch?

One page of `Event/{acct}` answers both: the credentials and the account code are right when
Certain serves it, and the events it lists say what the source's `events` setting selects. The
reader is an administrator who just typed a host, an account code, a user and a password, so a
failure says what to fix (the password, the account code, the host, the network) in words, with
Certain's status kept alongside. Two calls at most (the list, then nothing else), each bounded
by `CHECK_TIMEOUT_S`; the password is sent and never put in a message.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from config.models import CertainSource, EventsByTag
from stream.certain.client import (
    CertainClient,
    CertainError,
    CertainRefused,
    CertainUnauthorized,
    CertainUnavailable,
    Page,
    RequestBudget,
)

CHECK_TIMEOUT_S = 15.0
"""An administrator waits on this; a Certain that takes longer is reported as too slow."""
CHECK_PAGE = 500


@dataclass(frozen=True, slots=True)
class SourceCheck:
    name: str
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class SourceCheckResult:
    ok: bool
    message: str
    checks: tuple[SourceCheck, ...] = ()
    failure: str | None = None
    """What failed, for scripts: unauthorized, unknown_account, unreachable, tls, timeout,
    unavailable, not_certain, refused, events."""
    status: int | None = None
    events: int | None = None
    watched: int | None = None
    elapsed_ms: float = 0.0


async def check_source(
    source: CertainSource, *, timeout_s: float = CHECK_TIMEOUT_S
) -> SourceCheckResult:
    """Sign in to `source` (which carries the password to test) and read its events."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        client = CertainClient(session, source, RequestBudget(60), timeout_s=timeout_s)
        try:
            async with asyncio.timeout(timeout_s + 1):
                page = await client.events(0, CHECK_PAGE)
        except (CertainError, TimeoutError) as error:
            failure, message, status = explain(error, source, timeout_s)
            check = SourceCheck("credentials", False, message)
            return SourceCheckResult(
                False, message, (check,), failure, status, elapsed_ms=_ms(started)
            )
    signed_in = SourceCheck(
        "credentials",
        True,
        f"signed in as {source.username!r} to account {source.account_code!r}",
    )
    watched, events_check = _watched(source, page)
    ok = events_check.ok
    message = f"{signed_in.message}; {events_check.message}"
    return SourceCheckResult(
        ok,
        message,
        (signed_in, events_check),
        None if ok else "events",
        200,
        events=len(page.records),
        watched=watched,
        elapsed_ms=_ms(started),
    )


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _watched(source: CertainSource, page: Page) -> tuple[int, SourceCheck]:
    """How many of the listed events the source's `events` setting selects, in words."""
    records = [r for r in page.records if isinstance(r, dict)]
    more = page.total is not None and page.total > len(records)
    among = f" among the first {len(records)}" if more else ""
    codes = {str(r.get("eventCode")) for r in records if r.get("eventCode")}
    active = [r for r in records if r.get("isActive") is not False]
    events = source.events
    if isinstance(events, list):
        found = [c for c in events if c in codes]
        missing = [c for c in events if c not in codes]
        if missing and not more:
            names = ", ".join(missing)
            return len(found), SourceCheck(
                "events", False, f"no such event in the account: {names}"
            )
        note = f" ({', '.join(missing)} not{among})" if missing else ""
        return len(found), SourceCheck(
            "events", True, f"watching {len(found)} of {len(events)} events listed{note}"
        )
    if isinstance(events, EventsByTag):
        tagged = [r for r in active if events.tag in _tags(r)]
        if not tagged and not more:
            return 0, SourceCheck(
                "events", False, f"no active event carries the event tag {events.tag!r}"
            )
        return len(tagged), SourceCheck(
            "events",
            True,
            f"{len(tagged)} active events{among} carry the event tag {events.tag!r}",
        )
    return len(active), SourceCheck("events", True, f"{len(active)} active events{among}")


def _tags(record: dict[str, Any]) -> set[str]:
    tags = record.get("tags")
    if isinstance(tags, dict):
        tags = tags.get("tag")
    names: set[str] = set()
    for tag in tags if isinstance(tags, list) else ():
        if isinstance(tag, str):
            names.add(tag)
        elif isinstance(tag, dict) and isinstance(tag.get("name"), str):
            names.add(tag["name"])
    return names


def explain(
    error: CertainError | TimeoutError, source: CertainSource, timeout_s: float
) -> tuple[str, str, int | None]:
    """(failure, one sentence to act on, Certain's HTTP status) for a failed sign-in.

    The client folds network failures into `CertainUnavailable` with the library's text; the
    original exception is still its `__context__`, which tells a refused port from a bad
    certificate or an unknown host name."""
    host = urlsplit(str(source.host)).netloc or str(source.host)
    if isinstance(error, TimeoutError):
        return "timeout", f"no answer from {host} within {timeout_s:g} s", None
    status = error.status
    detail = error.message.split(": ", 1)[-1]
    if isinstance(error, CertainUnauthorized):
        if status == 403:
            return (
                "unknown_account",
                f"unknown account code {source.account_code!r}, or user {source.username!r} "
                f"may not use it (Certain answered {detail})",
                status,
            )
        return (
            "unauthorized",
            f"wrong username or password: Certain refused the credentials of "
            f"{source.username!r} ({detail})",
            status,
        )
    cause = error.__context__
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        return (
            "tls",
            f"TLS: the certificate of {host} is not trusted ({cause.certificate_error})",
            None,
        )
    if isinstance(cause, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls", f"TLS: the secure connection to {host} failed ({cause})", None
    if isinstance(cause, aiohttp.ClientConnectorDNSError):
        return "unreachable", f"cannot reach {host}: the host name is not known", None
    if isinstance(cause, aiohttp.ClientConnectorError):
        why = cause.os_error.strerror or str(cause.os_error)
        return "unreachable", f"cannot reach {host}: {why}", None
    if isinstance(cause, TimeoutError):
        return "timeout", f"no answer from {host} within {timeout_s:g} s", None
    if isinstance(error, CertainUnavailable):
        if status is None:
            return "unreachable", f"cannot reach {host}: {detail}", None
        return "unavailable", f"Certain is unavailable ({detail}); try again later", status
    if isinstance(error, CertainRefused) and (status is None or status in (400, 405)):
        return (
            "not_certain",
            f"{host} answers, but not as Certain's REST API ({detail}); check the host",
            status,
        )
    return "refused", f"Certain refused the request ({detail})", status
