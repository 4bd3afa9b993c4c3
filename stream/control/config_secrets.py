"""Where the configuration's secrets come from, and when one is cleared instead of sent.

A connection's client secret and a Certain source's password come from an environment variable
the configuration names (only names the allow-list allows for the hosts the secret goes to,
`EnvAllowList`) or from the `SecretStore` file, never from the database. A secret is bound to
the destination it was entered for (`secret_binding`, `certain_binding`): a change of that
destination which does not come with a new secret clears it, and says why, so a secret is never
sent to a host it was not entered for.

The snapshots sent to workers carry the secrets sealed for their destination (`seal_snapshot`);
`account_from_snapshot` opens them again.

Apart from `ConfigService` because these rules are the security boundary of the configuration:
they read here in one place, as functions of what they decide on, while the service keeps the
flow of a change (validate, store, audit, publish).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import SecretStr

from config.models import Account, Connection
from config.secret_refs import (
    EnvAllowList,
    certain_binding,
    certain_cleared_notice,
    certain_hosts,
    certain_secret_key,
    cleared_notice,
    destination_hosts,
    secret_binding,
)
from config.validation import Problem
from stream.core.catalog import EventCatalog
from stream.messages import ConfigSnapshot
from stream.sealing import SealError, SecretBox, authenticate
from stream.store import ConfigObject

from .config_errors import InvalidConfigError
from .config_rows import CLEARED_MARK, SECRET_MARK
from .secret_store import SecretStore

__all__ = [
    "ImportedSecrets",
    "account_from_snapshot",
    "bind_legacy_secrets",
    "check_reference",
    "imported_secrets",
    "put_secrets",
    "seal_snapshot",
]


def check_reference(allowlist: EnvAllowList, connection: Connection, path: str) -> None:
    """Refuse the connection's `${VAR}` unless the allow-list names it for the hosts the
    connection sends its secret and tokens to."""
    name = connection.client_secret_ref
    hosts = destination_hosts(connection)
    if name is not None and not allowlist.allows_for(name, hosts):
        refusal = allowlist.refusal_for(name, hosts)
        raise InvalidConfigError(refusal, [Problem(path, refusal)])


class ImportedSecrets:
    """What replacing the account does to its secrets: literal ones to store, connections whose
    secret is cleared (and why), secret-store keys to forget, notices for the operator."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.cleared: dict[str, str] = {}
        self.notices: list[str] = []
        self.forget: set[str] = set()


def imported_secrets(
    new: Account,
    current: Account,
    store: SecretStore,
    cleared_now: Mapping[str, str],
    allowlist: EnvAllowList,
) -> ImportedSecrets:
    """Take the secrets out of `new` (the account replacing `current`), deciding for each one
    omitted whether the stored one is kept (same destination) or cleared."""
    result = ImportedSecrets()
    secrets, cleared, notices = result.secrets, result.cleared, result.notices
    for index, connection in enumerate(new.connections):
        check_reference(allowlist, connection, f"connections[{index}].client_secret")
        secret = connection.client_secret
        if connection.client_secret_ref is None and secret is not None:
            secrets[connection.id] = secret.get_secret_value()
        connection.client_secret = None
        if connection.client_secret_ref is not None or connection.id in secrets:
            continue
        existing = current.connection(connection.id)
        if existing is None:
            continue
        moved = secret_binding(existing).changes_to(secret_binding(connection))
        if moved is not None and connection.id in store:
            cleared[connection.id] = cleared_notice(moved)
            notices.append(f"connections[{index}]: {cleared[connection.id]}")
        elif connection.id in cleared_now:
            cleared[connection.id] = cleared_now[connection.id]
    certain = _certain_secrets(new, current, store, allowlist, result)
    keep = {c.id for c in new.connections}
    result.forget = ({c.id for c in current.connections} - keep) | set(cleared) | certain
    return result


