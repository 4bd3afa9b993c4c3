"""The configuration's part of `Store`: one versioned row per configuration object, and the audit
log of every change to them.

A part of its own because its rules differ from the ledger's: a save is checked against the
version the editor read (`ConfigConflictError`), an identical save is no change and leaves no
audit row, and neither a body nor an audit entry may hold a secret (`ensure_no_secrets`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stream.store.base import StoreBase, first
from stream.store.errors import ConfigConflictError
from stream.store.rows import ConfigAuditEntry, ConfigObject, utc
from stream.store.secrets import ensure_no_secrets
from stream.store.writer import Con

__all__ = ["ConfigObjects"]


class ConfigObjects(StoreBase):
    async def save_config_object(
        self,
        kind: str,
        object_id: str,
        body: Mapping[str, Any],
        actor: str,
        *,
        expected_version: int | None = None,
        at: datetime | None = None,
    ) -> ConfigObject:
        """Create or replace one configuration object and audit the change.

        `body` must already be redacted (it is refused otherwise). With `expected_version`, the
        save fails with `ConfigConflictError` if someone else saved in between (0 = must not
        exist yet). Saving an identical body is a no-op without an audit row.
        """
        if not kind or not object_id or not actor:
            raise ValueError("kind, object_id and actor are required")
        ensure_no_secrets(body, f"{kind} {object_id!r}")
        when = utc(at, "at") if at is not None else datetime.now(UTC)
        text = _canonical(body)

        def work(con: Con) -> ConfigObject:
            row = first(
                con.execute(
                    "SELECT body::VARCHAR, version, updated_at, updated_by FROM config_objects "
                    "WHERE kind = ? AND object_id = ?",
                    [kind, object_id],
                ).fetchall()
            )
            version = 0 if row is None else int(row[1])
            if expected_version is not None and expected_version != version:
                raise ConfigConflictError(
                    f"{kind} {object_id!r} is at version {version}, not {expected_version}; "
                    "reload and apply the change again"
                )
            before = None if row is None else json.loads(row[0])
            if row is not None and _canonical(before or {}) == text:
                return ConfigObject(kind, object_id, dict(body), version, row[2], row[3])
            con.execute(
                "INSERT INTO config_objects VALUES (?, ?, ?::JSON, ?, ?, ?) "
                "ON CONFLICT (kind, object_id) DO UPDATE SET body = excluded.body, "
                "version = excluded.version, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                [kind, object_id, text, version + 1, when, actor],
            )
            _audit(
                con,
                when,
                actor,
                kind,
                object_id,
                "create" if row is None else "update",
                {"before": before, "after": json.loads(text)},
            )
            return ConfigObject(kind, object_id, json.loads(text), version + 1, when, actor)

        return await self._db.write(work)

    async def delete_config_object(
        self,
        kind: str,
        object_id: str,
        actor: str,
        *,
        expected_version: int | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Delete one configuration object (audited). False if it did not exist."""
        when = utc(at, "at") if at is not None else datetime.now(UTC)

        def work(con: Con) -> bool:
            row = first(
                con.execute(
                    "SELECT body::VARCHAR, version FROM config_objects "
                    "WHERE kind = ? AND object_id = ?",
                    [kind, object_id],
                ).fetchall()
            )
            if row is None:
                return False
            if expected_version is not None and expected_version != int(row[1]):
                raise ConfigConflictError(
                    f"{kind} {object_id!r} is at version {row[1]}, not {expected_version}"
                )
            con.execute(
                "DELETE FROM config_objects WHERE kind = ? AND object_id = ?", [kind, object_id]
            )
            _audit(
                con,
                when,
                actor,
                kind,
                object_id,
                "delete",
                {"before": json.loads(row[0]), "after": None},
            )
            return True

        return await self._db.write(work)

    async def load_config(self, kind: str | None = None) -> list[ConfigObject]:
        """Every stored configuration object (of one kind), ordered by kind and id."""
        where, params = ("WHERE kind = ?", [kind]) if kind is not None else ("", [])
        sql = (
            "SELECT kind, object_id, body::VARCHAR, version, updated_at, updated_by "
            f"FROM config_objects {where} ORDER BY kind, object_id"
        )
        rows = await self._db.read(lambda con: con.execute(sql, params).fetchall())
        return [ConfigObject(r[0], r[1], json.loads(r[2]), int(r[3]), r[4], r[5]) for r in rows]

    async def config_audit(
        self, *, limit: int = 100, kind: str | None = None, object_id: str | None = None
    ) -> list[ConfigAuditEntry]:
        """Audit entries, newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if kind is not None:
            clauses.append("object = ?")
            params.append(kind)
        if object_id is not None:
            clauses.append("object_id = ?")
            params.append(object_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            "SELECT changed_at, actor, object, object_id, action, change::VARCHAR "
            f"FROM config_audit {where} ORDER BY seq DESC LIMIT ?"
        )
        rows = await self._db.read(lambda con: con.execute(sql, [*params, limit]).fetchall())
        return [ConfigAuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def _canonical(body: Mapping[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)


def _audit(
    con: Con,
    at: datetime,
    actor: str,
    kind: str,
    object_id: str,
    action: str,
    change: dict[str, Any],
) -> None:
    ensure_no_secrets(change, f"audit entry for {kind} {object_id!r}")
    con.execute(
        'INSERT INTO config_audit_log ("at", actor, object, object_id, action, change) '
        "VALUES (?, ?, ?, ?, ?, ?::JSON)",
        [at, actor, kind, object_id, action, _canonical(change)],
    )
