"""The account configuration as control owns it: stored in DuckDB, audited, published to workers.

Each object (tag, connection, mapping, flow, the assignments, the account header with the order
of every list) is one row of `config_objects`, so the audit trail says which flow changed and
how, not "the account changed". Secrets never reach the store: a connection's secret comes from
the environment variable it names (only names on the allow-list, `EnvAllowList`) or from the
`SecretStore` file; the stored body only says when the secret was last replaced, which is what
makes a secret change visible in the audit, and why it was cleared, if it was.

A secret is bound to the identity URL and client id it was entered for (`secret_binding`): a
change of either that does not come with a new secret (or `${VAR}` reference) clears it, and
says so (`secret_cleared`), so a secret is never sent to a host it was not entered for.

Every change (configuration by an operator, catalog by an `event.create_update` change) marks the
snapshot dirty; the publisher (`stream.control.snapshot_publisher`) sends the whole
`ConfigSnapshot` to `signal-config` after a short debounce. The snapshot's secrets are sealed
(`stream.sealing`): no plain consumer of the topic can read them.

Beside it, each for one concern: the current account and the commit that stores an edit, audited
per object (`config_state`), the stored form (`config_rows`), the secret rules and sealed
snapshots (`config_secrets`), the settings a Marketo call uses (`connection_settings`), reading an
imported document (`config_import`), editing Certain sources and their passwords
(`config_sources`), the event catalog's rebuild (`event_catalog`), the refusals (`config_errors`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from config.completeness import completeness
from config.models import Account, Assignments, CertainSource, Connection, Flow, Mode
from config.models import Mapping as MappingModel
from config.secret_refs import (
    DEFAULT_ALLOWLIST,
    EnvAllowList,
    cleared_notice,
    secret_binding,
)
from config.validation import Problem, validate_account
from stream.certain.events import ChangeEvent
from stream.core.catalog import EMPTY_CATALOG, EventCatalog
from stream.marketo.settings import MarketoSettings
from stream.messages import ConfigSnapshot
from stream.sealing import SecretBox
from stream.store import Store

from .config_errors import (
    ConfigServiceError,
    ConflictError,
    InvalidConfigError,
    NotFoundError,
    check_write,
)
from .config_import import ImportResult, import_result, read_document
from .config_rows import ASSIGNMENTS_KIND, SINGLETON_ID
from .config_secrets import check_reference, imported_secrets, seal_snapshot
from .config_sources import CertainSources
from .config_state import StoredAccount
from .connection_settings import candidate_settings, saved_settings
from .event_catalog import rebuild_catalog
from .secret_store import SecretStore
from .snapshot_publisher import Publisher, SnapshotPublisher

__all__ = [
    "ConfigService",
    "ConfigServiceError",
    "ConflictError",
    "FlowView",
    "ImportResult",
    "InvalidConfigError",
    "NotFoundError",
    "Publisher",
]

log = logging.getLogger("signal.control.config")


@dataclass(frozen=True)
class FlowView:
    flow: Flow
    reasons: list[str]
    version: int | None = None

    @property
    def complete(self) -> bool:
        return not self.reasons


class ConfigService:
    def __init__(
        self,
        store: Store,
        secrets: SecretStore,
        *,
        publish: Publisher | None = None,
        env: Mapping[str, str] | None = None,
        env_allowlist: EnvAllowList = DEFAULT_ALLOWLIST,
        box: SecretBox | None = None,
        debounce_s: float = 0.05,
    ) -> None:
        """`box` seals the secrets of published snapshots; without one a key of this process
        only is used (workers elsewhere cannot open them, but nothing travels in clear)."""
        self._store = store
        self._secrets = secrets
        self.env_allowlist = env_allowlist
        self.box = box or SecretBox.generate()
        self._state = StoredAccount(
            store, secrets, env=env, env_allowlist=env_allowlist, on_change=self.mark_dirty
        )
        self._catalog: EventCatalog = EMPTY_CATALOG
        self._lock = asyncio.Lock()
        self._snapshot_version = 0
        self._tested: dict[str, datetime] = {}
        self._sources = CertainSources(
            self._state,
            store,
            secrets,
            lock=self._lock,
            env_allowlist=env_allowlist,
            check_version=self._check_version,
        )
        self._publisher = (
            SnapshotPublisher(publish, self.snapshot, debounce_s=debounce_s)
            if publish is not None
            else None
        )

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, import_path: Path | None = None, *, actor: str = "system") -> None:
        """Load the stored account (importing `import_path` when the store has none), rebuild
        the catalog from archived event changes, publish the first snapshot."""
        loaded = await self._state.load()
        if not loaded and import_path is not None and (text := _read_text(import_path)) is not None:
            result = await self.import_text(text, f"{actor}:{import_path.name}")
            log.info("imported %s into the store (%s)", import_path, _count(result))
        self._catalog = await rebuild_catalog(self._store)
        if self._publisher is not None:
            await self._publisher.start()

    async def stop(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()

    # --- reading ---------------------------------------------------------------------------

    @property
    def account(self) -> Account:
        return self._state.account

    @property
    def published(self) -> ConfigSnapshot | None:
        """The last snapshot sent to `signal-config` (None before the first, or unpublished)."""
        return None if self._publisher is None else self._publisher.published

    @property
    def publish_pending(self) -> bool:
        """A change is not yet in a published snapshot: `published` is about to move."""
        return self._publisher is not None and self._publisher.pending

    async def published_settled(self, timeout_s: float) -> bool:
        """Wait until every change so far is in a published snapshot (at once when there is no
        publisher); False after `timeout_s` with one still waiting."""
        if self._publisher is None:
            return True
        return await self._publisher.settled(timeout_s)

    @property
    def catalog(self) -> EventCatalog:
        return self._catalog

    def version_of(self, kind: str, object_id: str) -> int | None:
        return self._state.versions.get((kind, object_id))

    def flow_views(self) -> list[FlowView]:
        return [self._view(flow) for flow in self._state.account.flows]

    def flow_view(self, flow_id: str) -> FlowView:
        flow = self._state.account.flow(flow_id)
        if flow is None:
            raise NotFoundError(f"no flow {flow_id!r}")
        return self._view(flow)

    def _view(self, flow: Flow) -> FlowView:
        return FlowView(
            flow, completeness(flow, self._state.account), self.version_of("flow", flow.id)
        )

    def connection(self, connection_id: str) -> Connection:
        connection = self._state.account.connection(connection_id)
        if connection is None:
            raise NotFoundError(f"no connection {connection_id!r}")
        return connection

    def secret_source(self, connection: Connection) -> str | None:
        """Where the connection's secret comes from (`env:VAR`, `stored`), None when it has none."""
        if connection.client_secret_ref:
            return f"env:{connection.client_secret_ref}" if connection.client_secret else None
        return "stored" if connection.client_secret is not None else None

    def secret_updated_at(self, connection_id: str) -> str | None:
        return self._state.secret_marks.get(connection_id)

    def secret_cleared(self, connection_id: str) -> str | None:
        """Why the connection's secret was cleared (until a new one is given), else None."""
        return self._state.cleared.get(connection_id)

    def marketo_settings(self, connection_id: str, **overrides: Any) -> MarketoSettings:
        connection = self.connection(connection_id)
        return saved_settings(connection, self._state.cleared.get(connection_id), **overrides)

    def snapshot(self) -> ConfigSnapshot:
        """The whole configuration and catalog as workers need them, secrets sealed, each for
        its connection's identity URL and client id, the whole tagged (`stream.sealing`)."""
        self._snapshot_version = max(self._snapshot_version + 1, time.time_ns() // 1_000_000)
        return seal_snapshot(
            self._snapshot_version, self._state.account, self._catalog, self.box, self._tested
        )

    def mark_tested(self, connection_id: str, at: datetime) -> None:
        """An operator's test passed with the connection's saved settings: the next snapshot
        carries the mark; workers close the connection's circuit breaker when it moves."""
        self._tested[connection_id] = at
        self.mark_dirty()

    # --- flows -----------------------------------------------------------------------------

    async def create_flow(self, flow: Flow, actor: str) -> FlowView:
        async with self._lock:
            if self._state.account.flow(flow.id) is not None:
                raise ConflictError(
                    f"flow {flow.id!r} already exists", [Problem("id", "already exists")]
                )
            account = self._state.account.model_copy(deep=True)
            account.flows.append(flow.model_copy(deep=True))
            await self._state.commit(account, actor)
        return self.flow_view(flow.id)

    async def update_flow(
        self, flow_id: str, flow: Flow, actor: str, *, expected_version: int | None = None
    ) -> FlowView:
        async with self._lock:
            index = self._flow_index(flow_id)
            self._check_version("flow", flow_id, expected_version)
            if flow.id != flow_id:
                raise InvalidConfigError(
                    "a flow's id cannot change",
                    [Problem("id", f"expected {flow_id!r} (the id in the URL), got {flow.id!r}")],
                )
            account = self._state.account.model_copy(deep=True)
            account.flows[index] = flow.model_copy(deep=True)
            await self._state.commit(account, actor)
        return self.flow_view(flow_id)

    async def set_flow_active(self, flow_id: str, active: bool, actor: str) -> FlowView:
        async with self._lock:
            index = self._flow_index(flow_id)
            flow = self._state.account.flows[index]
            if active and not flow.active:
                reasons = completeness(flow, self._state.account)
                if reasons:
                    raise ConflictError(
                        f"flow {flow_id!r} is incomplete and cannot be activated: "
                        + "; ".join(reasons),
                        [Problem("active", f"flow is incomplete: {r}") for r in reasons],
                    )
            account = self._state.account.model_copy(deep=True)
            account.flows[index].active = active
            await self._state.commit(account, actor)
        return self.flow_view(flow_id)

    async def set_flow_mode(self, flow_id: str, mode: Mode, actor: str) -> FlowView:
        async with self._lock:
            index = self._flow_index(flow_id)
            account = self._state.account.model_copy(deep=True)
            account.flows[index].mode = mode
            await self._state.commit(account, actor)
        return self.flow_view(flow_id)

    def _check_version(self, kind: str, object_id: str, expected: int | None) -> None:
        """Optimistic concurrency for editors: refuse to overwrite someone else's save."""
        if expected is None:
            return
        current = self.version_of(kind, object_id)
        if current != expected:
            raise ConflictError(
                f"{kind} {object_id!r} is at version {current}, not {expected}; "
                "reload it and apply the change again",
                [Problem("version", f"changed since it was read (now version {current})")],
            )

    def _flow_index(self, flow_id: str) -> int:
        for index, flow in enumerate(self._state.account.flows):
            if flow.id == flow_id:
                return index
        raise NotFoundError(f"no flow {flow_id!r}")

    # --- mappings --------------------------------------------------------------------------

    def mapping(self, mapping_id: str) -> MappingModel:
        mapping = self._state.account.mapping(mapping_id)
        if mapping is None:
            raise NotFoundError(f"no mapping {mapping_id!r}")
        return mapping

    def mapping_users(self, mapping_id: str) -> list[str]:
        """Ids of the flows whose destination uses the mapping: who an edit reaches."""
        return [f.id for f in self._state.account.flows if f.destination.mapping == mapping_id]

    async def save_mapping(
        self,
        mapping: MappingModel,
        actor: str,
        *,
        create: bool,
        expected_version: int | None = None,
    ) -> MappingModel:
        """Create or replace one mapping, validated with the whole account (a flow that uses
        it must stay valid) and audited as its own object."""
        async with self._lock:
            existing = self._state.account.mapping(mapping.id)
            check_write("mapping", mapping.id, exists=existing is not None, create=create)
            self._check_version("mapping", mapping.id, expected_version)
            account = self._state.account.model_copy(deep=True)
            new = mapping.model_copy(deep=True)
            if existing is None:
                account.mappings.append(new)
            else:
                index = next(i for i, m in enumerate(account.mappings) if m.id == new.id)
                account.mappings[index] = new
            await self._state.commit(account, actor)
        return self.mapping(mapping.id)

    async def delete_mapping(
        self, mapping_id: str, actor: str, *, expected_version: int | None = None
    ) -> None:
        """Delete one mapping that no flow uses. A mapping in use is refused (409) naming the
        flows, rather than leaving them pointing at nothing."""
        async with self._lock:
            self.mapping(mapping_id)
            self._check_version("mapping", mapping_id, expected_version)
            users = [f for f in self._state.account.flows if f.destination.mapping == mapping_id]
            if users:
                names = ", ".join(f"{f.name!r} ({f.id})" for f in users)
                message = (
                    f"mapping {mapping_id!r} is used by {len(users)} flow(s): {names}; "
                    "choose another mapping for them first"
                )
                raise ConflictError(message, [Problem("used_by", message)])
            account = self._state.account.model_copy(deep=True)
            account.mappings = [m for m in account.mappings if m.id != mapping_id]
            await self._state.commit(account, actor)

    # --- tag assignments -------------------------------------------------------------------

    @property
    def assignments_version(self) -> int | None:
        return self.version_of(ASSIGNMENTS_KIND, SINGLETON_ID)

    async def save_assignments(
        self, assignments: Assignments, actor: str, *, expected_version: int | None = None
    ) -> Assignments:
        """Replace the account-level tag assignments, validated with the whole account (an
        unknown tag, or one that does not apply to the item's kind, is refused by its path) and
        audited as the `assignments` object; workers get them with the next snapshot."""
        async with self._lock:
            self._check_version(ASSIGNMENTS_KIND, SINGLETON_ID, expected_version)
            account = self._state.account.model_copy(deep=True)
            account.assignments = assignments.model_copy(deep=True)
            await self._state.commit(account, actor)
        return self._state.account.assignments

    async def assign_tags(
        self,
        kind: str,
        label: str,
        tags: Sequence[str],
        actor: str,
        *,
        expected_version: int | None = None,
    ) -> Assignments:
        """Set the tags of one item (`kind` an `Assignments` field, `label` the item's label);
        an empty `tags` removes the item's assignment. Other items are left as they are, so two
        operators tagging different statuses do not overwrite each other."""
        async with self._lock:
            self._check_version(ASSIGNMENTS_KIND, SINGLETON_ID, expected_version)
            account = self._state.account.model_copy(deep=True)
            items: dict[str, list[str]] = dict(getattr(account.assignments, kind))
            if tags:
                items[label] = list(dict.fromkeys(tags))
            else:
                items.pop(label, None)
            setattr(account.assignments, kind, items)
            await self._state.commit(account, actor)
        return self._state.account.assignments

    # --- connections -----------------------------------------------------------------------

    async def save_connection(
        self,
        connection: Connection,
        actor: str,
        *,
        create: bool,
        secret: str | None = None,
        expected_version: int | None = None,
    ) -> Connection:
        """Create or replace a connection. `secret` replaces the stored secret; None keeps it
        (secrets are write-only, so a client that read the connection never has it) unless the
        identity URL or the client id changed: then the secret (stored, or the `${VAR}`
        reference) is cleared and `secret_cleared` says why. `connection.client_secret_ref` set
        means a `${VAR}` reference given with this change."""
        async with self._lock:
            existing = self._state.account.connection(connection.id)
            check_write("connection", connection.id, exists=existing is not None, create=create)
            self._check_version("connection", connection.id, expected_version)
            new = connection.model_copy(deep=True)
            new.client_secret = None
            check_reference(self.env_allowlist, new, "client_secret")
            given = secret is not None or new.client_secret_ref is not None
            cleared = self._state.cleared.copy()
            forget: set[str] = set()
            if secret is not None:
                new.client_secret_ref = None
            if given:
                cleared.pop(new.id, None)
            elif existing is not None:
                moved = secret_binding(existing).changes_to(secret_binding(new))
                if moved is None:
                    new.client_secret_ref = existing.client_secret_ref
                elif existing.client_secret_ref is not None or new.id in self._secrets:
                    cleared[new.id] = cleared_notice(moved)
                    forget.add(new.id)
            account = self._state.account.model_copy(deep=True)
            if existing is None:
                account.connections.append(new)
            else:
                index = next(i for i, c in enumerate(account.connections) if c.id == new.id)
                account.connections[index] = new
            secrets = {new.id: secret} if secret is not None else {}
            await self._state.commit(
                account, actor, secrets=secrets, forget=forget, cleared=cleared
            )
            if forget:
                log.info("connection %s: %s", new.id, cleared[new.id])
        return self.connection(connection.id)

    def candidate_settings(
        self, candidate: Connection, secret: str | None = None, **overrides: Any
    ) -> MarketoSettings:
        """Settings to test `candidate` before it is saved; nothing is stored.

        The secret is `secret` when given, else the `${VAR}` the candidate names (allow-listed,
        and set), else the stored secret of the connection with the candidate's id, but only
        while the candidate keeps the identity URL, client id and service URL that secret was
        entered for (`secret_binding`): a test never sends a stored secret anywhere a save
        would have cleared it for. Raises `InvalidConfigError` naming `client_secret` otherwise.
        """
        return candidate_settings(
            candidate,
            secret,
            existing=self._state.account.connection(candidate.id),
            cleared=self._state.cleared.get(candidate.id),
            allowlist=self.env_allowlist,
            env=self._state.environment(),
            **overrides,
        )

    async def delete_connection(self, connection_id: str, actor: str) -> None:
        async with self._lock:
            self.connection(connection_id)
            account = self._state.account.model_copy(deep=True)
            account.connections = [c for c in account.connections if c.id != connection_id]
            cleared = {k: v for k, v in self._state.cleared.items() if k != connection_id}
            await self._state.commit(account, actor, forget={connection_id}, cleared=cleared)

    # --- whole account ---------------------------------------------------------------------

    async def import_text(self, text: str, actor: str, *, json_body: bool = False) -> ImportResult:
        """Replace the account with a YAML (or JSON) document, validated as a whole.

        Raises `InvalidConfigError` with every problem by path; nothing is changed then. The
        text is parsed and validated on a thread (`read_document`), off the event loop.
        """
        loaded = await asyncio.to_thread(
            read_document, text, json_body, self._state.environment(), self.env_allowlist
        )
        assert loaded.account is not None
        return await self.replace_account(loaded.account, actor, literal=loaded.literal_secrets)

    async def replace_account(
        self, account: Account, actor: str, *, literal: Iterable[str] = ()
    ) -> ImportResult:
        async with self._lock:
            problems = validate_account(account)
            if problems:
                raise InvalidConfigError("the configuration has problems", problems)
            new = account.model_copy(deep=True)
            taken = imported_secrets(
                new, self._state.account, self._secrets, self._state.cleared, self.env_allowlist
            )
            cleared = taken.cleared
            before = self._state.bodies(self._state.account) if self._state.stored else {}
            await self._state.commit(
                new,
                actor,
                secrets=taken.secrets,
                forget=taken.forget,
                cleared=cleared,
                validate=False,
            )
            after = self._state.bodies(self._state.account)
        return import_result(
            self._state.account.account,
            before,
            after,
            literal=literal,
            notices=taken.notices,
            connections=self._state.account.connections,
            cleared=cleared,
        )

    # --- Certain sources (`config_sources`) ----------------------------------------------

    @property
    def deleted_sources(self) -> set[str]:
        """Certain sources deleted since start (and not created again): their state is gone."""
        return self._sources.deleted

    def certain_source(self, source_id: str) -> CertainSource:
        return self._sources.source(source_id)

    async def save_certain_source(
        self,
        source: CertainSource,
        actor: str,
        *,
        create: bool,
        password: str | None = None,
        expected_version: int | None = None,
    ) -> tuple[CertainSource, str | None]:
        """Create or replace one Certain source (`CertainSources.save`)."""
        return await self._sources.save(
            source, actor, create=create, password=password, expected_version=expected_version
        )

    async def delete_certain_source(
        self, source_id: str, actor: str, *, expected_version: int | None = None
    ) -> None:
        """Remove a source, its stored password and poll state (`CertainSources.delete`)."""
        await self._sources.delete(source_id, actor, expected_version=expected_version)

    def candidate_source(self, candidate: CertainSource, password: str | None) -> CertainSource:
        """`candidate` with the password a test of it sends (`CertainSources.candidate`)."""
        return self._sources.candidate(candidate, password)

    # --- catalog ---------------------------------------------------------------------------

    def apply_changes(self, changes: Iterable[ChangeEvent]) -> bool:
        """Fold event changes (already archived) into the catalog; True if it changed."""
        catalog = self._catalog.apply_all(changes)
        if catalog == self._catalog:
            return False
        self._catalog = catalog
        self.mark_dirty()
        return True

    # --- publishing ------------------------------------------------------------------------

    def mark_dirty(self) -> None:
        """A snapshot is due: the configuration or the catalog changed."""
        if self._publisher is not None:
            self._publisher.mark_dirty()


def _read_text(path: Path) -> str | None:
    """A small file read once at start-up; None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _count(result: ImportResult) -> str:
    return (
        f"{len(result.created)} created, {len(result.updated)} updated, "
        f"{len(result.deleted)} deleted"
    )
