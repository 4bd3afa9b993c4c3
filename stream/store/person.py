"""One person's data in the ledger: found by email or registration code, exported as JSON,
or erased.

A person is the registrations whose change payloads carry their email (or the registration code
given), the changes of those registrations, and everything recorded about those changes. Free
text that may quote them (rejected payloads, outcome reasons, Marketo error texts) is matched by
their email addresses and registration codes.

Erasure keeps the figures and removes the person: change payloads become `{"erased": true}`,
outcomes lose their registration code, Marketo lead id and any reason quoting the person (so
every dashboard count stays), retry items, recovery entries, rejected records and the Certain
source's last-seen rows are deleted. DuckDB keeps a deleted value in its row group, an updated
one in its old segment, and a freed block keeps its bytes, until something overwrites them; so
the erasure makes every column that held the person be written anew at the checkpoint
(`_erase_in`), notes the blocks their old segments were in, and after the checkpoint moves the
other data sharing those blocks out and fills the file's free blocks with random bytes
(`scrub_free_blocks`, `stream.store.file_blocks`): afterwards neither the file nor its WAL holds
the person's email, name or phone. The audit row says an erasure happened, by whom and what it
touched, never who was erased.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stream.delivery_keys import SEP as KEY_SEP
from stream.store import file_blocks
from stream.store.errors import StoreError
from stream.store.writer import Con

EMAIL_PATH = "$.registration.profile.email"
PHONE_PATH = "$.registration.profile.phone"
MIN_PHONE = 7
"""A phone shorter than this is too likely to occur in anyone's text to mark a row as theirs."""
MAX_ROWS = 10_000
"""Rows per table a person's export holds at most (a person has a handful)."""
ERASED_PAYLOAD = '{"erased":true}'
ERASED_TEXT = "[erased]"
SEARCH_ROUNDS = 2
"""Searches of the file after the scrub that may each move and scrub again what they found."""

log = logging.getLogger(__name__)


class PersonError(StoreError):
    """A selector that names no one or is malformed; the message names the field."""


@dataclass(frozen=True, slots=True)
class Selector:
    email: str | None = None
    registration: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Selector:
        email, registration = body.get("email"), body.get("registration")
        given = [k for k in ("email", "registration") if body.get(k) is not None]
        if len(given) != 1:
            raise PersonError("email: give exactly one of email or registration")
        value = email if email is not None else registration
        if not isinstance(value, str) or not value.strip():
            raise PersonError(f"{given[0]}: expected a non-empty string, got {value!r}")
        if email is not None and "@" not in value:
            raise PersonError(f"email: expected an email address, got {value!r}")
        return cls(
            email=value.strip() if email is not None else None,
            registration=value.strip() if registration is not None else None,
        )

    @property
    def kind(self) -> str:
        return "email" if self.email is not None else "registration"


@dataclass(frozen=True, slots=True)
class Person:
    """What identifies the person in the ledger."""

    change_ids: list[str]
    registrations: list[str]
    emails: list[str]
    phones: list[str] = field(default_factory=list)
    spellings: list[str] = field(default_factory=list)
    """Their emails as their changes spell them, besides the lower case of `emails`: what the
    search of the file after an erasure looks for, byte for byte."""

    @property
    def found(self) -> bool:
        return bool(self.change_ids or self.registrations)

    @property
    def needles(self) -> list[str]:
        """Texts whose presence in free text marks a row as theirs."""
        return sorted({*self.emails, *self.phones, *self.registrations, *self.change_ids} - {""})


def _email_expr(column: str = "payload") -> str:
    return f"lower(trim(json_extract_string({column}, '{EMAIL_PATH}')))"


