"""Per-flow figures: counts by outcome and an hourly series, over today or a period ending at a
given time, from the outcomes in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stream.store.rows import OutcomeRow, OutcomeStatus
from tests.api.api_harness import Api

# Every request names the end of its period (`to`): the figures never meet the real clock.
END = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def outcome(n: int, flow_id: str, status: OutcomeStatus, at: datetime) -> OutcomeRow:
    return OutcomeRow(
        change_id=f"c-{n}",
        flow_id=flow_id,
        flow_name=flow_id,
        mode="live",
        status=status,
        category="data" if status == "failed" else None,
        occurred_at=at,
        processed_at=at,
    )


async def _seed(api: Api) -> None:
    rows = [
        outcome(1, "registered-to-nurture", "delivered", END - timedelta(minutes=10)),
        outcome(2, "registered-to-nurture", "delivered", END - timedelta(minutes=70)),
        outcome(3, "registered-to-nurture", "failed", END - timedelta(minutes=75)),
        outcome(4, "registered-to-nurture", "not_activated", END - timedelta(hours=11, minutes=30)),
        outcome(5, "registered-to-nurture", "filtered_out", END - timedelta(minutes=1)),
        outcome(6, "registered-to-nurture", "delivered", END - timedelta(hours=13)),
        outcome(7, "gone-flow", "failed", END - timedelta(hours=2)),
        outcome(8, "registered-to-nurture", "delivered", END + timedelta(minutes=1)),
    ]
    await api.store.record_outcomes(rows, [])


async def test_today_counts_and_series_per_flow(api: Api) -> None:
    await _seed(api)
    response = await api.get(
        "/api/v1/flows/figures", params={"period": "today", "to": END.isoformat()}
    )
    assert response.status == 200
    body = await response.json()
    assert body["from"] == "2026-11-28T00:00:00+00:00" and body["bucket_s"] == 3600
    nurture = body["flows"]["registered-to-nurture"]
    assert (nurture["delivered"], nurture["failed"], nurture["not_activated"]) == (2, 1, 1)
    assert len(nurture["series"]) == 12
    assert nurture["series"][11] == 2  # delivered 10 min before and filtered out 1 min before
    assert nurture["series"][10] == 2
    assert nurture["series"][0] == 1 and sum(nurture["series"]) == 5
    assert body["flows"]["gone-flow"]["failed"] == 1
    quiet = body["flows"]["half-built"]
    assert quiet == {"delivered": 0, "failed": 0, "not_activated": 0, "series": [0] * 12}


async def test_a_24h_period_reaches_into_yesterday(api: Api) -> None:
    await _seed(api)
    response = await api.get(
        "/api/v1/flows/figures", params={"period": "24h", "to": END.isoformat()}
    )
    body = await response.json()
    nurture = body["flows"]["registered-to-nurture"]
    assert nurture["delivered"] == 3 and len(nurture["series"]) == 24
    assert nurture["series"][24 - 13] == 1


async def test_bad_parameters_name_themselves(api: Api) -> None:
    for params, path in (
        ({"period": "forever"}, "period"),
        ({"period": "today", "to": "yesterday"}, "to"),
        ({"period": "24h", "to": "2026-11-28T12:00:00"}, "to"),
    ):
        response = await api.get("/api/v1/flows/figures", params=params)
        assert response.status == 400, params
        assert (await response.json())["errors"][0]["path"] == path
    assert (await api.client.get("/api/v1/flows/figures")).status == 401


async def test_figures_default_to_the_last_day_and_leave_flow_routes_alone(api: Api) -> None:
    response = await api.get("/api/v1/flows/figures")
    assert response.status == 200
    assert len((await response.json())["flows"]["registered-to-nurture"]["series"]) == 24
    assert (await api.get("/api/v1/flows/registered-to-nurture")).status == 200
