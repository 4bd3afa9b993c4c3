"""What a call to Marketo for a connection uses: its settings, secret included.

Apart from `ConfigService` because two callers need the same settings under different rules:
deliveries and tests of a saved connection use its secret as the configuration holds it, while
a test of a candidate (edited, not saved) may use a stored secret only while the candidate keeps
the destination it was entered for, so a test never sends a secret where a save would have
cleared it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from config.models import Connection
from config.secret_refs import EnvAllowList, destination_hosts, secret_binding
from config.validation import Problem
from stream.marketo.settings import MarketoSettings

from .config_errors import InvalidConfigError
from .config_secrets import check_reference

__all__ = ["candidate_settings", "saved_settings"]


def saved_settings(
    connection: Connection, cleared: str | None, **overrides: Any
) -> MarketoSettings:
    """The settings of a saved connection; `cleared`: why its secret was cleared, if it was."""
    if connection.client_id is None:
        raise InvalidConfigError(
            f"connection {connection.id!r} has no client id",
            [Problem("client_id", "required to reach Marketo")],
        )
    if connection.client_secret is None:
        raise InvalidConfigError(
            f"connection {connection.id!r} has no client secret"
            + (f": {cleared}" if cleared else ""),
            [Problem("client_secret", cleared or "required to reach Marketo")],
        )
    return _settings(connection, connection.client_id, connection.client_secret, overrides)


def candidate_settings(
    candidate: Connection,
    secret: str | None,
    *,
    existing: Connection | None,
    cleared: str | None,
    allowlist: EnvAllowList,
    env: Mapping[str, str],
    **overrides: Any,
) -> MarketoSettings:
    """Settings to test `candidate` before it is saved (see `ConfigService.candidate_settings`);
    `existing`: the saved connection with its id, `cleared`: why that one's secret was
    cleared."""
    if candidate.client_id is None:
        raise InvalidConfigError(
            "the connection has no client id",
            [Problem("client_id", "required to reach Marketo")],
        )
    value = secret
    if value is None and candidate.client_secret_ref is not None:
        name = candidate.client_secret_ref
        check_reference(allowlist, candidate, "client_secret")
        value = allowlist.lookup(env, name, destination_hosts(candidate))
        if value is None:
            why = f"environment variable {name} is not set (from ${{{name}}})"
            raise InvalidConfigError(why, [Problem("client_secret", why)])
    if value is None:
        value = _stored_secret_for(existing, candidate, cleared)
    return _settings(candidate, candidate.client_id, SecretStr(value), overrides)


def _stored_secret_for(
    existing: Connection | None, candidate: Connection, cleared: str | None
) -> str:
    """The secret of the stored connection `candidate` edits, if it may go where the
    candidate would send it."""
    if existing is None or existing.client_secret is None:
        why = (cleared if existing is not None else None) or (
            "required to test the connection: enter the client secret"
        )
        raise InvalidConfigError(why, [Problem("client_secret", why)])
    moved = secret_binding(existing).changes_to(secret_binding(candidate))
    if moved is not None:
        why = f"the stored client secret is not sent because {moved}; enter it again"
        raise InvalidConfigError(why, [Problem("client_secret", why)])
    return existing.client_secret.get_secret_value()


def _settings(
    connection: Connection, client_id: str, secret: SecretStr, overrides: Mapping[str, Any]
) -> MarketoSettings:
    return MarketoSettings(
        connection_id=connection.id,
        base_url=connection.base_url,
        client_id=client_id,
        client_secret=secret,
        identity_url=str(connection.access_token_url) if connection.access_token_url else None,
        scope=connection.scope,
        rate_share=connection.rate_share,
        max_in_flight=connection.max_in_flight,
        **overrides,
    )