def find_person(con: Con, selector: Selector) -> Person:
    """The person's changes: those carrying the email, and every change of their registrations.
    The email is looked for in one scan of the payloads (the ledger's costliest read: 3 s on
    3.3M changes), the registrations' changes through their code column."""
    by_email: set[str] = set()
    if selector.email is not None:
        rows = con.execute(
            f"SELECT change_id, registration_code FROM change_log WHERE {_email_expr()} = ?",
            [selector.email.lower()],
        ).fetchall()
        by_email = {str(r[0]) for r in rows}
        registrations = sorted({str(r[1]) for r in rows if r[1] is not None})
    else:
        assert selector.registration is not None
        registrations = [selector.registration]
    ids = con.execute(
        "SELECT change_id FROM change_log WHERE list_contains(?, registration_code)",
        [registrations],
    ).fetchall()
    change_ids = sorted(by_email | {str(r[0]) for r in ids})
    # Emails and phones of those changes in one pass over change_log (a scan of its ids).
    values = con.execute(
        f"SELECT DISTINCT trim(json_extract_string(payload, '{EMAIL_PATH}')), "
        f"trim(json_extract_string(payload, '{PHONE_PATH}')) FROM change_log "
        "WHERE list_contains(?, change_id)",
        [change_ids],
    ).fetchall()
    spellings = {str(r[0]) for r in values if r[0]}
    if selector.email is not None:
        spellings.add(selector.email)
    found_emails = {e.lower() for e in spellings}
    found_phones = sorted({str(r[1]) for r in values if r[1] and len(str(r[1])) >= MIN_PHONE})
    return Person(change_ids, registrations, sorted(found_emails), found_phones, sorted(spellings))


def _mentions(column: str, count: int) -> str:
    """SQL matching rows whose `column` contains any of `count` texts (case-insensitive)."""
    if count == 0:
        return "false"
    return "(" + " OR ".join(f"contains(lower({column}), lower(?))" for _ in range(count)) + ")"


@dataclass(frozen=True, slots=True)
class Target:
    """How one table holds the person: which rows, and what erasure does to them."""

    table: str
    where: str
    params: tuple[Any, ...]
    redact: str | None = None
    """SET clause; None deletes the rows."""
    columns: tuple[str, ...] = ()
    """The columns the SET clause changes: where the person's bytes were."""
    keyed: bool = False
    """The person is in the table's key (DuckDB cannot blank a key column in place)."""


def targets(con: Con, person: Person) -> list[Target]:
    ids, needles = person.change_ids, person.needles
    mine = "list_contains(?, change_id)"
    found: list[Target] = [
        Target(
            "change_log",
            mine,
            (ids,),
            f"payload = '{ERASED_PAYLOAD}', registration_code = NULL",
            ("payload", "registration_code"),
        ),
    ]
    for table in ("outcome_log", "delivery_state"):
        found.append(
            Target(
                table,
                f"{mine} OR {_mentions('reason', len(needles))}",
                (ids, *needles),
                "registration_code = NULL, marketo_lead_id = NULL, reason = CASE WHEN "
                f"{_mentions('reason', len(needles))} THEN '{ERASED_TEXT}' ELSE reason END",
                ("registration_code", "marketo_lead_id", "reason"),
            )
        )
    found += [
        Target("retry_items", mine, (ids,)),
        Target("recovery_log", mine, (ids,)),
        Target(
            "rejected_changes",
            f"{mine} OR {_mentions('payload', len(needles))}",
            (ids, *needles),
        ),
        Target("rejected_records", _mentions("payload", len(needles)), tuple(needles)),
        Target(
            "api_call_log",
            _mentions("marketo_error", len(needles)),
            tuple(needles),
            f"marketo_error = '{ERASED_TEXT}'",
            ("marketo_error",),
        ),
    ]
    if _has_table(con, "certain_last_seen"):
        found.append(
            Target(
                "certain_last_seen",
                "list_contains(?, code)",
                (person.registrations,),
                keyed=True,
            )
        )
    return found


def _redact_params(target: Target, person: Person) -> tuple[Any, ...]:
    """Parameters of the SET clause (the reason's CASE names the needles again)."""
    if target.redact is not None and "CASE WHEN" in target.redact:
        return tuple(person.needles)
    return ()


