"""The operator-API client against a real operator API: shapes, toggles and failure text."""

from __future__ import annotations

import socket

import pytest

from apiclient.client import ApiClient
from apiclient.errors import ControlUnreachable, RequestRefused, TokenRefused
from apiclient.rows import RetryFilters
from tests.console.control_harness import TOKEN, Control


async def test_flows_carry_completeness_and_toggles_round_trip(control: Control) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        flows = {f.id: f for f in await client.flows()}
        assert flows["registered-to-nurture"].complete
        half = flows["half-built"]
        assert not half.complete and "no activate-for tag" in half.reasons
        off = await client.set_active("registered-to-nurture", False)
        assert off.active is False
        assert not (await client.flow("registered-to-nurture")).active
        live = await client.set_mode("test-registered", "live")
        assert live.mode == "live"
    finally:
        await client.close()


async def test_activating_an_incomplete_flow_is_refused_with_reasons(control: Control) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        with pytest.raises(RequestRefused) as caught:
            await client.set_active("half-built", True)
        assert caught.value.status == 409
        assert "incomplete" in caught.value.message
    finally:
        await client.close()


async def test_failures_read_as_what_to_do(control: Control) -> None:
    bad = ApiClient.for_console(control.url, "wrong-token")
    with pytest.raises(TokenRefused, match="token was refused"):
        await bad.flows()
    await bad.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = ApiClient.for_console(f"http://127.0.0.1:{port}", TOKEN)
    with pytest.raises(ControlUnreachable, match=r"control is not reachable at .* running\?"):
        await gone.flows()
    await gone.close()
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        with pytest.raises(RequestRefused) as missing:
            await client.flow("no-such-flow")
        assert missing.value.status == 404 and "no flow" in missing.value.message
        with pytest.raises(RequestRefused, match="refused"):
            await client.sql("DELETE FROM changes")
    finally:
        await client.close()


async def test_connections_never_carry_the_secret(control: Control) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        [connection] = await client.connections()
        assert connection.secret_set
        assert "client_secret" not in connection.raw
        assert "sandbox-secret" not in repr(connection.raw)
        result = await client.test_connection(connection.id)
        assert result.ok and result.fields > 0
        fields = await client.refresh_fields(connection.id)
        assert "email" in {f.name for f in fields}
    finally:
        await client.close()


async def test_sql_rows_and_cap(control: Control) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        result = await client.sql("SELECT change_id FROM outcomes ORDER BY 1", max_rows=5)
        assert result.columns == ["change_id"] and len(result.rows) == 5 and result.truncated
    finally:
        await client.close()


async def test_retry_queue_pages_and_resubmits(control: Control) -> None:
    client = ApiClient.for_console(control.url, TOKEN)
    try:
        page = await client.retry_page(RetryFilters(status="abandoned"), 0, 10)
        assert page.total == 15 and len(page.rows) == 10
        second = await client.retry_page(RetryFilters(status="abandoned"), 10, 10)
        assert len(second.rows) == 5
        assert not {r.key for r in page.rows} & {r.key for r in second.rows}
        row = page.rows[0]
        result = await client.retry_submit([(row.change_id, row.flow_id)])
        assert (result.submitted, result.selected) == (1, 1)
        assert control.redriven
        detail = await client.retry_item(row.change_id, row.flow_id)
        assert detail["item"]["status"] != "abandoned"
        assert detail["change"]["changeId"] == row.change_id
        everything = await client.retry_submit_matching(RetryFilters(status="abandoned"), 14)
        assert everything.submitted == 14
        preview = await client.preview_mapping("lead-basic", {"flow_id": "registered-to-nurture"})
        assert preview["mapping_id"] == "lead-basic"
    finally:
        await client.close()
