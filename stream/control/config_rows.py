"""The account as rows of `config_objects`: one body per tag, connection, mapping, flow, Certain
source, the assignments and the account header (with the order of every list).

Apart from `ConfigService` because the stored form is a translation with rules of its own (a
connection's body carries when its secret was replaced and why it was cleared, never the
secret; the header keeps the lists' order) and both directions must agree: what `bodies` writes,
`read_objects` reads back into the same account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.models import Account, Assignments, CertainSource, Connection, Flow, Tag
from config.models import Mapping as MappingModel
from config.secret_refs import certain_secret_key
from stream.store import ConfigObject

__all__ = [
    "ASSIGNMENTS_KIND",
    "CLEARED_MARK",
    "DEFAULT_ACCOUNT_NAME",
    "HEADER_KIND",
    "SECRET_MARK",
    "SECTIONS",
    "SINGLETON_ID",
    "Bodies",
    "StoredAccount",
    "bodies",
    "changed_keys",
    "read_objects",
]

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
"""Stored in a connection's body instead of the secret, and in a Certain source's once a
password was entered for it: when it was last replaced."""
CLEARED_MARK = "secret_cleared"
"""Stored in a connection's body while its secret is cleared: why (a change of destination)."""

Bodies = dict[tuple[str, str], dict[str, Any]]
"""(kind, object id) → the stored body."""


def bodies(account: Account, marks: Mapping[str, str], cleared: Mapping[str, str]) -> Bodies:
    """The rows `account` is stored as; `marks` and `cleared` go into connections' bodies."""
    order = {
        section: [_key_of(item) for item in getattr(account, section)] for section, _ in SECTIONS
    }
    result: Bodies = {
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
            elif kind == "certain_source" and (mark := marks.get(certain_secret_key(item.id))):
                # Only once a password was entered here: rows stored before stay as they were.
                body[SECRET_MARK] = mark
            result[(kind, _key_of(item))] = body
    return result


@dataclass
class StoredAccount:
    """What the rows hold: the account (no secrets yet), each row's version, and the
    connections' secret marks and clearing notices."""

    account: Account
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)
    cleared: dict[str, str] = field(default_factory=dict)


def read_objects(objects: Sequence[ConfigObject]) -> StoredAccount:
    """The account stored as `objects`, lists in their stored order (unknown ids last)."""
    by_kind: dict[str, dict[str, ConfigObject]] = {}
    versions: dict[tuple[str, str], int] = {}
    marks: dict[str, str] = {}
    cleared: dict[str, str] = {}
    for obj in objects:
        by_kind.setdefault(obj.kind, {})[obj.object_id] = obj
        versions[(obj.kind, obj.object_id)] = obj.version
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
                    marks[object_id] = str(mark)
                note = body.pop(CLEARED_MARK, None)
                if note:
                    cleared[object_id] = str(note)
            elif kind == "certain_source" and (mark := body.pop(SECRET_MARK, None)):
                marks[certain_secret_key(object_id)] = str(mark)
            items.append(body)
        data[section] = items
    return StoredAccount(Account.model_validate(data), versions, marks, cleared)


def changed_keys(before: Bodies, after: Bodies) -> tuple[list[str], list[str], list[str]]:
    """(created, updated, deleted) objects between two stored forms, named `kind id`."""
    created: list[str] = []
    updated: list[str] = []
    for key in after:
        name = f"{key[0]} {key[1]}"
        if key not in before:
            created.append(name)
        elif before[key] != after[key]:
            updated.append(name)
    deleted = [f"{k[0]} {k[1]}" for k in before if k not in after]
    return created, updated, deleted


def _key_of(
    item: Tag | Connection | MappingModel | Flow | Assignments | CertainSource,
) -> str:
    if isinstance(item, Tag):
        return item.name
    return str(getattr(item, "id", SINGLETON_ID))
