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
snapshot dirty; a publisher task sends the whole `ConfigSnapshot` to `signal-config` after a short
debounce, so a burst of edits costs one message and a single edit reaches workers in well under a
second. The snapshot's secrets are sealed (`stream.sealing`): no plain consumer of the topic can
read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from config.completeness import completeness
from config.input_limits import parse_json
from config.models import Account, Assignments, CertainSource, Connection, Flow, Mode, Tag
from config.models import Mapping as MappingModel
from config.secret_refs import (
    DEFAULT_ALLOWLIST,
    EnvAllowList,
    certain_binding,
    certain_cleared_notice,
    certain_hosts,
    certain_secret_key,
    cleared_notice,
    destination_hosts,
    secret_binding,
)
from config.validation import Problem, validate_account
from config.yamlio import Loaded, YamlSyntaxError, load_raw, load_text
from stream.certain.events import ChangeEvent
from stream.certain.parsing import parse_change
from stream.core.catalog import EMPTY_CATALOG, EventCatalog
from stream.marketo.settings import MarketoSettings
from stream.messages import ConfigSnapshot
from stream.sealing import SealError, SecretBox, authenticate
from stream.store import ConfigObject, Store
from stream.store.errors import StoreError

from .secret_store import SecretStore

log = logging.getLogger("signal.control.config")

Publisher = Callable[[ConfigSnapshot], Awaitable[None]]

DEFAULT_ACCOUNT_NAME = "default"
SECTIONS: tuple[tuple[str, str], ...] = (
    ("tags", "tag"),
    ("connections", "connection"),
    ("mappings", "mapping"),
    ("flows", "flow"),
    ("certain_sources", "certain_source"),
)
"""Account list → stored object kind."""
HEADER_KIND = "account"
ASSIGNMENTS_KIND = "assignments"
SINGLETON_ID = "account"
SECRET_MARK = "secret_updated_at"
"""Stored in a connection's body instead of the secret: when it was last replaced."""
CLEARED_MARK = "secret_cleared"
"""Stored in a connection's body while its secret is cleared: why (a change of destination)."""

_CATALOG_SQL = (
    "SELECT payload::VARCHAR FROM changes WHERE type = 'event.create_update' "
    "QUALIFY row_number() OVER (PARTITION BY event_code "
    "ORDER BY occurred_at DESC, received_at DESC) = 1"
)


class ConfigServiceError(Exception):
    """Base of the refusals the operator API turns into 4xx answers."""

    status = 400

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems) or [Problem("", message)]


class NotFoundError(ConfigServiceError):
    status = 404


class ConflictError(ConfigServiceError):
    status = 409


class InvalidConfigError(ConfigServiceError):
    status = 422


@dataclass(frozen=True)
class FlowView:
    flow: Flow
    reasons: list[str]
    version: int | None = None

    @property
    def complete(self) -> bool:
        return not self.reasons


