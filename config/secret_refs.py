"""Which environment variables a `${VAR}` secret reference may name, and where a secret is sent.

A connection's `client_secret: ${VAR}` is read from the environment of the process that loads
the configuration (control, or `csignal config check`). Anyone who may edit a connection could
otherwise name any variable (`${HOME}`, a database password) and have its value sent to a URL of
their choosing, so references resolve only for names on an allow-list, as Kafka Connect's
`EnvVarConfigProvider` does with `allowlist.pattern`. The list is `SIGNAL_SECRET_ENV_ALLOWLIST`:
shell-style patterns (`*`, `?`) separated by commas or spaces, matched against the whole name,
case-sensitively. A name outside it is refused with the same message whether or not the variable
exists, so a refusal reveals nothing about the environment.

An entry may also say where the variable's value may go: `NAME_PATTERN@HOST_PATTERN`
(`MARKETO_*@*.mktorest.com`). Such a reference resolves only for a connection whose identity URL
host and service URL host both match the host pattern (case-insensitively); for any other
destination it is refused, naming the host, as a name off the list is. An entry without `@`
binds the name to no host: whoever may edit a connection (the API token) can send that
variable's value to any host, which is why production lists bound entries.

A secret is also bound to the destination it was entered for: the identity (token) URL the client
sends it to and the client id it goes with (`secret_binding`). Changing either clears it, as a
browser's password manager offers a password only to the origin it was saved for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from config.models import CertainSource, Connection

ALLOWLIST_ENV = "SIGNAL_SECRET_ENV_ALLOWLIST"
DEFAULT_PATTERNS: tuple[str, ...] = ("MARKETO_*", "SIGNAL_SECRET_*", "SIGNAL_DEMO_MARKETO_SECRET")
"""`MARKETO_*` (the examples' `MARKETO_CLIENT_SECRET`), `SIGNAL_SECRET_*`, and the variable
`csignal run --demo` sets for its sandbox connection."""

_PATTERN = re.compile(r"^[A-Za-z0-9_*?]+$")
_HOST_PATTERN = re.compile(r"^[A-Za-z0-9.*?-]+$")
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: the variable names it covers and, when bound, the hosts their
    values may be sent to (None: any host)."""

    name: str
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> AllowEntry | None:
        """The entry `NAME_PATTERN` or `NAME_PATTERN@HOST_PATTERN`; None if it is neither."""
        name, at, host = text.partition("@")
        if not _PATTERN.match(name) or (at and not _HOST_PATTERN.match(host)):
            return None
        return cls(name, host.lower() if at else None)

    def names(self, name: str) -> bool:
        return fnmatchcase(name, self.name)

    def sends_to(self, hosts: Sequence[str]) -> bool:
        return self.host is None or all(fnmatchcase(h.lower(), self.host) for h in hosts)


@dataclass(frozen=True)
class EnvAllowList:
    """Entries (shell-style patterns, optionally bound to hosts) a referenced variable's name
    must match (one is enough), and whose host pattern the destination must match."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS

    @classmethod
    def parse(cls, text: str) -> EnvAllowList:
        """Entries separated by commas or spaces; an empty text allows no reference at all.
        Raises ValueError for an entry that could never name a variable or a host."""
        patterns = tuple(p for p in _SEPARATORS.split(text.strip()) if p)
        bad = [p for p in patterns if AllowEntry.parse(p) is None]
        if bad:
            raise ValueError(
                f"{ALLOWLIST_ENV}: {', '.join(repr(p) for p in bad)} is not a pattern of "
                "variable names (letters, digits, _, * and ? only), optionally followed by "
                "@ and a pattern of host names (letters, digits, ., -, * and ?), e.g. "
                "MARKETO_*@*.mktorest.com"
            )
        return cls(patterns)

    @property
    def entries(self) -> tuple[AllowEntry, ...]:
        return tuple(e for e in map(AllowEntry.parse, self.patterns) if e is not None)

    def allows(self, name: str) -> bool:
        """Whether `name` may be read at all (for some destination)."""
        return any(entry.names(name) for entry in self.entries)

    def allows_for(self, name: str, hosts: Sequence[str]) -> bool:
        """Whether `name`'s value may be sent to every host in `hosts`."""
        return any(entry.names(name) and entry.sends_to(hosts) for entry in self.entries)

    def describe(self) -> str:
        return ", ".join(self.patterns) if self.patterns else "empty"

    def refusal(self, name: str) -> str:
        """Why `${name}` is not resolved; the same whether the variable exists or not."""
        return (
            f"environment variable {name} is not on the allow-list of secret references "
            f"({ALLOWLIST_ENV}: {self.describe()})"
        )

    def refusal_for(self, name: str, hosts: Sequence[str]) -> str:
        """Why `${name}` is not resolved for a connection to `hosts`: the name's refusal when no
        entry names it, else the host its entries do not allow (the same whether the variable
        exists or not)."""
        if not self.allows(name):
            return self.refusal(name)
        bound = [e.host for e in self.entries if e.names(name) and e.host is not None]
        refused = [h for h in hosts if not any(fnmatchcase(h.lower(), b) for b in bound)]
        host = refused[0] if refused else ", ".join(hosts)
        return (
            f"environment variable {name} may not be sent to host {host} "
            f"({ALLOWLIST_ENV} binds it to {', '.join(bound)})"
        )

    def lookup(self, env: Mapping[str, str], name: str, hosts: Sequence[str]) -> str | None:
        """The variable's value when the name is allowed for `hosts` (the connection's
        `destination_hosts`) and the value not empty, else None."""
        if not self.allows_for(name, hosts):
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


def destination_hosts(connection: Connection) -> tuple[str, ...]:
    """The hosts a connection sends its secret (the identity URL's) and the access token it buys
    (the service URL's) to, lower case, each once."""
    return url_hosts(identity_url(connection), service_base(connection))


def url_hosts(*urls: object) -> tuple[str, ...]:
    """The hosts of `urls` (text; other values are skipped), lower case, each once; a text that
    has no host stands for itself, so it matches no host pattern but `*`."""
    hosts: list[str] = []
    for url in urls:
        if not isinstance(url, str) or not url.strip():
            continue
        try:
            host = urlsplit(url.strip()).hostname or url.strip()
        except ValueError:
            host = url.strip()
        if host.lower() not in hosts:
            hosts.append(host.lower())
    return tuple(hosts)


def secret_binding(connection: Connection) -> SecretBinding:
    return SecretBinding(identity_url(connection), connection.client_id, service_base(connection))


def cleared_notice(reason: str) -> str:
    """What the API and the console say when a change of destination cleared a secret."""
    return f"the client secret was cleared because {reason}; enter it again"


# --- Certain sources -----------------------------------------------------------------------------

CERTAIN_SECRET_PREFIX = "certain_source:"
"""Stored passwords of Certain sources are kept under this prefix and the source's id, apart
from connection ids (a source and a connection may share an id)."""


def certain_secret_key(source: CertainSource | str) -> str:
    """Where a Certain source's literal password is kept in the secret store."""
    source_id = source if isinstance(source, str) else source.id
    return f"{CERTAIN_SECRET_PREFIX}{source_id}"


def certain_hosts(source: CertainSource) -> tuple[str, ...]:
    """The host a Certain source sends its password to (HTTP Basic on every call)."""
    return url_hosts(str(source.host))


def certain_binding(source: CertainSource) -> SecretBinding:
    """A Certain password is bound to the REST base it is sent to and the username it goes
    with, as a client secret is to its identity URL and client id."""
    return SecretBinding(source.base_url, source.username, source.base_url)


def certain_cleared_notice(reason: str) -> str:
    reason = reason.replace("the identity URL", "the host").replace("the client id", "the username")
    return f"the password was cleared because {reason}; enter it again"
