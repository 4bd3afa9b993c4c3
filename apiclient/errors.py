"""Every way a call to control's operator API can fail, as one hierarchy of `ApiError`s.

Each error's text is what the operator should read and act on: control not running, no token or
a token control refused, or a request the API turned down (with the API's own reason, e.g. the
read-only token's 403, and each problem by path for a 4xx). The CLI prints `str(error)`; a
console screen that already says what it tried shows `error.message`, which for a refused request
is the reason alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ApiError(Exception):
    """A failure worth showing to an operator as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ControlUnreachable(ApiError):
    """Nothing answered at the API's address (or the connection broke)."""

    def __init__(self, base_url: str, detail: str = "", message: str | None = None) -> None:
        self.base_url = base_url
        self.detail = detail
        super().__init__(
            message
            or f"control is not reachable at {base_url} — is `csignal control` "
            "(or `csignal run`) running?"
        )


class ControlTimeout(ControlUnreachable):
    """Control took the connection but did not answer within the call's time limit."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(
            base_url,
            f"timed out after {timeout_s:g} s",
            f"control at {base_url} did not answer within {timeout_s:g} s",
        )


class TokenMissing(ApiError):
    """No token in the environment and no token file where one was expected."""

    def __init__(self, path: Path, env: str = "SIGNAL_API_TOKEN") -> None:
        self.path = path
        super().__init__(
            f"no API token: {path} does not exist and {env} is not set — start "
            "`csignal control` once (it writes the token) or point SIGNAL_DATA_DIR at its data"
        )


class TokenUnreadable(ApiError):
    """A token file exists but cannot be used: unreadable, or not UTF-8 text."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"cannot read the API token from {path}: {reason} — control writes it as one line "
            "of text; point SIGNAL_API_TOKEN_FILE at control's api-token or set SIGNAL_API_TOKEN"
        )


class TokenRefused(ApiError):
    """401: control does not know the token (a read-only token is known: its refusals are
    `RequestRefused` with status 403)."""

    def __init__(self, hint: str = "$SIGNAL_DATA_DIR/api-token") -> None:
        super().__init__(f"the API token was refused — check {hint}")


@dataclass(frozen=True)
class Problem:
    """One thing the API found wrong, by path in the request (`flows[1].destination.mapping`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RequestRefused(ApiError):
    """The API answered with an error status. `message` is its reason (the problems joined);
    `str()` also names the request, for a command line."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        detail: str,
        problems: Sequence[Problem] = (),
        body: Any = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        """The API's explanation as one line (the problems, else whatever text it sent)."""
        self.problems = list(problems)
        self.body = body
        super().__init__(f"{method} {path} failed ({status}): {detail}")
        self.message = "; ".join(str(p) for p in self.problems) or f"HTTP {status}"


def refusal(method: str, path: str, status: int, body: Any) -> RequestRefused:
    """The error for an error status: `RequestRefused` with the API's problems. The console and
    control ship together, so a route control lacks is a defect, reported like any refusal."""
    problems = problems_of(body)
    return RequestRefused(method, path, status, detail_of(body), problems, body)


def problems_of(body: Any) -> list[Problem]:
    """`{"errors": [{"path", "message"}]}`, else a single `message`/`error` (with the query
    `parameter` it names, if any)."""
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if isinstance(errors, list):
        return [
            Problem(str(e.get("path") or ""), str(e.get("message") or ""))
            for e in errors
            if isinstance(e, dict)
        ]
    message = body.get("message") or body.get("error")
    if message:
        return [Problem(str(body.get("parameter") or ""), str(message))]
    return []


def detail_of(body: Any) -> str:
    """The API's explanation on one line: its problems, else whatever it sent."""
    if isinstance(body, dict):
        parts = [str(p) for p in problems_of(body)[:10]]
        if parts:
            return "; ".join(parts)
        for key in ("detail", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return json.dumps(body, ensure_ascii=False)[:500]
    text = str(body or "").strip()
    return text[:500] or "no details"
