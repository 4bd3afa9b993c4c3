"""`metric_*` views: the dashboard's classifications as SQL operators can query themselves.

They add columns to the stable views of DESIGN 4.6 (never replace them), so an operator's
`SELECT reason_code, count(*) FROM metric_outcomes WHERE mode = 'live' AND NOT in_flight
GROUP BY ALL` gives the numbers the Summary shows (`in_flight`: a delivery routed to Marketo
with no answer yet, which no figure counts). Installed with `CREATE OR REPLACE`, so running it
at every start keeps them in step with this build.
"""

from __future__ import annotations

from stream.metrics.definitions import (
    DONE,
    IN_FLIGHT_STATUS,
    NOT_TRIGGERED_STATUSES,
    call_error_code_sql,
    call_is_error_sql,
    reason_code_sql,
)
from stream.store.store import Store
from stream.store.writer import Con

_NOT_TRIGGERED = ", ".join(f"'{s}'" for s in NOT_TRIGGERED_STATUSES)

METRIC_VIEWS: dict[str, str] = {
    "metric_outcomes": f"""
        CREATE OR REPLACE VIEW metric_outcomes AS
        SELECT *, status = 'delivered' AS triggered,
               status IN ({_NOT_TRIGGERED}) AS not_triggered,
               CASE WHEN status IN ('delivered', '{IN_FLIGHT_STATUS}') THEN NULL
                    ELSE {reason_code_sql()} END AS reason_code,
               status = '{IN_FLIGHT_STATUS}' AS in_flight
        FROM outcomes
    """,
    "metric_api_calls": f"""
        CREATE OR REPLACE VIEW metric_api_calls AS
        SELECT *, {call_is_error_sql()} AS is_error,
               CASE WHEN {call_is_error_sql()} THEN {call_error_code_sql()} END AS error_code
        FROM api_calls
    """,
    "metric_retry_queue": """
        CREATE OR REPLACE VIEW metric_retry_queue AS
        SELECT r.*, o.mode
        FROM retry_queue r
        LEFT JOIN outcomes o ON o.change_id = r.change_id AND o.flow_id = r.flow_id
    """,
    "metric_retry_attempts": f"""
        CREATE OR REPLACE VIEW metric_retry_attempts AS
        SELECT * FROM outcome_attempts WHERE attempt > 1 AND NOT replayed AND {DONE}
    """,
}


def install_metric_views(con: Con) -> None:
    """Create or refresh every `metric_*` view on a read-write connection."""
    for ddl in METRIC_VIEWS.values():
        con.execute(ddl)


async def install(store: Store) -> None:
    """`install_metric_views` on the store's writer thread, in one transaction."""
    await store.write(install_metric_views)
