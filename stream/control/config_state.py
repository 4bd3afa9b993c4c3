"""The account as control holds it and as it stands in the store: the current `Account` (secrets
put in), each stored object's version, when each connection's secret was last replaced and why
one was cleared, and the commit that turns an edited account into audited `config_objects` rows.

`ConfigService` decides what an edit may do (conflicts, versions, secret rules); this module
only stores the outcome, so the rules of an edit and the mechanics of storing it are read, and
changed, apart. The caller holds the service's lock around `commit`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from config.models import Account
from config.secret_refs import EnvAllowList, certain_binding, certain_secret_key, secret_binding
from config.validation import validate_account
from stream.store import ConfigObject, Store
from stream.store.errors import StoreError

from . import config_rows
from .config_errors import InvalidConfigError
from .config_rows import DEFAULT_ACCOUNT_NAME
from .config_secrets import bind_legacy_secrets, put_secrets
from .secret_store import SecretStore

log = logging.getLogger("signal.control.config")


class StoredAccount:
    """The current account and its stored form; `on_change` is called after every commit (a
    snapshot is due)."""

    def __init__(
        self,
        store: Store,
        secrets: SecretStore,
        *,
        env: Mapping[str, str] | None,
        env_allowlist: EnvAllowList,
        on_change: Callable[[], None],
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._env = env
        self._allowlist = env_allowlist
        self._changed = on_change
        self.account = Account(account=DEFAULT_ACCOUNT_NAME)
        self.stored = False
        """Whether the store holds an account (else the first commit writes every object)."""
        self.versions: dict[tuple[str, str], int] = {}
        self.secret_marks: dict[str, str] = {}
        self.cleared: dict[str, str] = {}

    async def load(self) -> bool:
        """Read the stored account; False when the store holds none."""
        objects = await self._store.load_config()
        if not objects:
            return False
        bind_legacy_secrets(self._secrets, objects)
        self.account = self.from_objects(objects)
        self.stored = True
        return True

    async def commit(
        self,
        account: Account,
        actor: str,
        *,
        secrets: Mapping[str, str] | None = None,
        forget: Iterable[str] = (),
        cleared: Mapping[str, str] | None = None,
        validate: bool = True,
    ) -> None:
        """Store what differs between the current account and `account`, audited per object,
        then make it current and schedule a snapshot. `secrets` are stored bound to their
        connection's destination in `account`; `cleared` (None: unchanged) says which
        connections' secrets were cleared and why. Caller holds the lock."""
        if validate:
            old = {str(p) for p in validate_account(self.account)}
            fresh = [p for p in validate_account(account) if str(p) not in old]
            if fresh:
                raise InvalidConfigError("the change would make the configuration invalid", fresh)
        now = datetime.now(UTC).isoformat()
        marks = dict(self.secret_marks)
        for connection_id, secret in (secrets or {}).items():
            if self._secrets.get(connection_id) != secret:
                marks[connection_id] = now
        for connection_id in forget:
            marks.pop(connection_id, None)
        notes = dict(self.cleared if cleared is None else cleared)
        ids = {c.id for c in account.connections}
        notes = {k: v for k, v in notes.items() if k in ids}
        old_bodies = (
            self.bodies(self.account, self.secret_marks, self.cleared) if self.stored else {}
        )
        new_bodies = self.bodies(account, marks, notes)
        try:
            for key, body in new_bodies.items():
                if old_bodies.get(key) != body:
                    saved = await self._store.save_config_object(key[0], key[1], body, actor)
                    self.versions[key] = saved.version
            for key in old_bodies.keys() - new_bodies.keys():
                await self._store.delete_config_object(key[0], key[1], actor)
                self.versions.pop(key, None)
        except StoreError:
            log.exception("configuration change by %s only partly stored; reloading", actor)
            await self.reload()
            raise
        bindings = {c.id: secret_binding(c) for c in account.connections}
        bindings |= {certain_secret_key(s): certain_binding(s) for s in account.certain_sources}
        for connection_id in forget:
            self._secrets.delete(connection_id)
        for connection_id, secret in (secrets or {}).items():
            self._secrets.set(connection_id, secret, bindings.get(connection_id))
        self.secret_marks = marks
        self.cleared = notes
        self.account = self.with_secrets(account)
        self.stored = True
        self._changed()

    async def reload(self) -> None:
        objects = await self._store.load_config()
        if objects:
            self.account = self.from_objects(objects)

    def bodies(
        self,
        account: Account,
        marks: Mapping[str, str] | None = None,
        cleared: Mapping[str, str] | None = None,
    ) -> config_rows.Bodies:
        return config_rows.bodies(
            account,
            self.secret_marks if marks is None else marks,
            self.cleared if cleared is None else cleared,
        )

    def from_objects(self, objects: Sequence[ConfigObject]) -> Account:
        stored = config_rows.read_objects(objects)
        self.versions.update(stored.versions)
        self.secret_marks.update(stored.marks)
        self.cleared.update(stored.cleared)
        return self.with_secrets(stored.account)

    def with_secrets(self, account: Account) -> Account:
        return put_secrets(account, self.environment(), self._allowlist, self._secrets)

    def environment(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env