def _has_table(con: Con, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ? "
        "AND database_name = current_database()",
        [name],
    ).fetchall()
    return bool(rows[0][0])


# -- export -------------------------------------------------------------------------------------


def _rows(con: Con, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    result = con.execute(sql, list(params))
    names = [d[0] for d in result.description or ()]
    return [
        {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in zip(names, row, strict=True)
        }
        for row in result.fetchall()
    ]


def export_person(con: Con, selector: Selector) -> dict[str, Any]:
    """Everything the ledger holds on the person, table by table (blocking; a reader)."""
    person = find_person(con, selector)
    if not person.found:
        raise PersonError(f"{selector.kind}: the ledger holds nothing on this person")
    tables: dict[str, list[dict[str, Any]]] = {}
    for target in targets(con, person):
        select = "*"
        if target.table == "change_log":
            select = "* EXCLUDE (payload), payload::VARCHAR AS payload"
        rows = _rows(
            con,
            f"SELECT {select} FROM {target.table} WHERE {target.where} LIMIT {MAX_ROWS}",
            target.params,
        )
        for row in rows:
            if target.table == "change_log" and isinstance(row.get("payload"), str):
                row["payload"] = json.loads(row["payload"])
        tables[target.table] = rows
    return {
        "selector": selector.kind,
        "registrations": person.registrations,
        "emails": person.emails,
        "change_ids": person.change_ids,
        "tables": tables,
    }


# -- erasure ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErasureReport:
    selector: str
    registrations: int
    changes: int
    touched: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per table: rows `redacted` or `deleted`, and `rewritten` (rows of the row groups
    rewritten so the old bytes leave the file)."""
    marketo_lead_ids: list[int] = field(default_factory=list)
    """Leads Signal delivered the person to: Marketo keeps them until deleted there."""
    exported_to: list[str] = field(default_factory=list)
    """Parquet export destinations: files already written there still hold the person."""
    free_blocks_scrubbed: int = 0
    delivered_keys: list[str] = field(default_factory=list)
    """Keys of the person's pairs on the compacted `signal-delivered` (their change ids): the
    route writes a tombstone for each so compaction removes them; not part of the report."""
    scrub_id: str = ""
    """The ledger's note of the blocks to scrub (`file_blocks.PENDING`); not part of the report."""

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("delivered_keys")
        body.pop("scrub_id")
        return body

    def audit_change(self) -> dict[str, Any]:
        """What the audit keeps: counts, never who."""
        return {
            "selector": self.selector,
            "registrations": self.registrations,
            "changes": self.changes,
            "touched": self.touched,
            "marketo_leads": len(self.marketo_lead_ids),
        }


def erase_person(con: Con, selector: Selector) -> ErasureReport:
    """Redact or delete the person's rows, in the caller's transaction (the writer's), and note
    the file blocks that held them. The caller then checkpoints and calls `scrub_free_blocks`,
    which moves other data out of those blocks and overwrites every free block."""
    person = find_person(con, selector)
    if not person.found:
        raise PersonError(f"{selector.kind}: the ledger holds nothing on this person")
    leads = con.execute(
        "SELECT DISTINCT marketo_lead_id FROM outcome_log WHERE list_contains(?, change_id) "
        "AND status = 'delivered' AND marketo_lead_id IS NOT NULL ORDER BY 1",
        [person.change_ids],
    ).fetchall()
    keys = con.execute(
        "SELECT key FROM delivery_marks WHERE list_contains(?, change_id) "
        "UNION SELECT change_id || ? || flow_id FROM delivery_state "
        "WHERE list_contains(?, change_id) ORDER BY 1",
        [person.change_ids, KEY_SEP, person.change_ids],
    ).fetchall()
    touched: dict[str, dict[str, int]] = {}
    held: set[int] = set()
    for target in targets(con, person):
        counts = _erase_in(con, target, _redact_params(target, person), held)
        if counts:
            touched[target.table] = counts
    scrub_id = file_blocks.note_blocks(
        con, held, [*person.emails, *person.spellings, *person.phones]
    )
    return ErasureReport(
        scrub_id=scrub_id,
        selector=selector.kind,
        registrations=len(person.registrations),
        changes=len(person.change_ids),
        touched=touched,
        marketo_lead_ids=[int(r[0]) for r in leads],
        delivered_keys=[str(r[0]) for r in keys],
        exported_to=[
            str(r[0])
            for r in con.execute(
                "SELECT DISTINCT destination FROM ledger_exports ORDER BY 1"
            ).fetchall()
        ],
    )


def audit_erasure(con: Con, at: Any, actor: str, audit_id: str, report: ErasureReport) -> None:
    """The audit row of an erasure, in the erasure's transaction: both or neither."""
    con.execute(
        'INSERT INTO config_audit_log ("at", actor, object, object_id, action, change) '
        "VALUES (?, ?, 'ledger', ?, 'erase', ?::JSON)",
        [at, actor, audit_id, json.dumps(report.audit_change(), sort_keys=True)],
    )
    con.execute(
        f"UPDATE {file_blocks.PENDING} SET audit_id = ? WHERE id = ?", [audit_id, report.scrub_id]
    )


def _erase_in(
    con: Con, target: Target, redact_params: tuple[Any, ...], held: set[int]
) -> dict[str, int]:
    """Erase the target's rows so that their old values leave the row groups that held them
    at the next checkpoint, adding the blocks those values were in to `held`.

    A redaction is an UPDATE: DuckDB writes an updated column of a row group anew at the
    checkpoint. A deletion leaves the deleted rows' values in their segments, so the rows' text
    columns are blanked by an UPDATE first (the key columns, change and flow ids, are not the
    person's); a table without a key has the row groups that held the rows deleted and inserted
    again instead (cheap there, and it covers list columns, which DuckDB cannot update in
    place). A table whose key holds the person (the Certain source's last-seen codes) is
    copied whole: it has a row per registration, far fewer than the logs. Returns the rows
    redacted or deleted and the rows of the row groups written anew (`rewritten`)."""
    rowids = sorted(
        int(r[0])
        for r in con.execute(
            f"SELECT rowid FROM {target.table} WHERE {target.where}", list(target.params)
        ).fetchall()
    )
    if not rowids:
        return {}
    action = "deleted" if target.redact is None else "redacted"
    layout = file_blocks.segments(con, target.table)
    if target.keyed:
        held.update(b for s in layout for b in s.blocks)
        _apply(con, target, target.table, redact_params)
        return {action: len(rowids), "rewritten": _rewrite_whole(con, target.table)}
    groups = _groups_of(con, target.table, layout, rowids)
    rewritten = sum(hi - lo for lo, hi in groups)
    mine = "list_contains(?::BIGINT[], rowid)"
    if target.redact is not None:
        held.update(file_blocks.blocks_holding(layout, rowids, target.columns))
        con.execute(
            f"UPDATE {target.table} SET {target.redact} WHERE {mine}", [*redact_params, rowids]
        )
        return {action: len(rowids), "rewritten": rewritten}
    if _has_key(con, target.table):
        blanks = _blanks(con, target.table)
        held.update(file_blocks.blocks_holding(layout, rowids, blanks))
        if blanks:
            con.execute(
                f"UPDATE {target.table} SET {', '.join(blanks.values())} WHERE {mine}", [rowids]
            )
        con.execute(f"DELETE FROM {target.table} WHERE {mine}", [rowids])
        return {action: len(rowids), "rewritten": rewritten}
    in_groups = " OR ".join(f"(rowid >= {lo} AND rowid < {hi})" for lo, hi in groups)
    held.update(b for s in layout if (s.group_lo, s.group_hi) in groups for b in s.blocks)
    con.execute("DROP TABLE IF EXISTS temp.erase_keep")
    con.execute(f"CREATE TEMP TABLE erase_keep AS SELECT * FROM {target.table} WHERE {in_groups}")
    _apply(con, target, "temp.erase_keep", redact_params)
    con.execute(f"DELETE FROM {target.table} WHERE {in_groups}")
    con.execute(f"INSERT INTO {target.table} SELECT * FROM temp.erase_keep")
    con.execute("DROP TABLE temp.erase_keep")
    return {action: len(rowids), "rewritten": rewritten}


def _groups_of(
    con: Con, table: str, layout: list[file_blocks.Segment], rowids: list[int]
) -> list[tuple[int, int]]:
    """[lo, hi) rowids of the row groups holding `rowids`; rows not yet checkpointed form one
    last range up to the table's end."""
    ranges = sorted({(s.group_lo, s.group_hi) for s in layout})
    stored = ranges[-1][1] if ranges else 0
    if rowids[-1] >= stored:
        total = int(con.execute(f"SELECT max(rowid) + 1 FROM {table}").fetchall()[0][0] or 0)
        ranges.append((stored, max(total, rowids[-1] + 1)))
    return [(lo, hi) for lo, hi in ranges if any(lo <= r < hi for r in rowids)]


def _blanks(con: Con, table: str) -> dict[str, str]:
    """SET items giving the text columns outside the table's key another, empty value."""
    keys = file_blocks.key_columns(con, table)
    items: dict[str, str] = {}
    for name, data_type in file_blocks.column_types(con, table).items():
        if name in keys or data_type not in ("VARCHAR", "JSON"):
            continue
        empty = "''" if data_type == "VARCHAR" else "'{}'"
        items[name] = f'"{name}" = CASE WHEN "{name}" IS NULL THEN NULL ELSE {empty} END'
    return items


def _apply(con: Con, target: Target, table: str, redact_params: tuple[Any, ...]) -> None:
    if target.redact is None:
        con.execute(f"DELETE FROM {table} WHERE {target.where}", list(target.params))
    else:
        con.execute(
            f"UPDATE {table} SET {target.redact} WHERE {target.where}",
            [*redact_params, *target.params],
        )


def _has_key(con: Con, table: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
        [table],
    ).fetchall()
    return bool(rows[0][0])


def _rewrite_whole(con: Con, table: str) -> int:
    """Copy `table` into a fresh table of the same definition (constraints, defaults, indexes)
    and swap it in; views name tables, so they read the copy. Returns the rows copied."""
    ddl = str(
        con.execute(
            "SELECT sql FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ?",
            [table],
        ).fetchall()[0][0]
    )
    indexes = [
        str(r[0])
        for r in con.execute(
            "SELECT sql FROM duckdb_indexes() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ? AND sql IS NOT NULL",
            [table],
        ).fetchall()
    ]
    fresh = f"{table}__erasing"
    head = f"CREATE TABLE {table}("
    if not ddl.startswith(head):
        raise PersonError(f"table {table}: unexpected definition {ddl[:80]!r}")
    con.execute(f"CREATE TABLE {fresh}(" + ddl.removeprefix(head))
    con.execute(f"INSERT INTO {fresh} SELECT * FROM {table}")
    copied = int(con.execute(f"SELECT count(*) FROM {fresh}").fetchall()[0][0])
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE {fresh} RENAME TO {table}")
    for statement in indexes:
        con.execute(statement)
    return copied


def scrub_free_blocks(con: Con, rounds: int = 3, *, seal: bool = True) -> int:
    """After an erasure's CHECKPOINT, outside a transaction: move other data out of the blocks
    the erasures not yet scrubbed noted (`file_blocks.seal_blocks`; not with `seal` False, for
    a caller that moved them itself), overwrite the file's free blocks with random text and free
    them again, then search the file for the person's emails (as their changes spell them and
    in lower case) and phones and move out and scrub any block still holding one: a copy no
    step knew of, such as a row of theirs deleted before (retention's, a resolved retry item's),
    whose values DuckDB keeps in its row group. Only then are the notes dropped, with an audit
    row per erasure saying its scrub ended: a scrub that fails or is killed is done again at
    control's next start (`finish_erasures`). Returns the free blocks found before
    overwriting."""
    _hold_for_tests()
    pending = file_blocks.pending_scrubs(con)
    held = {b for p in pending for b in p.blocks}
    needles = file_blocks.noted_needles(con)
    sealing = file_blocks.Sealing()
    if held and seal:
        sealing = file_blocks.seal_blocks(con, held)
        log.info("ledger: erasure moved data: %s", sealing)
    scrubbed = file_blocks.scrub_free_blocks(con, rounds)
    left = 0
    for search in range(SEARCH_ROUNDS + 1):
        found = file_blocks.find_in_file(con, needles)
        left = len(found)
        if not found:
            break
        if search == SEARCH_ROUNDS:
            log.error("ledger: erased text is still in %d blocks of the file", len(found))
            break
        log.warning("ledger: erased text found again in %d blocks: moving it", len(found))
        con.execute("FORCE CHECKPOINT")
        file_blocks.seal_blocks(con, found - {-1}, rows=True)
        file_blocks.scrub_free_blocks(con, rounds)
    _audit_scrubbed(con, pending, scrubbed, sealing, searched=bool(needles), left=left)
    file_blocks.forget_blocks(con, [p.id for p in pending])
    return scrubbed


def _audit_scrubbed(
    con: Con,
    pending: list[file_blocks.PendingScrub],
    scrubbed: int,
    sealing: file_blocks.Sealing,
    *,
    searched: bool,
    left: int,
) -> None:
    """An audit row per erasure whose scrub ended, beside its `erase` row (same object id)."""
    for note in pending:
        if note.audit_id is None:
            continue
        change = {
            "free_blocks_scrubbed": scrubbed,
            "blocks_noted": len(note.blocks),
            "blocks_left_shared": sealing.left,
            "file_searched": searched,
            "blocks_found_by_search": left,
        }
        con.execute(
            'INSERT INTO config_audit_log ("at", actor, object, object_id, action, change) '
            "VALUES (now(), 'control', 'ledger', ?, 'erase-scrubbed', ?::JSON)",
            [note.audit_id, json.dumps(change, sort_keys=True)],
        )


def finish_erasures(con: Con) -> int:
    """At control's start, outside a transaction: finish the scrub of any erasure whose control
    stopped between the erasure's commit and the scrub's end (killed, out of memory, a failed
    scrub). The redaction itself is committed; what is left is moving other data out of the
    blocks it noted and overwriting free blocks. The person's texts were only in the old
    process's memory, so the file is not searched: the seal and the scrub of every free block
    are what remove the old bytes. Returns the erasures finished."""
    pending = file_blocks.pending_scrubs(con)
    if not pending:
        return 0
    log.warning(
        "ledger: %d erasure(s) did not finish their scrub before control stopped: finishing",
        len(pending),
    )
    con.execute("FORCE CHECKPOINT")
    scrubbed = scrub_free_blocks(con)
    log.warning("ledger: unfinished erasure scrub done (%d free blocks scrubbed)", scrubbed)
    return len(pending)


HOLD_ENV = "SIGNAL_TEST_ERASURE_HOLD"
"""Tests only: a file path; while that file exists, an erasure's scrub waits before it starts
(after touching `<path>.reached`), so a test can kill control between the erasure's commit and
its scrub. Never set in production."""


def _hold_for_tests() -> None:
    hold = os.environ.get(HOLD_ENV)
    if not hold:
        return
    path = Path(hold)
    Path(f"{hold}.reached").touch()
    deadline = time.monotonic() + 600
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
