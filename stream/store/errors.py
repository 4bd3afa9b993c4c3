"""Store failures callers are expected to tell apart."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreLockedError(StoreError):
    """The database file is held by another process (DuckDB allows one writing process)."""


class StoreClosedError(StoreError):
    """The store was used after `close()`."""


class StoreWriteError(StoreError):
    """A write batch failed and was rolled back as a whole; nothing of it is durable."""


class StoreReadError(StoreError):
    """A read of the store failed inside DuckDB."""


class SchemaVersionError(StoreError):
    """The file was written by a newer build whose schema this build does not know."""


class SecretLeakError(StoreError):
    """A value that looks like a secret reached a place secrets must never be stored."""


class ConfigConflictError(StoreError):
    """A configuration object changed since the version the caller edited."""


class SqlRefusedError(StoreError):
    """An operator statement was refused by the read-only guard; `reason` says why."""

    def __init__(self, reason: str, statement: str = "") -> None:
        self.reason = reason
        self.statement = statement
        super().__init__(f"refused: {reason}")


class SqlFailedError(StoreError):
    """An accepted operator statement failed inside DuckDB (syntax, unknown column, timeout …)."""
