"""A crowd around one person in the ledger: other people's delivery states and retry items in
the row group that holds the person's row.

DuckDB compresses each column of a row group into its own segment, and the small ones (a reason
column, a status column) share one 256 KiB block of the file: the layout an erasure has to get
the person's old bytes out of. Full row groups (122,880 rows, `ROWS`) have it, and so does a
small crowd (`SMALL`): `tests/store/test_person_erasure.py` fails the same way at 125,000, 1,000,
10 and 2 rows with the moving of shared segments, the row groups' insert or the file search
taken out, for about a tenth of the CPU (an erasure inserts its row groups again, ~70 µs a row).
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime

from stream.store.writer import Con

ROWS = 125_000
"""Rows per table: a full row group (122,880 rows) and a few more."""
AT = 1_000
"""The person's rowid in each table: inside the first row group, not at the table's end."""
SMALL = 1_000
"""Rows per table of a crowd inside one row group, the person's at rowid `SMALL // 2`."""


@dataclasses.dataclass(frozen=True)
class Someone:
    """One person whose values no one else in the ledger has, so a byte search finds only them."""

    email: str
    phone: str
    code: str
    first: str
    last: str

    @classmethod
    def make(cls, local: str = "erasee", domain: str = "example.org") -> Someone:
        tag = secrets.token_hex(6)
        return cls(
            email=f"{local}.{tag}@{domain}",
            phone=f"+1 206 {secrets.randbelow(10**7):07d}",
            code=f"REG{tag.upper()}",
            first=f"Firstname{secrets.token_hex(5)}",
            last=f"Lastname{secrets.token_hex(5)}",
        )

    @property
    def secrets(self) -> list[bytes]:
        """Email and phone: what the erasure's own search of the file looks for."""
        return [self.email.encode(), self.phone.encode()]

    @property
    def all_values(self) -> list[bytes]:
        """Email, names and phone: everything of theirs a change's payload carries."""
        return [s.encode() for s in (self.email, self.first, self.last, self.phone)]


def _state_rows(lo: int, hi: int, reason: str, change_id: str) -> str:
    return (
        "INSERT INTO delivery_state BY NAME SELECT "
        f"{change_id} AS change_id, 'flow-' || (i % 3) AS flow_id, 'Flow' AS flow_name, "
        f"'live' AS mode, 'failed' AS status, {reason} AS reason, 1 AS attempt, "
        "false AS replayed, $at AS occurred_at, $at AS processed_at, 'o-' || i AS outcome_id, "
        "1 AS attempts, $at AS first_processed_at, $at AS updated_at "
        f"FROM range({lo}, {hi}) t(i)"
    )


def _retry_rows(lo: int, hi: int, reason: str, change_id: str) -> str:
    return (
        "INSERT INTO retry_items BY NAME SELECT "
        f"{change_id} AS change_id, 'flow-' || (i % 3) AS flow_id, 'Flow' AS flow_name, "
        "'marketo' AS integration, 'pending' AS status, 'data' AS category, "
        f"{reason} AS reason, 1 AS attempts, $at AS created_at, $at AS updated_at "
        f"FROM range({lo}, {hi}) t(i)"
    )


def add_crowd(con: Con, change_id: str, reason: str, at: datetime, *, rows: int = ROWS) -> int:
    """`rows` rows in both tables: other people's (change ids `chg-<n>`, reason 'HTTP 503')
    and the person's change `change_id` failed for `reason`, at the rowid returned (`AT` in a
    crowd of `ROWS`, the middle of a smaller one)."""
    mine = AT if rows > 2 * AT else rows // 2
    others, theirs = "'chg-' || i", "$change_id"
    for insert in (_state_rows, _retry_rows):
        con.execute(insert(0, mine, "'HTTP 503'", others), {"at": at})
        con.execute(
            insert(mine, mine + 1, "$reason", theirs),
            {"at": at, "reason": reason, "change_id": change_id},
        )
        con.execute(insert(mine + 1, rows, "'HTTP 503'", others), {"at": at})
    return mine
