"""The account's Certain sources as operators edit them: create, replace, delete, and the
candidate a test sends, each with the source's password.

Apart from `ConfigService` because a source's life reaches past the account: its password sits in
the secret store under its own key (`certain_secret_key`), and deleting it forgets its poll state
(watermarks, last seen) in the ledger and tells the running poller (`deleted`) to let go. The
service keeps its public methods and delegates here; both share its lock, so a source's edit and
any other edit are stored one after the other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from config.models import CertainSource
from config.secret_refs import EnvAllowList, certain_secret_key
from stream.store import Store
from stream.store.certain_state import forget_source

from .certain_source_config import candidate_source, saved_password
from .config_errors import NotFoundError, check_write
from .config_state import StoredAccount
from .secret_store import SecretStore

__all__ = ["CertainSources", "VersionCheck"]

log = logging.getLogger("signal.control.config")

KIND = "certain_source"

VersionCheck = Callable[[str, str, int | None], None]
"""The service's optimistic-concurrency check: (kind, object id, expected version)."""


class CertainSources:
    """Edits of the account's Certain sources, stored through `state` under `lock`."""

    def __init__(
        self,
        state: StoredAccount,
        store: Store,
        secrets: SecretStore,
        *,
        lock: asyncio.Lock,
        env_allowlist: EnvAllowList,
        check_version: VersionCheck,
    ) -> None:
        self._state = state
        self._store = store
        self._secrets = secrets
        self._lock = lock
        self._allowlist = env_allowlist
        self._check_version = check_version
        self.deleted: set[str] = set()
        """Sources deleted since start (and not created again): their state is gone."""

    def source(self, source_id: str) -> CertainSource:
        source = self._state.account.certain_source(source_id)
        if source is None:
            raise NotFoundError(f"no Certain source {source_id!r}")
        return source

    async def save(
        self,
        source: CertainSource,
        actor: str,
        *,
        create: bool,
        password: str | None = None,
        expected_version: int | None = None,
    ) -> tuple[CertainSource, str | None]:
        """Create or replace one Certain source; the password follows a client secret's rules
        (`certain_source_config.saved_password`). Returns the source and, when a change of host
        or username cleared its stored password, why."""
        async with self._lock:
            existing = self._state.account.certain_source(source.id)
            check_write("Certain source", source.id, exists=existing is not None, create=create)
            self._check_version(KIND, source.id, expected_version)
            new = source.model_copy(deep=True)
            stored = certain_secret_key(new) in self._secrets
            taken = saved_password(
                new, existing, password, stored=stored, allowlist=self._allowlist
            )
            account = self._state.account.model_copy(deep=True)
            items = account.certain_sources
            index = next((i for i, s in enumerate(items) if s.id == new.id), len(items))
            items[index : index + 1] = [new]
            await self._state.commit(account, actor, secrets=taken.secrets, forget=taken.forget)
            self.deleted.discard(new.id)
            if taken.cleared:
                log.info("Certain source %s: %s", new.id, taken.cleared)
        return self.source(source.id), taken.cleared

    async def delete(
        self, source_id: str, actor: str, *, expected_version: int | None = None
    ) -> None:
        """Remove a source with its stored password and its poll state (watermarks, last
        seen), so one added again under its id starts at its start point. Its running poller
        stops at control's next reconcile, which forgets again what a page it was committing
        meanwhile wrote (`deleted`)."""
        async with self._lock:
            self.source(source_id)
            self._check_version(KIND, source_id, expected_version)
            account = self._state.account.model_copy(deep=True)
            account.certain_sources = [s for s in account.certain_sources if s.id != source_id]
            await self._state.commit(account, actor, forget={certain_secret_key(source_id)})
            self.deleted.add(source_id)
            await forget_source(self._store, source_id)

    def candidate(self, candidate: CertainSource, password: str | None) -> CertainSource:
        """`candidate` with the password a test of it sends (`certain_source_config`)."""
        return candidate_source(
            candidate,
            password,
            existing=self._state.account.certain_source(candidate.id),
            allowlist=self._allowlist,
            env=self._state.environment(),
        )
