"""What saving or testing one Certain source does with its password.

Apart from `ConfigService` for the same reason as `connection_settings`: a save and a test of a
candidate (edited, not saved) follow different rules. A save without a new password keeps the
stored one only while the source keeps the host and username it was entered for, and otherwise
clears it and says so (`certain_cleared_notice`), as a client secret is cleared. A test sends a
stored password only while the candidate keeps the host, the username *and* the account code:
the account code is not part of where the password goes, but a test of another account with
someone's stored password would prove nothing the operator meant to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

from config.models import CertainSource
from config.secret_refs import (
    EnvAllowList,
    certain_binding,
    certain_cleared_notice,
    certain_hosts,
    certain_secret_key,
)
from config.validation import Problem

from .config_errors import InvalidConfigError

__all__ = ["SavedPassword", "candidate_source", "password_source", "saved_password"]

PASSWORD = "password"


@dataclass
class SavedPassword:
    """A save's effect on the secret store: what to store, what to forget, and why a stored
    password was cleared (None when it was not)."""

    secrets: dict[str, str] = field(default_factory=dict)
    forget: set[str] = field(default_factory=set)
    cleared: str | None = None


def _check_reference(allowlist: EnvAllowList, source: CertainSource) -> None:
    name = source.password_ref
    hosts = certain_hosts(source)
    if name is not None and not allowlist.allows_for(name, hosts):
        refusal = allowlist.refusal_for(name, hosts)
        raise InvalidConfigError(refusal, [Problem(PASSWORD, refusal)])


def saved_password(
    new: CertainSource,
    existing: CertainSource | None,
    password: str | None,
    *,
    stored: bool,
    allowlist: EnvAllowList,
) -> SavedPassword:
    """Decide the password of `new` (which replaces `existing`, if any); `password` is a new
    literal one, `new.password_ref` a `${VAR}` given with this change, `stored` whether the
    secret store holds one for this source. `new.password` is emptied: it never reaches the
    stored body."""
    new.password = None
    key = certain_secret_key(new)
    result = SavedPassword()
    if password is not None:
        new.password_ref = None
        result.secrets[key] = password
        return result
    if new.password_ref is not None:
        _check_reference(allowlist, new)
        result.forget.add(key)
        return result
    if existing is None:
        return result
    moved = certain_binding(existing).changes_to(certain_binding(new))
    if moved is None:
        new.password_ref = existing.password_ref
    elif existing.password_ref is not None or stored:
        result.forget.add(key)
        result.cleared = certain_cleared_notice(moved)
    return result


def candidate_source(
    candidate: CertainSource,
    password: str | None,
    *,
    existing: CertainSource | None,
    allowlist: EnvAllowList,
    env: Mapping[str, str],
) -> CertainSource:
    """`candidate` with the password a test sends: `password` when given, else the `${VAR}` it
    names (allow-listed for its host, and set), else the stored password of the source with its
    id while host, username and account code are unchanged. Raises `InvalidConfigError` on
    `password` otherwise."""
    value = password
    if value is None and candidate.password_ref is not None:
        name = candidate.password_ref
        _check_reference(allowlist, candidate)
        value = allowlist.lookup(env, name, certain_hosts(candidate))
        if value is None:
            why = f"environment variable {name} is not set (from ${{{name}}})"
            raise InvalidConfigError(why, [Problem(PASSWORD, why)])
    if value is None:
        value = _stored_password_for(existing, candidate)
    return candidate.model_copy(update={"password": SecretStr(value)})


def _stored_password_for(existing: CertainSource | None, candidate: CertainSource) -> str:
    if existing is None or existing.password is None:
        why = "required to test the source: enter the password"
        raise InvalidConfigError(why, [Problem(PASSWORD, why)])
    moved = [
        what
        for what, old, new in (
            ("the host", existing.base_url, candidate.base_url),
            ("the username", existing.username, candidate.username),
            ("the account code", existing.account_code, candidate.account_code),
        )
        if old != new
    ]
    if moved:
        why = (
            f"the stored password is not sent because {' and '.join(moved)} changed; enter it again"
        )
        raise InvalidConfigError(why, [Problem(PASSWORD, why)])
    return existing.password.get_secret_value()


def password_source(source: CertainSource) -> str | None:
    """Where the source's password comes from (`env:VAR`, `stored`), None when it has none."""
    if source.password is None:
        return None
    return f"env:{source.password_ref}" if source.password_ref else "stored"