def _certain_secrets(
    new: Account,
    current: Account,
    store: SecretStore,
    allowlist: EnvAllowList,
    result: ImportedSecrets,
) -> set[str]:
    """Certain sources' passwords follow a client secret's rules: a `${VAR}` must be
    allowed for the source's host; a literal one goes to the secret store (never the
    database); an omitted one is kept while the host and username stay, else cleared.
    Fills `result`'s secrets and notices; returns the secret-store keys to forget."""
    forget: set[str] = set()
    for index, source in enumerate(new.certain_sources):
        name, hosts = source.password_ref, certain_hosts(source)
        if name is not None and not allowlist.allows_for(name, hosts):
            refusal = allowlist.refusal_for(name, hosts)
            path = f"certain_sources[{index}].password"
            raise InvalidConfigError(refusal, [Problem(path, refusal)])
        key = certain_secret_key(source)
        if name is None and source.password is not None:
            result.secrets[key] = source.password.get_secret_value()
        source.password = None
        if name is not None:
            forget.add(key)
            continue
        existing = current.certain_source(source.id)
        if key in result.secrets or existing is None or key not in store:
            continue
        moved = certain_binding(existing).changes_to(certain_binding(source))
        if moved is not None:
            forget.add(key)
            result.notices.append(f"certain_sources[{index}]: {certain_cleared_notice(moved)}")
    kept = {certain_secret_key(s) for s in new.certain_sources}
    forget |= {certain_secret_key(s) for s in current.certain_sources} - kept
    return forget


def put_secrets(
    account: Account, env: Mapping[str, str], allowlist: EnvAllowList, store: SecretStore
) -> Account:
    """Put each connection's secret (and each Certain source's password) in: from an allowed
    `${VAR}`, or the stored one when it was entered for the destination as it is now."""
    for connection in account.connections:
        secret: str | None
        if connection.client_secret_ref:
            secret = allowlist.lookup(
                env, connection.client_secret_ref, destination_hosts(connection)
            )
        else:
            secret = store.get_for(connection.id, secret_binding(connection))
        connection.client_secret = SecretStr(secret) if secret else None
    for source in account.certain_sources:
        if source.password_ref:
            password = allowlist.lookup(env, source.password_ref, certain_hosts(source))
        else:
            password = store.get_for(certain_secret_key(source), certain_binding(source))
        source.password = SecretStr(password) if password else None
    return account


def bind_legacy_secrets(store: SecretStore, objects: Sequence[ConfigObject]) -> None:
    """Secrets kept before secrets were bound belong to their connection as stored now."""
    unbound = set(store.unbound())
    for obj in objects:
        if obj.kind != "connection" or obj.object_id not in unbound:
            continue
        body = {k: v for k, v in obj.body.items() if k not in (SECRET_MARK, CLEARED_MARK)}
        try:
            connection = Connection.model_validate(body)
        except ValueError:
            continue
        store.bind(obj.object_id, secret_binding(connection))


def account_from_snapshot(snapshot: ConfigSnapshot, box: SecretBox) -> Account:
    """The account a snapshot carries, with each connection's secret opened and put back (a
    secret that does not open for the connection's destination is left out)."""
    account = Account.model_validate(snapshot.account)
    for connection in account.connections:
        sealed = snapshot.secrets.get(connection.id)
        if sealed:
            try:
                secret = box.open(sealed, connection.id, secret_binding(connection))
            except SealError:
                continue
            connection.client_secret = SecretStr(secret)
    return account


def seal_snapshot(
    version: int,
    account: Account,
    catalog: EventCatalog,
    box: SecretBox,
    tested: Mapping[str, datetime] | None = None,
) -> ConfigSnapshot:
    """The whole configuration and catalog as workers need them, secrets sealed, each for
    its connection's identity URL and client id, the whole tagged (`stream.sealing`);
    `tested`: the connections' passing-test marks (`ConfigSnapshot.tested`)."""
    secrets = {
        c.id: box.seal(c.client_secret.get_secret_value(), c.id, secret_binding(c))
        for c in account.connections
        if c.client_secret is not None
    }
    snapshot = ConfigSnapshot(
        version=version,
        account=account.model_dump(mode="json"),
        secrets=secrets,
        catalog=catalog.to_dict(),
        tested=dict(tested or {}),
    )
    # Tagged with the same key file: workers apply no snapshot another producer made.
    return authenticate(snapshot, box)
