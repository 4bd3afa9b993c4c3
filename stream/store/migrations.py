"""The ledger's migrations, oldest first: each version's statements and, where SQL alone cannot
say it, a step in Python. A schema change is a new `Migration` appended to `MIGRATIONS` with the
next version number; a released one is never edited (files already carry it). How they are
applied, and the views' promised columns, are `stream.store.schema`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

_V1_TABLES = (
    """
    CREATE TABLE change_log (
        change_id VARCHAR PRIMARY KEY,
        type VARCHAR NOT NULL,
        account_code VARCHAR NOT NULL,
        event_code VARCHAR,
        registration_code VARCHAR,
        is_test BOOLEAN NOT NULL,
        occurred_at TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        source VARCHAR NOT NULL,
        kafka_partition INTEGER,
        kafka_offset BIGINT,
        payload JSON NOT NULL
    )
    """,
    """
    CREATE TABLE rejected_changes (
        received_at TIMESTAMPTZ NOT NULL,
        source VARCHAR NOT NULL,
        change_id VARCHAR,
        reasons VARCHAR[] NOT NULL,
        payload VARCHAR NOT NULL,
        kafka_partition INTEGER,
        kafka_offset BIGINT
    )
    """,
    """
    CREATE TABLE outcome_log (
        outcome_id VARCHAR PRIMARY KEY,
        change_id VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        flow_name VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        registration_code VARCHAR,
        event_code VARCHAR,
        action VARCHAR,
        status VARCHAR NOT NULL,
        category VARCHAR,
        reason VARCHAR,
        marketo_lead_id BIGINT,
        lead_result VARCHAR,
        attempt INTEGER NOT NULL,
        replayed BOOLEAN NOT NULL,
        occurred_at TIMESTAMPTZ NOT NULL,
        processed_at TIMESTAMPTZ NOT NULL,
        latency_ms DOUBLE,
        request_id VARCHAR,
        connection_id VARCHAR,
        marketo_code VARCHAR,
        replay_id VARCHAR,
        recorded_at TIMESTAMPTZ NOT NULL
    )
    """,
    # Current state per (change, flow), maintained in the same transaction as the attempt rows:
    # the `outcomes` view reads it directly, so a 24 h window filter scans one row per delivery
    # instead of ranking every attempt ever recorded.
    """
    CREATE TABLE delivery_state (
        change_id VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        flow_name VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        registration_code VARCHAR,
        event_code VARCHAR,
        action VARCHAR,
        status VARCHAR NOT NULL,
        category VARCHAR,
        reason VARCHAR,
        marketo_lead_id BIGINT,
        lead_result VARCHAR,
        attempt INTEGER NOT NULL,
        replayed BOOLEAN NOT NULL,
        occurred_at TIMESTAMPTZ NOT NULL,
        processed_at TIMESTAMPTZ NOT NULL,
        latency_ms DOUBLE,
        request_id VARCHAR,
        connection_id VARCHAR,
        marketo_code VARCHAR,
        replay_id VARCHAR,
        outcome_id VARCHAR NOT NULL,
        attempts INTEGER NOT NULL,
        first_processed_at TIMESTAMPTZ NOT NULL,
        delivered_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (change_id, flow_id)
    )
    """,
    """
    CREATE TABLE retry_items (
        change_id VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        flow_name VARCHAR NOT NULL,
        integration VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        category VARCHAR NOT NULL,
        reason VARCHAR,
        attempts INTEGER NOT NULL,
        next_attempt_at TIMESTAMPTZ,
        last_error VARCHAR,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        resubmitted_by VARCHAR,
        resubmitted_at TIMESTAMPTZ,
        lease_owner VARCHAR,
        lease_until TIMESTAMPTZ,
        PRIMARY KEY (change_id, flow_id)
    )
    """,
    """
    CREATE TABLE api_call_log (
        connection_id VARCHAR NOT NULL,
        endpoint VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        duration_ms DOUBLE NOT NULL,
        http_status INTEGER,
        marketo_error VARCHAR,
        batch_size INTEGER NOT NULL,
        request_id VARCHAR,
        error_class VARCHAR,
        recorded_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE config_objects (
        kind VARCHAR NOT NULL,
        object_id VARCHAR NOT NULL,
        body JSON NOT NULL,
        version INTEGER NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        updated_by VARCHAR NOT NULL,
        PRIMARY KEY (kind, object_id)
    )
    """,
    "CREATE SEQUENCE config_audit_seq START 1",
    """
    CREATE TABLE config_audit_log (
        seq BIGINT PRIMARY KEY DEFAULT nextval('config_audit_seq'),
        "at" TIMESTAMPTZ NOT NULL,
        actor VARCHAR NOT NULL,
        object VARCHAR NOT NULL,
        object_id VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        change JSON NOT NULL
    )
    """,
)

_V1_VIEWS = (
    """
    CREATE OR REPLACE VIEW changes AS
    SELECT change_id, type, account_code, event_code, registration_code, is_test,
           occurred_at, received_at, payload, source, kafka_partition, kafka_offset
    FROM change_log
    """,
    """
    CREATE OR REPLACE VIEW outcomes AS
    SELECT change_id, flow_id, flow_name, mode, registration_code, event_code, action, status,
           category, reason, marketo_lead_id, lead_result, attempts, occurred_at, processed_at,
           latency_ms, replayed, attempt, request_id, connection_id, marketo_code, replay_id,
           outcome_id, first_processed_at, delivered_at
    FROM delivery_state
    """,
    """
    CREATE OR REPLACE VIEW outcome_attempts AS
    SELECT change_id, flow_id, attempt, flow_name, mode, registration_code, event_code, action,
           status, category, reason, marketo_lead_id, lead_result, replayed, occurred_at,
           processed_at, latency_ms, request_id, connection_id, marketo_code, replay_id,
           outcome_id, recorded_at
    FROM outcome_log
    """,
    """
    CREATE OR REPLACE VIEW retry_queue AS
    SELECT change_id, flow_id, integration, flow_name, status, category, reason, attempts,
           next_attempt_at, last_error, created_at, updated_at, resubmitted_by, resubmitted_at
    FROM retry_items
    """,
    """
    CREATE OR REPLACE VIEW api_calls AS
    SELECT connection_id, endpoint, method, started_at, duration_ms, http_status, marketo_error,
           batch_size, request_id, error_class
    FROM api_call_log
    """,
    # `at` is a reserved word in DuckDB 2.0 (time travel); DESIGN 4.6 promises the name, so it
    # stays, quoted, and `changed_at` carries the same value for SQL written without quotes.
    """
    CREATE OR REPLACE VIEW config_audit AS
    SELECT "at", "at" AS changed_at, actor, object, object_id, action, change, seq
    FROM config_audit_log
    """,
)

_V2_OUTBOX_AND_REJECTED_RECORDS = (
    # The ingest outbox: NULL until the broker acknowledged the change on `certain-changes`.
    # Every row archived before this version came from the topic, so it was published when
    # received.
    "ALTER TABLE change_log ADD COLUMN published_at TIMESTAMPTZ",
    "UPDATE change_log SET published_at = received_at",
    """
    CREATE OR REPLACE VIEW changes AS
    SELECT change_id, type, account_code, event_code, registration_code, is_test,
           occurred_at, received_at, payload, source, kafka_partition, kafka_offset,
           published_at
    FROM change_log
    """,
    # Records of Signal's own topics (outcomes, Marketo calls) that control could not take,
    # and records of any topic kept out of a batch by an unexpected error: an operator finds
    # them here with the reason instead of only in a log.
    """
    CREATE TABLE rejected_records (
        received_at TIMESTAMPTZ NOT NULL,
        topic VARCHAR NOT NULL,
        agent VARCHAR NOT NULL,
        reasons VARCHAR[] NOT NULL,
        payload VARCHAR NOT NULL,
        kafka_partition INTEGER,
        kafka_offset BIGINT
    )
    """,
)

# Recovery (control re-drives what the ledger holds without a final outcome): one row per
# (change, flow) it re-drove, with how often and when; `flow_id` '' marks a change for which no
# flow was expected to act, so it is not evaluated again every scan. A pair re-driven the
# allowed number of times without a final outcome is `stranded_at` (counted, never dropped).
_V3_RECOVERY = (
    """
    CREATE TABLE recovery_log (
        change_id VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        note VARCHAR,
        redrives INTEGER NOT NULL,
        first_at TIMESTAMPTZ NOT NULL,
        last_at TIMESTAMPTZ NOT NULL,
        stranded_at TIMESTAMPTZ,
        PRIMARY KEY (change_id, flow_id)
    )
    """,
)

# A delivery the pipeline made again for a pair it had marked "sending" before a crash, without
# Marketo's answer on record: Marketo may have run it twice. Counted (`repeat_after_crash` in the
# troubleshooting metrics, `signal_repeat_after_crash_total`), so the bounded window a crash
# cannot close is visible instead of assumed.
_V4_POSSIBLE_REPEAT = (
    "ALTER TABLE outcome_log ADD COLUMN possible_repeat BOOLEAN NOT NULL DEFAULT false",
    "ALTER TABLE delivery_state ADD COLUMN possible_repeat BOOLEAN NOT NULL DEFAULT false",
    """
    CREATE OR REPLACE VIEW outcomes AS
    SELECT change_id, flow_id, flow_name, mode, registration_code, event_code, action, status,
           category, reason, marketo_lead_id, lead_result, attempts, occurred_at, processed_at,
           latency_ms, replayed, attempt, request_id, connection_id, marketo_code, replay_id,
           outcome_id, first_processed_at, delivered_at, possible_repeat
    FROM delivery_state
    """,
    """
    CREATE OR REPLACE VIEW outcome_attempts AS
    SELECT change_id, flow_id, attempt, flow_name, mode, registration_code, event_code, action,
           status, category, reason, marketo_lead_id, lead_result, replayed, occurred_at,
           processed_at, latency_ms, request_id, connection_id, marketo_code, replay_id,
           outcome_id, recorded_at, possible_repeat
    FROM outcome_log
    """,
)

# The delivered-keys log (`signal-delivered`) as control reads it: one row per delivery key
# (`stream.delivery_keys`), `sending` while a Marketo call completing the pair was started
# without its answer on record, `delivered` once Marketo acknowledged it. The embedded broker
# forgets the topic when it dies; these rows (with the delivered outcomes) are what control
# re-seeds it from, so outcomes still waiting on `signal-outcomes` at a crash do not make a
# delivered pair look undelivered, and a pair marked sending is counted as a possible repeat.
_V5_DELIVERY_MARKS = (
    """
    CREATE TABLE delivery_marks (
        key VARCHAR PRIMARY KEY,
        change_id VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        replay_id VARCHAR,
        state VARCHAR NOT NULL,
        marked_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )
    """,
)

# The Certain source's place in each polled account (`stream.store.certain_state`): per source
# and event, the newest `dateModified` taken (the watermark the next poll re-reads from, minus
# an overlap), and per record the last version acted on (status, stamp, digest) so a re-read
# emits nothing. Written in the transaction that archives the poll's changes (the outbox).
_V6_CERTAIN_STATE = (
    """
    CREATE TABLE certain_watermarks (
        source_id VARCHAR NOT NULL,
        account_code VARCHAR NOT NULL,
        event_code VARCHAR NOT NULL,
        watermark TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (source_id, account_code, event_code)
    )
    """,
    """
    CREATE TABLE certain_last_seen (
        source_id VARCHAR NOT NULL,
        account_code VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        event_code VARCHAR NOT NULL,
        code VARCHAR NOT NULL,
        status VARCHAR,
        date_modified TIMESTAMPTZ NOT NULL,
        digest VARCHAR NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (source_id, account_code, kind, event_code, code)
    )
    """,
)

# Parquet exports for warehouses (`stream.store.export`) are incremental: each run takes the
# rows recorded after the last run's watermark for that table and destination. `recorded_at`
# (the commit order of the writer thread, as on outcome_log and api_call_log) is what the
# watermark compares; rows archived before this version carry the migration's time.
_V7_LEDGER_EXPORTS = (
    "ALTER TABLE change_log ADD COLUMN recorded_at TIMESTAMPTZ DEFAULT now()",
    """
    CREATE TABLE ledger_exports (
        table_name VARCHAR NOT NULL,
        destination VARCHAR NOT NULL,
        watermark TIMESTAMPTZ NOT NULL,
        rows_exported BIGINT NOT NULL,
        exported_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (table_name, destination)
    )
    """,
)

# Replays outlive the control that runs them (`stream.store.replays`): scope, state, counters and
# `after`, the (occurred_at, change_id) up to which the scope was published, saved per chunk.
_V8_REPLAYS = (
    """
    CREATE TABLE replays (
        id VARCHAR PRIMARY KEY,
        flow_id VARCHAR NOT NULL,
        occurred_from TIMESTAMPTZ,
        occurred_to TIMESTAMPTZ,
        event_code VARCHAR,
        only_undelivered BOOLEAN NOT NULL,
        actor VARCHAR NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        publishing VARCHAR NOT NULL,
        scanned BIGINT NOT NULL,
        in_scope BIGINT NOT NULL,
        published BIGINT NOT NULL,
        unreadable BIGINT NOT NULL,
        skipped_delivered BIGINT NOT NULL,
        after_occurred_at TIMESTAMPTZ,
        after_change_id VARCHAR,
        finished_at TIMESTAMPTZ,
        cancelled_by VARCHAR,
        error VARCHAR,
        resumes INTEGER NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )
    """,
)

# Session registrations (`RegistrationAgenda/{acct}/{evt}`) are polled like registrations: a
# watermark of their own per event (`stream`: 'registrations' or 'sessions') and a last-seen row
# per (registration, session) (`session_code`, '' for other kinds), keyed by the registration
# code so a person's erasure finds them. A registration's row also keeps the registration as its
# last change carried it (`body`, JSON): a session change carries the registration (profile,
# attendee type) and reads it from there instead of one request per record. DuckDB cannot
# change a primary key in place, so both tables are rebuilt.
_V9_CERTAIN_SESSIONS = (
    """
    CREATE TABLE certain_watermarks_v9 (
        source_id VARCHAR NOT NULL,
        account_code VARCHAR NOT NULL,
        event_code VARCHAR NOT NULL,
        stream VARCHAR NOT NULL,
        watermark TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (source_id, account_code, event_code, stream)
    )
    """,
    "INSERT INTO certain_watermarks_v9 SELECT source_id, account_code, event_code, "
    "'registrations', watermark, updated_at FROM certain_watermarks",
    "DROP TABLE certain_watermarks",
    "ALTER TABLE certain_watermarks_v9 RENAME TO certain_watermarks",
    """
    CREATE TABLE certain_last_seen_v9 (
        source_id VARCHAR NOT NULL,
        account_code VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        event_code VARCHAR NOT NULL,
        code VARCHAR NOT NULL,
        session_code VARCHAR NOT NULL,
        status VARCHAR,
        date_modified TIMESTAMPTZ NOT NULL,
        digest VARCHAR NOT NULL,
        body VARCHAR,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (source_id, account_code, kind, event_code, code, session_code)
    )
    """,
    "INSERT INTO certain_last_seen_v9 SELECT source_id, account_code, kind, event_code, code, "
    "'', status, date_modified, digest, NULL, updated_at FROM certain_last_seen",
    "DROP TABLE certain_last_seen",
    "ALTER TABLE certain_last_seen_v9 RENAME TO certain_last_seen",
)

# Retention (`stream.store.retention`) drops outcomes, attempts, Marketo calls and resolved retry
# items past their age; what the dashboards count of them moves, in the same transaction, into
# hourly rollups, so a period's figures are the same before and after. Dimensions are never NULL
# ('' stands for none) so they can form the key the batches add into. Distinct counts (changes,
# registrations, retried pairs) cannot be summed, so each pruned hour keeps the 64-bit hashes of
# its distinct keys (`rollup_keys`): never a registration code itself. `retention_state` holds
# each pass's watermarks (how far payloads are redacted).
_V9_RETENTION = (
    """
    CREATE TABLE rollup_outcomes (
        hour TIMESTAMPTZ NOT NULL,
        mode VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        lead_result VARCHAR NOT NULL,
        reason_code VARCHAR NOT NULL,
        category VARCHAR NOT NULL,
        pairs BIGINT NOT NULL,
        PRIMARY KEY (hour, mode, status, action, lead_result, reason_code, category)
    )
    """,
    """
    CREATE TABLE rollup_attempts (
        hour TIMESTAMPTZ NOT NULL,
        mode VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        retry BOOLEAN NOT NULL,
        possible_repeat BOOLEAN NOT NULL,
        attempts BIGINT NOT NULL,
        PRIMARY KEY (hour, mode, status, retry, possible_repeat)
    )
    """,
    """
    CREATE TABLE rollup_api_calls (
        hour TIMESTAMPTZ NOT NULL,
        connection_id VARCHAR NOT NULL,
        error_code VARCHAR NOT NULL,
        calls BIGINT NOT NULL,
        duration_ms DOUBLE NOT NULL,
        PRIMARY KEY (hour, connection_id, error_code)
    )
    """,
    """
    CREATE TABLE rollup_retry_items (
        hour TIMESTAMPTZ NOT NULL,
        mode VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        category VARCHAR NOT NULL,
        items BIGINT NOT NULL,
        PRIMARY KEY (hour, mode, status, category)
    )
    """,
    """
    CREATE TABLE rollup_keys (
        hour TIMESTAMPTZ NOT NULL,
        mode VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        key UBIGINT NOT NULL,
        PRIMARY KEY (hour, mode, kind, key)
    )
    """,
    """
    CREATE TABLE retention_state (
        name VARCHAR PRIMARY KEY,
        watermark TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )
    """,
)

# An erasure's unfinished scrub: the file blocks that held the erased values, written in the
# erasure's own transaction so a control killed before the scrub ends finishes it at its next
# start. Block ids only: the person's texts would defeat the erasure.
_V11_ERASURE_SCRUBS = (
    """
    CREATE TABLE erasure_scrubs (
        id VARCHAR PRIMARY KEY,
        audit_id VARCHAR,
        noted_at TIMESTAMPTZ NOT NULL,
        blocks BIGINT[] NOT NULL
    )
    """,
)

# Live rollups (`stream.store.rollup_fold`): the hourly figures of rows still kept, folded by
# control's timer so the dashboards read a few thousand rollup rows for the hours folded and the
# ledger only for the rest. Same dimensions as the retention rollups, in tables of their own: an
# hour is counted here only while `live_hours` lists it, and it is taken out again (its rows
# deleted) whenever a kept row of it may have changed, so it is always the exact figure of the
# hour's rows as the ledger holds them. NULL stays NULL (no key here), as the queries compare it.
# `live_keys` holds each hour's distinct key hashes (kind 0 change, 1 registration, 2 retried
# pair) of the live and test modes, hours counted from the epoch and `prev` the previous folded
# hour holding the same key (NULL: none), so a distinct count over many hours is a filtered count
# of narrow integer columns rather than a grouping of millions of hashes. `live_fold_state`
# holds the fold's marks (the writer's time of the last fold, the newest erasure it saw).
_V12_LIVE_ROLLUPS = (
    """
    CREATE TABLE live_hours (
        hour TIMESTAMPTZ PRIMARY KEY,
        folded_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE live_outcomes (
        hour TIMESTAMPTZ NOT NULL,
        mode VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        action VARCHAR,
        lead_result VARCHAR,
        reason_code VARCHAR NOT NULL,
        category VARCHAR,
        pairs BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE live_attempts (
        hour TIMESTAMPTZ NOT NULL,
        mode VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        retry BOOLEAN NOT NULL,
        possible_repeat BOOLEAN NOT NULL,
        attempts BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE live_keys (
        hour INTEGER NOT NULL,
        test BOOLEAN NOT NULL,
        kind UTINYINT NOT NULL,
        key UBIGINT NOT NULL,
        prev INTEGER
    )
    """,
    """
    CREATE TABLE live_fold_state (
        name VARCHAR PRIMARY KEY,
        mark TIMESTAMPTZ,
        seq BIGINT
    )
    """,
)

# The mode of each retry item's pair, as the live rollups' fold last read it from the pair's state
# (`stream.store.rollup_fold.fill_retry_modes`): NULL not read yet, '' the pair had no state.
# The Troubleshooting tab counts a mode's items; with the mode on the item it reads the queue
# alone instead of joining every item with ten million outcomes. The `retry_queue` view is
# unchanged: the column is the fold's, read only where the fold says it is still right.
#
# `live_in_flight` holds each folded hour's pairs still in flight (state queued) by mode and lead
# result, with the oldest: `live_outcomes` holds outcomes only, and the scrape's gauges of pairs
# by status and in flight would otherwise read every state's status. Hours folded before it have
# none, so they are all taken out and folded again.
_V13_RETRY_MODES = (
    "ALTER TABLE retry_items ADD COLUMN mode VARCHAR",
    """
    CREATE TABLE live_in_flight (
        hour TIMESTAMPTZ NOT NULL,
        mode VARCHAR NOT NULL,
        lead_result VARCHAR,
        pairs BIGINT NOT NULL,
        oldest TIMESTAMPTZ NOT NULL
    )
    """,
    *(f"DELETE FROM {table}" for table in ("live_outcomes", "live_attempts", "live_keys")),
    "DELETE FROM live_hours",
)


Apply = Callable[[duckdb.DuckDBPyConnection], None]


# outcome_log without its primary key. The key's index (an ART over every outcome_id ever
# kept) was the ledger's largest index: resident in memory, growing with the retained outcomes
# for as long as control ran (about 68 MiB per million outcomes, all of it loaded again by the
# first batch after a start), and more than half the file on disk. A redelivered outcome is found
# without it: its id hashes its processed_at among other fields, so a stored copy has the same
# processed_at, and the writer looks for the batch's ids only in the rows of the batch's
# processed_at range (`Store.record_outcome_batch`), which DuckDB's zone maps narrow to the newest
# row groups. DuckDB cannot drop a key, so the table is copied (`_without_key`); its views read
# it by name and are unchanged.
def _without_key(table: str) -> Apply:
    """`table` copied without its primary key: the same columns in the same order, the same
    NOT NULL columns and defaults, every row in its order."""

    def apply(con: duckdb.DuckDBPyConnection) -> None:
        columns = con.execute(
            "SELECT column_name, is_nullable, column_default FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        copy = f"{table}_unkeyed"
        con.execute(f"CREATE TABLE {copy} AS SELECT * FROM {table}")
        for name, nullable, default in columns:
            if not nullable:
                con.execute(f"ALTER TABLE {copy} ALTER COLUMN {name} SET NOT NULL")
            if default is not None:
                con.execute(f"ALTER TABLE {copy} ALTER COLUMN {name} SET DEFAULT {default}")
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE {copy} RENAME TO {table}")

    return apply


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: Sequence[str] = ()
    apply: Apply | None = None
    """For changes SQL alone cannot express (backfills computed in Python)."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "ledger tables and analytics views", (*_V1_TABLES, *_V1_VIEWS)),
    Migration(
        2,
        "change_log.published_at (ingest outbox) and rejected_records",
        _V2_OUTBOX_AND_REJECTED_RECORDS,
    ),
    Migration(3, "recovery log", _V3_RECOVERY),
    Migration(
        4, "possible_repeat on outcomes (a delivery repeated after a crash)", _V4_POSSIBLE_REPEAT
    ),
    Migration(5, "delivery marks (the delivered-keys log kept in the ledger)", _V5_DELIVERY_MARKS),
    Migration(6, "Certain source state: watermarks and last-seen records", _V6_CERTAIN_STATE),
    Migration(
        7, "Parquet export watermarks (change_log.recorded_at, ledger_exports)", _V7_LEDGER_EXPORTS
    ),
    Migration(8, "replays (a replay's progress survives a control restart)", _V8_REPLAYS),
    Migration(9, "retention: hourly rollups of pruned rows, retention watermarks", _V9_RETENTION),
    Migration(
        10,
        "Certain session registrations: watermark streams, session last-seen, registration bodies",
        _V9_CERTAIN_SESSIONS,
    ),
    Migration(
        11, "erasure scrubs a restart finishes (file blocks, never the person)", _V11_ERASURE_SCRUBS
    ),
    Migration(12, "live hourly rollups of kept rows, folded by control", _V12_LIVE_ROLLUPS),
    Migration(
        13,
        "retry items carry their pair's mode, folded hours' pairs in flight",
        _V13_RETRY_MODES,
    ),
    Migration(
        14,
        "outcome_log without a primary key (redelivered outcomes found by processed_at and id)",
        apply=_without_key("outcome_log"),
    ),
)