@dataclass
class ImportResult:
    account: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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
        self._publish = publish
        self._env = env
        self.env_allowlist = env_allowlist
        self.box = box or SecretBox.generate()
        self._debounce_s = debounce_s
        self._account = Account(account=DEFAULT_ACCOUNT_NAME)
        self._stored = False
        self._versions: dict[tuple[str, str], int] = {}
        self._secret_marks: dict[str, str] = {}
        self._cleared: dict[str, str] = {}
        self._catalog: EventCatalog = EMPTY_CATALOG
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._snapshot_version = 0
        self.published: ConfigSnapshot | None = None
        self.publish_failures = 0

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, import_path: Path | None = None, *, actor: str = "system") -> None:
        """Load the stored account (importing `import_path` when the store has none), rebuild
        the catalog from archived event changes, publish the first snapshot."""
        objects = await self._store.load_config()
        if objects:
            self._bind_legacy_secrets(objects)
            self._account = self._from_objects(objects)
            self._stored = True
        elif import_path is not None and (text := _read_text(import_path)) is not None:
            result = await self.import_text(text, f"{actor}:{import_path.name}")
            log.info("imported %s into the store (%s)", import_path, _count(result))
        self._catalog = await self._load_catalog()
        if self._publish is not None:
            await self._publish_with_retry(self.snapshot())
            self._publisher = asyncio.create_task(self._publish_loop(), name="config-publisher")

    async def stop(self) -> None:
        task, self._publisher = self._publisher, None
        if task is None:
            return
        if self._dirty.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publish_once(), 5.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # --- reading ---------------------------------------------------------------------------

    @property
    def account(self) -> Account:
        return self._account

    @property
    def catalog(self) -> EventCatalog:
        return self._catalog

    def version_of(self, kind: str, object_id: str) -> int | None:
        return self._versions.get((kind, object_id))

    def flow_views(self) -> list[FlowView]:
        return [self._view(flow) for flow in self._account.flows]

    def flow_view(self, flow_id: str) -> FlowView:
        flow = self._account.flow(flow_id)
        if flow is None:
            raise NotFoundError(f"no flow {flow_id!r}")
        return self._view(flow)

    def _view(self, flow: Flow) -> FlowView:
        return FlowView(flow, completeness(flow, self._account), self.version_of("flow", flow.id))

    def connection(self, connection_id: str) -> Connection:
        connection = self._account.connection(connection_id)
        if connection is None:
            raise NotFoundError(f"no connection {connection_id!r}")
        return connection

    def secret_source(self, connection: Connection) -> str | None:
        """Where the connection's secret comes from (`env:VAR`, `stored`), None when it has none."""
        if connection.client_secret_ref:
            return f"env:{connection.client_secret_ref}" if connection.client_secret else None
        return "stored" if connection.client_secret is not None else None

    def secret_updated_at(self, connection_id: str) -> str | None:
        return self._secret_marks.get(connection_id)

    def secret_cleared(self, connection_id: str) -> str | None:
        """Why the connection's secret was cleared (until a new one is given), else None."""
        return self._cleared.get(connection_id)

    def marketo_settings(self, connection_id: str, **overrides: Any) -> MarketoSettings:
        connection = self.connection(connection_id)
        if connection.client_id is None:
            raise InvalidConfigError(
                f"connection {connection_id!r} has no client id",
                [Problem("client_id", "required to reach Marketo")],
            )
        if connection.client_secret is None:
            cleared = self._cleared.get(connection_id)
            raise InvalidConfigError(
                f"connection {connection_id!r} has no client secret"
                + (f": {cleared}" if cleared else ""),
                [Problem("client_secret", cleared or "required to reach Marketo")],
            )
        return MarketoSettings(
            connection_id=connection.id,
            base_url=connection.base_url,
            client_id=connection.client_id,
            client_secret=connection.client_secret,
            identity_url=str(connection.access_token_url) if connection.access_token_url else None,
            scope=connection.scope,
            rate_share=connection.rate_share,
            max_in_flight=connection.max_in_flight,
            **overrides,
        )

    def snapshot(self) -> ConfigSnapshot:
        """The whole configuration and catalog as workers need them, secrets sealed, each for
        its connection's identity URL and client id, the whole tagged (`stream.sealing`)."""
        self._snapshot_version = max(self._snapshot_version + 1, time.time_ns() // 1_000_000)
        secrets = {
            c.id: self.box.seal(c.client_secret.get_secret_value(), c.id, secret_binding(c))
            for c in self._account.connections
            if c.client_secret is not None
        }
        snapshot = ConfigSnapshot(
            version=self._snapshot_version,
            account=self._account.model_dump(mode="json"),
            secrets=secrets,
            catalog=self._catalog.to_dict(),
        )
        # Tagged with the same key file: workers apply no snapshot another producer made.
        return authenticate(snapshot, self.box)

    # --- flows -----------------------------------------------------------------------------

    async def create_flow(self, flow: Flow, actor: str) -> FlowView:
        async with self._lock:
            if self._account.flow(flow.id) is not None:
                raise ConflictError(
                    f"flow {flow.id!r} already exists", [Problem("id", "already exists")]
                )
            account = self._account.model_copy(deep=True)
            account.flows.append(flow.model_copy(deep=True))
            await self._commit(account, actor)
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
            account = self._account.model_copy(deep=True)
            account.flows[index] = flow.model_copy(deep=True)
            await self._commit(account, actor)
        return self.flow_view(flow_id)

    async def set_flow_active(self, flow_id: str, active: bool, actor: str) -> FlowView:
        async with self._lock:
            index = self._flow_index(flow_id)
            flow = self._account.flows[index]
            if active and not flow.active:
                reasons = completeness(flow, self._account)
                if reasons:
                    raise ConflictError(
                        f"flow {flow_id!r} is incomplete and cannot be activated: "
                        + "; ".join(reasons),
                        [Problem("active", f"flow is incomplete: {r}") for r in reasons],
                    )
            account = self._account.model_copy(deep=True)
            account.flows[index].active = active
            await self._commit(account, actor)
        return self.flow_view(flow_id)

    async def set_flow_mode(self, flow_id: str, mode: Mode, actor: str) -> FlowView:
        async with self._lock:
            index = self._flow_index(flow_id)
            account = self._account.model_copy(deep=True)
            account.flows[index].mode = mode
            await self._commit(account, actor)
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
        for index, flow in enumerate(self._account.flows):
            if flow.id == flow_id:
                return index
        raise NotFoundError(f"no flow {flow_id!r}")

    # --- mappings --------------------------------------------------------------------------

    def mapping(self, mapping_id: str) -> MappingModel:
        mapping = self._account.mapping(mapping_id)
        if mapping is None:
            raise NotFoundError(f"no mapping {mapping_id!r}")
        return mapping

    def mapping_users(self, mapping_id: str) -> list[str]:
        """Ids of the flows whose destination uses the mapping: who an edit reaches."""
        return [f.id for f in self._account.flows if f.destination.mapping == mapping_id]

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
            existing = self._account.mapping(mapping.id)
            if create and existing is not None:
                raise ConflictError(
                    f"mapping {mapping.id!r} already exists", [Problem("id", "already exists")]
                )
            if not create and existing is None:
                raise NotFoundError(f"no mapping {mapping.id!r}")
            self._check_version("mapping", mapping.id, expected_version)
            account = self._account.model_copy(deep=True)
            new = mapping.model_copy(deep=True)
            if existing is None:
                account.mappings.append(new)
            else:
                index = next(i for i, m in enumerate(account.mappings) if m.id == new.id)
                account.mappings[index] = new
            await self._commit(account, actor)
        return self.mapping(mapping.id)

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
            account = self._account.model_copy(deep=True)
            account.assignments = assignments.model_copy(deep=True)
            await self._commit(account, actor)
        return self._account.assignments

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
            account = self._account.model_copy(deep=True)
            items: dict[str, list[str]] = dict(getattr(account.assignments, kind))
            if tags:
                items[label] = list(dict.fromkeys(tags))
            else:
                items.pop(label, None)
            setattr(account.assignments, kind, items)
            await self._commit(account, actor)
        return self._account.assignments

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
            existing = self._account.connection(connection.id)
            if create and existing is not None:
                raise ConflictError(
                    f"connection {connection.id!r} already exists",
                    [Problem("id", "already exists")],
                )
            if not create and existing is None:
                raise NotFoundError(f"no connection {connection.id!r}")
            self._check_version("connection", connection.id, expected_version)
            new = connection.model_copy(deep=True)
            new.client_secret = None
            self._check_reference(new, "client_secret")
            given = secret is not None or new.client_secret_ref is not None
            cleared = self._cleared.copy()
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
            account = self._account.model_copy(deep=True)
            if existing is None:
                account.connections.append(new)
            else:
                index = next(i for i, c in enumerate(account.connections) if c.id == new.id)
                account.connections[index] = new
            secrets = {new.id: secret} if secret is not None else {}
            await self._commit(account, actor, secrets=secrets, forget=forget, cleared=cleared)
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
        if candidate.client_id is None:
            raise InvalidConfigError(
                "the connection has no client id",
                [Problem("client_id", "required to reach Marketo")],
            )
        value = secret
        if value is None and candidate.client_secret_ref is not None:
            name = candidate.client_secret_ref
            self._check_reference(candidate, "client_secret")
            value = self.env_allowlist.lookup(
                self._environment(), name, destination_hosts(candidate)
            )
            if value is None:
                why = f"environment variable {name} is not set (from ${{{name}}})"
                raise InvalidConfigError(why, [Problem("client_secret", why)])
        if value is None:
            value = self._stored_secret_for(candidate)
        return MarketoSettings(
            connection_id=candidate.id,
            base_url=candidate.base_url,
            client_id=candidate.client_id,
            client_secret=SecretStr(value),
            identity_url=str(candidate.access_token_url) if candidate.access_token_url else None,
            scope=candidate.scope,
            rate_share=candidate.rate_share,
            max_in_flight=candidate.max_in_flight,
            **overrides,
        )

    def _stored_secret_for(self, candidate: Connection) -> str:
        """The secret of the stored connection `candidate` edits, if it may go where the
        candidate would send it."""
        existing = self._account.connection(candidate.id)
        if existing is None or existing.client_secret is None:
            cleared = self._cleared.get(candidate.id) if existing is not None else None
            why = cleared or "required to test the connection: enter the client secret"
            raise InvalidConfigError(why, [Problem("client_secret", why)])
        moved = secret_binding(existing).changes_to(secret_binding(candidate))
        if moved is not None:
            why = f"the stored client secret is not sent because {moved}; enter it again"
            raise InvalidConfigError(why, [Problem("client_secret", why)])
        return existing.client_secret.get_secret_value()

    def _check_reference(self, connection: Connection, path: str) -> None:
        """Refuse the connection's `${VAR}` unless the allow-list names it for the hosts the
        connection sends its secret and tokens to."""
        name = connection.client_secret_ref
        hosts = destination_hosts(connection)
        if name is not None and not self.env_allowlist.allows_for(name, hosts):
            refusal = self.env_allowlist.refusal_for(name, hosts)
            raise InvalidConfigError(refusal, [Problem(path, refusal)])

    async def delete_connection(self, connection_id: str, actor: str) -> None:
        async with self._lock:
            self.connection(connection_id)
            account = self._account.model_copy(deep=True)
            account.connections = [c for c in account.connections if c.id != connection_id]
            cleared = {k: v for k, v in self._cleared.items() if k != connection_id}
            await self._commit(account, actor, forget={connection_id}, cleared=cleared)

    # --- whole account ---------------------------------------------------------------------

    async def import_text(self, text: str, actor: str, *, json_body: bool = False) -> ImportResult:
        """Replace the account with a YAML (or JSON) document, validated as a whole.

        Raises `InvalidConfigError` with every problem by path; nothing is changed then. The
        text is parsed and validated on a thread (`load_import`), off the event loop.
        """
        loaded = await asyncio.to_thread(self.load_import, text, json_body)
        assert loaded.account is not None
        return await self.replace_account(loaded.account, actor, literal=loaded.literal_secrets)

    def load_import(self, text: str, json_body: bool = False) -> Loaded:
        """The account in a YAML (or JSON) document, validated (blocking: parsing is bounded
        by `config.input_limits`, but may still take a second or two).

        Raises `InvalidConfigError` with every problem by path.
        """
        env = self._environment()
        try:
            if json_body:
                try:
                    raw = parse_json(text)
                except ValueError as error:
                    raise InvalidConfigError(
                        f"not JSON: {error}", [Problem("", f"not JSON: {error}")]
                    ) from None
                loaded = load_raw(raw, env, require_env=False, allow=self.env_allowlist)
            else:
                loaded = load_text(text, env, require_env=False, allow=self.env_allowlist)
        except YamlSyntaxError as error:
            where = f"line {error.line}, column {error.column}" if error.line else ""
            raise InvalidConfigError(
                f"YAML syntax error: {error}",
                [Problem(where, f"YAML syntax error: {error.problem}")],
            ) from None
        if loaded.account is None or loaded.problems:
            raise InvalidConfigError("the configuration has problems", loaded.problems)
        return loaded

    async def replace_account(
        self, account: Account, actor: str, *, literal: Iterable[str] = ()
    ) -> ImportResult:
        async with self._lock:
            problems = validate_account(account)
            if problems:
                raise InvalidConfigError("the configuration has problems", problems)
            new = account.model_copy(deep=True)
            secrets: dict[str, str] = {}
            cleared: dict[str, str] = {}
            notices: list[str] = []
            for index, connection in enumerate(new.connections):
                self._check_reference(connection, f"connections[{index}].client_secret")
                secret = connection.client_secret
                if connection.client_secret_ref is None and secret is not None:
                    secrets[connection.id] = secret.get_secret_value()
                connection.client_secret = None
                if connection.client_secret_ref is not None or connection.id in secrets:
                    continue
                existing = self._account.connection(connection.id)
                if existing is None:
                    continue
                moved = secret_binding(existing).changes_to(secret_binding(connection))
                if moved is not None and connection.id in self._secrets:
                    cleared[connection.id] = cleared_notice(moved)
                    notices.append(f"connections[{index}]: {cleared[connection.id]}")
                elif connection.id in self._cleared:
                    cleared[connection.id] = self._cleared[connection.id]
            certain = self._certain_secrets(new, secrets, notices)
            keep = {c.id for c in new.connections}
            forget = ({c.id for c in self._account.connections} - keep) | set(cleared) | certain
            before = self._bodies(self._account) if self._stored else {}
            await self._commit(
                new, actor, secrets=secrets, forget=forget, cleared=cleared, validate=False
            )
            after = self._bodies(self._account)
        result = ImportResult(self._account.account)
        for key in after:
            name = f"{key[0]} {key[1]}"
            if key not in before:
                result.created.append(name)
            elif before[key] != after[key]:
                result.updated.append(name)
        result.deleted = [f"{k[0]} {k[1]}" for k in before if k not in after]
        result.warnings = [
            f"{path}: literal secret; kept by control, never exported" for path in literal
        ]
        result.warnings += notices
        for index, connection in enumerate(self._account.connections):
            if connection.client_secret is None and connection.id not in cleared:
                ref = connection.client_secret_ref
                why = f" (environment variable {ref} is not set)" if ref else ""
                result.warnings.append(f"connections[{index}]: no client secret{why}")
        return result

    def _certain_secrets(
        self, new: Account, secrets: dict[str, str], notices: list[str]
    ) -> set[str]:
        """Certain sources' passwords follow a client secret's rules: a `${VAR}` must be
        allowed for the source's host; a literal one goes to the secret store (never the
        database); an omitted one is kept while the host and username stay, else cleared.
        Fills `secrets` and `notices`; returns the secret-store keys to forget."""
        forget: set[str] = set()
        for index, source in enumerate(new.certain_sources):
            name, hosts = source.password_ref, certain_hosts(source)
            if name is not None and not self.env_allowlist.allows_for(name, hosts):
                refusal = self.env_allowlist.refusal_for(name, hosts)
                path = f"certain_sources[{index}].password"
                raise InvalidConfigError(refusal, [Problem(path, refusal)])
            key = certain_secret_key(source)
            if name is None and source.password is not None:
                secrets[key] = source.password.get_secret_value()
            source.password = None
            if name is not None:
                forget.add(key)
                continue
            existing = self._account.certain_source(source.id)
            if key in secrets or existing is None or key not in self._secrets:
                continue
            moved = certain_binding(existing).changes_to(certain_binding(source))
            if moved is not None:
                forget.add(key)
                notices.append(f"certain_sources[{index}]: {certain_cleared_notice(moved)}")
        kept = {certain_secret_key(s) for s in new.certain_sources}
        forget |= {certain_secret_key(s) for s in self._account.certain_sources} - kept
        return forget

    def certain_source(self, source_id: str) -> CertainSource:
        source = self._account.certain_source(source_id)
        if source is None:
            raise NotFoundError(f"no Certain source {source_id!r}")
        return source

    # --- catalog ---------------------------------------------------------------------------

    def apply_changes(self, changes: Iterable[ChangeEvent]) -> bool:
        """Fold event changes (already archived) into the catalog; True if it changed."""
        catalog = self._catalog.apply_all(changes)
        if catalog == self._catalog:
            return False
        self._catalog = catalog
        self._dirty.set()
        return True

    async def _load_catalog(self) -> EventCatalog:
        result = await self._store.query(_CATALOG_SQL, max_rows=100_000, timeout_s=None)
        catalog = EMPTY_CATALOG
        for (payload,) in result.rows:
            parsed = parse_change(json.loads(payload))
            if isinstance(parsed, ChangeEvent):
                catalog = catalog.apply(parsed)
        if result.truncated:
            log.warning("catalog rebuilt from the first 100000 events only")
        return catalog

    # --- storing ---------------------------------------------------------------------------

    async def _commit(
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
            old = {str(p) for p in validate_account(self._account)}
            fresh = [p for p in validate_account(account) if str(p) not in old]
            if fresh:
                raise InvalidConfigError("the change would make the configuration invalid", fresh)
        now = datetime.now(UTC).isoformat()
        marks = dict(self._secret_marks)
        for connection_id, secret in (secrets or {}).items():
            if self._secrets.get(connection_id) != secret:
                marks[connection_id] = now
        for connection_id in forget:
            marks.pop(connection_id, None)
        notes = dict(self._cleared if cleared is None else cleared)
        ids = {c.id for c in account.connections}
        notes = {k: v for k, v in notes.items() if k in ids}
        old_bodies = (
            self._bodies(self._account, self._secret_marks, self._cleared) if self._stored else {}
        )
        new_bodies = self._bodies(account, marks, notes)
        try:
            for key, body in new_bodies.items():
                if old_bodies.get(key) != body:
                    saved = await self._store.save_config_object(key[0], key[1], body, actor)
                    self._versions[key] = saved.version
            for key in old_bodies.keys() - new_bodies.keys():
                await self._store.delete_config_object(key[0], key[1], actor)
                self._versions.pop(key, None)
        except StoreError:
            log.exception("configuration change by %s only partly stored; reloading", actor)
            await self._reload()
            raise
        bindings = {c.id: secret_binding(c) for c in account.connections}
        bindings |= {certain_secret_key(s): certain_binding(s) for s in account.certain_sources}
        for connection_id in forget:
            self._secrets.delete(connection_id)
        for connection_id, secret in (secrets or {}).items():
            self._secrets.set(connection_id, secret, bindings.get(connection_id))
        self._secret_marks = marks
        self._cleared = notes
        self._account = self._with_secrets(account)
        self._stored = True
        self._dirty.set()

    async def _reload(self) -> None:
        objects = await self._store.load_config()
        if objects:
            self._account = self._from_objects(objects)

    def _bodies(
        self,
        account: Account,
        marks: Mapping[str, str] | None = None,
        cleared: Mapping[str, str] | None = None,
    ) -> dict[tuple[str, str], dict[str, Any]]:
        marks = self._secret_marks if marks is None else marks
        cleared = self._cleared if cleared is None else cleared
        order = {
            section: [_key_of(item) for item in getattr(account, section)]
            for section, _ in SECTIONS
        }
        bodies: dict[tuple[str, str], dict[str, Any]] = {
            (HEADER_KIND, SINGLETON_ID): {"account": account.account, "order": order},
            (ASSIGNMENTS_KIND, SINGLETON_ID): account.assignments.model_dump(mode="json"),
        }
        for section, kind in SECTIONS:
            for item in getattr(account, section):
                body = item.model_dump(mode="json")
                if kind == "connection":
                    body.pop("client_secret", None)
                    body[SECRET_MARK] = marks.get(item.id)
                    if item.id in cleared:
                        body[CLEARED_MARK] = cleared[item.id]
                bodies[(kind, _key_of(item))] = body
        return bodies

    def _from_objects(self, objects: Sequence[ConfigObject]) -> Account:
        by_kind: dict[str, dict[str, ConfigObject]] = {}
        for obj in objects:
            by_kind.setdefault(obj.kind, {})[obj.object_id] = obj
            self._versions[(obj.kind, obj.object_id)] = obj.version
        header = by_kind.get(HEADER_KIND, {}).get(SINGLETON_ID)
        name = header.body.get("account", DEFAULT_ACCOUNT_NAME) if header else DEFAULT_ACCOUNT_NAME
        order: dict[str, list[str]] = header.body.get("order", {}) if header else {}
        assignments_obj = by_kind.get(ASSIGNMENTS_KIND, {}).get(SINGLETON_ID)
        data: dict[str, Any] = {
            "account": name,
            "assignments": assignments_obj.body if assignments_obj else {},
        }
        for section, kind in SECTIONS:
            stored = by_kind.get(kind, {})
            ids = [i for i in order.get(section, []) if i in stored]
            ids += sorted(i for i in stored if i not in ids)
            items = []
            for object_id in ids:
                body = dict(stored[object_id].body)
                if kind == "connection":
                    mark = body.pop(SECRET_MARK, None)
                    if mark:
                        self._secret_marks[object_id] = str(mark)
                    note = body.pop(CLEARED_MARK, None)
                    if note:
                        self._cleared[object_id] = str(note)
                items.append(body)
            data[section] = items
        account = Account.model_validate(data)
        return self._with_secrets(account)

    def _with_secrets(self, account: Account) -> Account:
        """Put each connection's secret in: from an allowed `${VAR}`, or the stored one when it
        was entered for the connection's identity URL and client id."""
        env = self._environment()
        for connection in account.connections:
            secret: str | None
            if connection.client_secret_ref:
                secret = self.env_allowlist.lookup(
                    env, connection.client_secret_ref, destination_hosts(connection)
                )
            else:
                secret = self._secrets.get_for(connection.id, secret_binding(connection))
            connection.client_secret = SecretStr(secret) if secret else None
        for source in account.certain_sources:
            if source.password_ref:
                password = self.env_allowlist.lookup(
                    env, source.password_ref, certain_hosts(source)
                )
            else:
                password = self._secrets.get_for(
                    certain_secret_key(source), certain_binding(source)
                )
            source.password = SecretStr(password) if password else None
        return account

    def _bind_legacy_secrets(self, objects: Sequence[ConfigObject]) -> None:
        """Secrets kept before secrets were bound belong to their connection as stored now."""
        unbound = set(self._secrets.unbound())
        for obj in objects:
            if obj.kind != "connection" or obj.object_id not in unbound:
                continue
            body = {k: v for k, v in obj.body.items() if k not in (SECRET_MARK, CLEARED_MARK)}
            try:
                connection = Connection.model_validate(body)
            except ValueError:
                continue
            self._secrets.bind(obj.object_id, secret_binding(connection))

    def _environment(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    # --- publishing ------------------------------------------------------------------------

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce_s)
            try:
                await self._publish_once()
            except Exception:
                self.publish_failures += 1
                log.exception("publishing the configuration snapshot failed; retrying")
                self._dirty.set()
                await asyncio.sleep(min(5.0, 0.5 * self.publish_failures))

    async def _publish_once(self) -> None:
        self._dirty.clear()
        snapshot = self.snapshot()
        assert self._publish is not None
        await self._publish(snapshot)
        self.published = snapshot
        self.publish_failures = 0

    async def _publish_with_retry(self, snapshot: ConfigSnapshot, attempts: int = 10) -> None:
        assert self._publish is not None
        for attempt in range(1, attempts + 1):
            try:
                await self._publish(snapshot)
                self.published = snapshot
                return
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("publishing the first snapshot failed (attempt %d)", attempt)
                await asyncio.sleep(min(5.0, 0.5 * attempt))


def _read_text(path: Path) -> str | None:
    """A small file read once at start-up; None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _key_of(
    item: Tag | Connection | MappingModel | Flow | Assignments | CertainSource,
) -> str:
    if isinstance(item, Tag):
        return item.name
    return str(getattr(item, "id", SINGLETON_ID))


def _count(result: ImportResult) -> str:
    return (
        f"{len(result.created)} created, {len(result.updated)} updated, "
        f"{len(result.deleted)} deleted"
    )
