"""Marketo client settings pointed at a running sandbox, shared by the client tests."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from simulators.marketo.sandbox import Sandbox
from stream.marketo.settings import MarketoSettings

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"


def settings_at(url: str, **overrides: Any) -> MarketoSettings:
    """Settings for the sandbox's default credentials at `url` (a sandbox, or any server that
    stands in for Marketo), with short back-offs so tests are quick."""
    values: dict[str, Any] = {
        "connection_id": "conn-test",
        "base_url": url,
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(CLIENT_SECRET),
        "backoff_base_s": 0.01,
        "concurrency_backoff_s": 0.01,
    }
    values.update(overrides)
    return MarketoSettings(**values)


def settings_for(sandbox: Sandbox, **overrides: Any) -> MarketoSettings:
    """Settings for the sandbox's default credentials, with short back-offs so tests are quick."""
    return settings_at(sandbox.url, **overrides)


def lead(i: int, **extra: Any) -> dict[str, Any]:
    """Lead fields as a client sends them to Marketo: person `i`, unique by email."""
    return {"email": f"person{i}@example.com", "firstName": f"P{i}", "lastName": "Test", **extra}
