"""The event catalog control starts with: rebuilt from the archived `event.create_update`
changes, the newest of each event.

Apart from `ConfigService` because the catalog is not configuration an operator edits: it comes
from Certain's changes, is rebuilt from the ledger at each start and only travels in the same
snapshot.
"""

from __future__ import annotations

import json
import logging

from stream.certain.events import ChangeEvent
from stream.certain.parsing import parse_change
from stream.core.catalog import EMPTY_CATALOG, EventCatalog
from stream.store import Store

__all__ = ["rebuild_catalog"]

log = logging.getLogger("signal.control.config")

MAX_EVENTS = 100_000

_CATALOG_SQL = (
    "SELECT payload::VARCHAR FROM changes WHERE type = 'event.create_update' "
    "QUALIFY row_number() OVER (PARTITION BY event_code "
    "ORDER BY occurred_at DESC, received_at DESC) = 1"
)


async def rebuild_catalog(store: Store) -> EventCatalog:
    result = await store.query(_CATALOG_SQL, max_rows=MAX_EVENTS, timeout_s=None)
    catalog = EMPTY_CATALOG
    for (payload,) in result.rows:
        parsed = parse_change(json.loads(payload))
        if isinstance(parsed, ChangeEvent):
            catalog = catalog.apply(parsed)
    if result.truncated:
        log.warning("catalog rebuilt from the first 100000 events only")
    return catalog
