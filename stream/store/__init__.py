"""The control service's DuckDB store: ledger of changes, outcomes and Marketo calls, the retry
queue, the configuration with its audit trail, and guarded read-only SQL for operators."""

from stream.store.errors import (
    ConfigConflictError,
    SchemaVersionError,
    SecretLeakError,
    SqlFailedError,
    SqlRefusedError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StoreReadError,
    StoreWriteError,
)
from stream.store.readonly_sql import Column, QueryResult, check_read_only
from stream.store.rows import (
    ApiCallRow,
    ChangeRow,
    ConfigAuditEntry,
    ConfigObject,
    OutcomeRow,
    Page,
    RejectedRecordRow,
    RejectedRow,
    RetryFilter,
    RetryItem,
    RetryPage,
)
from stream.store.schema import VIEW_COLUMNS
from stream.store.store import Store

__all__ = [
    "VIEW_COLUMNS",
    "ApiCallRow",
    "ChangeRow",
    "Column",
    "ConfigAuditEntry",
    "ConfigConflictError",
    "ConfigObject",
    "OutcomeRow",
    "Page",
    "QueryResult",
    "RejectedRecordRow",
    "RejectedRow",
    "RetryFilter",
    "RetryItem",
    "RetryPage",
    "SchemaVersionError",
    "SecretLeakError",
    "SqlFailedError",
    "SqlRefusedError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "StoreReadError",
    "StoreWriteError",
    "check_read_only",
]
