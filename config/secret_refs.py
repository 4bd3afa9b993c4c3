"""Which environment variables a `${VAR}` secret reference may name, and where a secret is sent.

A connection's `client_secret: ${VAR}` is read from the environment of the process that loads
the configuration (control, or `csignal config check`). Anyone who may edit a connection could
otherwise name any variable (`${HOME}`, a database password) and have its value sent to a URL of
their choosing, so references resolve only for names on an allow-list, as Kafka Connect's
`EnvVarConfigProvider` does with `allowlist.pattern`. The list is `SIGNAL_SECRET_ENV_ALLOWLIST`:
shell-style patterns (`*`, `?`) separated by commas or spaces, matched against the whole name,
case-sensitively. A name outside it is refused with the same message whether or not the variable
exists, so a refusal reveals nothing about the environment.

A secret is also bound to the destination it was entered for: the identity (token) URL the client
sends it to and the client id it goes with (`secret_binding`). Changing either clears it, as a
browser's password manager offers a password only to the origin it was saved for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from config.models import Connection

ALLOWLIST_ENV = "SIGNAL_SECRET_ENV_ALLOWLIST"
DEFAULT_PATTERNS: tuple[str, ...] = ("MARKETO_*", "SIGNAL_SECRET_*", "SIGNAL_DEMO_MARKETO_SECRET")
"""`MARKETO_*` (the examples' `MARKETO_CLIENT_SECRET`), `SIGNAL_SECRET_*`, and the variable
`csignal run --demo` sets for its sandbox connection."""

_PATTERN = re.compile(r"^[A-Za-z0-9_*?]+$")
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class EnvAllowList:
    """Shell-style patterns a referenced variable's name must match (one is enough)."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS

    @classmethod
    def parse(cls, text: str) -> EnvAllowList:
        """Patterns separated by commas or spaces; an empty text allows no reference at all.
        Raises ValueError for a pattern that could never name a variable."""
        patterns = tuple(p for p in _SEPARATORS.split(text.strip()) if p)
        bad = [p for p in patterns if not _PATTERN.match(p)]
        if bad:
            raise ValueError(
                f"{ALLOWLIST_ENV}: {', '.join(repr(p) for p in bad)} is not a pattern of "
                "variable names (letters, digits, _, * and ? only)"
            )
        return cls(patterns)

    def allows(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)

    def describe(self) -> str:
        return ", ".join(self.patterns) if self.patterns else "empty"

    def refusal(self, name: str) -> str:
        """Why `${name}` is not resolved; the same whether the variable exists or not."""
        return (
            f"environment variable {name} is not on the allow-list of secret references "
            f"({ALLOWLIST_ENV}: {self.describe()})"
        )

    def lookup(self, env: Mapping[str, str], name: str) -> str | None:
        """The variable's value when the name is allowed and the value not empty, else None."""
        if not self.allows(name):
            return None
        return env.get(name) or None


DEFAULT_ALLOWLIST = EnvAllowList()


# --- binding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretBinding:
    """Where a connection's secret and the tokens it buys go: the token endpoint and the client
    id sent with the secret, and the service URL that receives the access token (with an
    explicit `access_token_url`, moving only the service URL would hand a valid token to the
    new host)."""

    identity_url: str
    client_id: str | None
    service_url: str | None = None
    """None: bound before the service URL was part of the binding; such a binding matches any
    service URL until the secret is stored again."""

    def changes_to(self, other: SecretBinding) -> str | None:
        """What changed from this binding to `other` ("the identity URL", …), None if nothing."""
        moved = []
        if self.identity_url != other.identity_url:
            moved.append("the identity URL")
        elif self.service_url is not None and self.service_url != other.service_url:
            # Named only when the identity URL stayed (an explicit access_token_url): a derived
            # identity URL moves with the service URL and says enough.
            moved.append("the service URL")
        if self.client_id != other.client_id:
            moved.append("the client id")
        if not moved:
            return None
        return " and ".join(moved) + " changed"


def identity_url(connection: Connection) -> str:
    """The URL the Marketo client sends the client secret to, normalised as the client does:
    `access_token_url` when set, else `<service URL without /rest>/identity/oauth/token`."""
    if connection.access_token_url is not None:
        return str(connection.access_token_url).strip().rstrip("/")
    return f"{service_base(connection)}/identity/oauth/token"


def service_base(connection: Connection) -> str:
    """The service URL as the client uses it (no trailing slash, no `/rest`)."""
    return connection.base_url.strip().rstrip("/").removesuffix("/rest")


def secret_binding(connection: Connection) -> SecretBinding:
    return SecretBinding(identity_url(connection), connection.client_id, service_base(connection))


def cleared_notice(reason: str) -> str:
    """What the API and the console say when a change of destination cleared a secret."""
    return f"the client secret was cleared because {reason}; enter it again"
