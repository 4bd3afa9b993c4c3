"""Marketo client settings pointed at a running sandbox, shared by the client tests."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from stream.marketo.sandbox import Sandbox
from stream.marketo.settings import MarketoSettings

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"


def settings_for(sandbox: Sandbox, **overrides: Any) -> MarketoSettings:
    """Settings for the sandbox's default credentials, with short back-offs so tests are quick."""
    values: dict[str, Any] = {
        "connection_id": "conn-test",
        "base_url": sandbox.url,
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(CLIENT_SECRET),
        "backoff_base_s": 0.01,
        "concurrency_backoff_s": 0.01,
    }
    values.update(overrides)
    return MarketoSettings(**values)
