"""Read-only holds on the server: a real `csignal control` issues an operator token and a
read-only token (both 0600); with the read-only one every read and the POSTs that only read
are answered, and every other write is refused with 403 naming the token as read-only, from
the API, the CLI and the console's client alike."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from apiclient.client import ApiClient
from apiclient.errors import RequestRefused
from simulators.certain.demo_account import SECRET_ENV, demo_account_yaml
from stream.broker import EmbeddedBroker
from tests.support.processes import ControlProcess, clean_env, run_csignal, start_control

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FLOW = "test-registered"
WRITES: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/changes", []),
    ("PUT", "/api/v1/config", None),
    ("POST", "/api/v1/flows", {"id": "new-flow"}),
    ("PUT", f"/api/v1/flows/{FLOW}", {}),
    ("POST", f"/api/v1/flows/{FLOW}/active", {"active": False}),
    ("POST", f"/api/v1/flows/{FLOW}/mode", {"mode": "live"}),
    ("POST", "/api/v1/connections", {"id": "c2"}),
    ("PUT", "/api/v1/connections/demo-marketo", {}),
    ("DELETE", "/api/v1/connections/demo-marketo", None),
    ("POST", "/api/v1/connections/demo-marketo/test", None),
    ("POST", "/api/v1/connections/test", {}),
    ("POST", "/api/v1/connections/demo-marketo/fields/refresh", None),
    ("POST", "/api/v1/mappings", {"id": "m2"}),
    ("PUT", "/api/v1/mappings/lead-fields", {}),
    ("PUT", "/api/v1/tags/assignments", {}),
    ("POST", "/api/v1/retry-queue/submit", {"items": []}),
    ("POST", "/api/v1/replays", {"flow_id": FLOW, "event_code": "SUMMIT26"}),
    ("POST", "/api/v1/replays", {"flow_id": FLOW, "dry_run": False}),
    ("POST", "/api/v1/replays", {"flow_id": FLOW, "dry_run": "true"}),
    ("DELETE", "/api/v1/replays/r-1", None),
]


@pytest.fixture(scope="module")
def control(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    data_dir = tmp_path_factory.mktemp("read-only") / "var"
    data_dir.mkdir(parents=True)
    (data_dir / "account.yaml").write_text(demo_account_yaml("http://127.0.0.1:9"))
    running = start_control(module_broker, data_dir, env={SECRET_ENV: "read-only-secret"})
    try:
        yield running
    finally:
        running.stop()


def read_only_token(control: ControlProcess) -> str:
    return (control.data_dir / "api-token-read-only").read_text(encoding="ascii").strip()


async def send(
    control: ControlProcess, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            control.url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        if response.content_type != "application/json":
            return response.status, await response.text()
        return response.status, await response.json()


def test_control_writes_both_tokens_owner_only_and_different(control: ControlProcess) -> None:
    operator = control.data_dir / "api-token"
    viewer = control.data_dir / "api-token-read-only"
    for path in (operator, viewer):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert read_only_token(control) and read_only_token(control) != control.token


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
async def test_every_write_is_refused_with_the_read_only_token(
    control: ControlProcess, method: str, path: str, body: Any
) -> None:
    status, reply = await send(control, read_only_token(control), method, path, body)
    assert status == 403, reply
    message = reply["errors"][0]["message"]
    assert message.startswith(f"this API token is read-only: {method} {path} would change")
    assert "operator token" in message


async def test_the_operator_token_still_reaches_the_routes(control: ControlProcess) -> None:
    status, reply = await send(control, control.token, "POST", f"/api/v1/flows/{FLOW}/mode", {})
    assert status not in (401, 403), reply


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/flows", None),
        ("GET", "/api/v1/config", None),
        ("GET", "/api/v1/retry-queue", None),
        ("POST", "/api/v1/sql", {"sql": "SELECT 1 AS one"}),
        ("POST", f"/api/v1/mappings/{FLOW}/preview", {}),
        ("POST", "/api/v1/replays", {"flow_id": FLOW, "event_code": "SUMMIT26", "dry_run": True}),
    ],
    ids=["flows", "config", "retry-queue", "sql", "preview", "replay-dry-run"],
)
async def test_reads_are_answered_with_the_read_only_token(
    control: ControlProcess, method: str, path: str, body: Any
) -> None:
    status, reply = await send(control, read_only_token(control), method, path, body)
    assert status == 200, reply
    if path == "/api/v1/replays":
        assert "replay_id" not in reply and "id" not in reply, "a dry run starts nothing"


@pytest.mark.parametrize("who", ["read-only", "operator"])
async def test_a_dry_run_body_past_the_bound_is_413_for_either_token(
    control: ControlProcess, who: str
) -> None:
    """The read-only check reads a replay's body to see `dry_run`; a body past the object
    routes' 4 MiB is refused there as the route would refuse it (a JSON 413), not read whole,
    not taken for a write (403) and not a 500."""
    token = read_only_token(control) if who == "read-only" else control.token
    padding = "x" * (5 * 1024 * 1024)
    body = {"flow_id": FLOW, "event_code": "SUMMIT26", "dry_run": True, "note": padding}
    status, reply = await send(control, token, "POST", "/api/v1/replays", body)
    assert status == 413, reply
    assert isinstance(reply, dict) and "request body" in str(reply), reply
    status, reply = await send(control, token, "POST", "/api/v1/replays", {**body, "note": "small"})
    assert status == 200, reply


async def test_a_write_of_the_sql_route_stays_refused_by_sql_itself(
    control: ControlProcess,
) -> None:
    status, reply = await send(
        control, read_only_token(control), "POST", "/api/v1/sql", {"sql": "DELETE FROM changes"}
    )
    assert status == 400, reply


async def test_a_wrong_token_is_still_401(control: ControlProcess) -> None:
    status, _ = await send(control, "not-a-token", "GET", "/api/v1/flows")
    assert status == 401


async def test_the_cli_with_the_read_only_token_file_reads_and_is_refused_writes(
    control: ControlProcess, tmp_path: Path
) -> None:
    env = clean_env(
        SIGNAL_API=control.api,
        SIGNAL_DATA_DIR=str(control.data_dir),
        SIGNAL_API_TOKEN_FILE=str(control.data_dir / "api-token-read-only"),
    )
    code, out, err = await run_csignal("sql", "SELECT 41 + 1 AS answer", env=env)
    assert code == 0, err
    assert "42" in out
    account = tmp_path / "account.yaml"
    account.write_text(demo_account_yaml("http://127.0.0.1:9"))
    code, out, err = await run_csignal("config", "import", str(account), env=env)
    assert code != 0
    assert "this API token is read-only: PUT /api/v1/config would change Signal" in err + out
    assert "was refused" not in err + out, "a read-only refusal is not a wrong token"


async def test_the_console_client_with_the_read_only_token_is_refused_with_the_reason(
    control: ControlProcess,
) -> None:
    client = ApiClient.for_console(control.url, read_only_token(control))
    try:
        assert [f.id for f in await client.flows()]
        with pytest.raises(RequestRefused) as refused:
            await client.set_active(FLOW, False)
        assert refused.value.status == 403
        assert "this API token is read-only" in refused.value.message
    finally:
        await client.close()


async def test_a_read_only_console_uses_the_read_only_token_never_the_operators(
    control: ControlProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.app import make_app

    monkeypatch.setenv("SIGNAL_DATA_DIR", str(control.data_dir))
    monkeypatch.setenv("SIGNAL_API_TOKEN", control.token)
    app = make_app(control.url, None, read_only=True, watch_tty=False)
    try:
        assert [f.id for f in await app.client.flows()]
        with pytest.raises(RequestRefused) as refused:
            await app.client.set_mode(FLOW, "live")
        assert refused.value.status == 403
    finally:
        await app.client.close()


async def test_console_read_only_without_the_read_only_token_does_not_start(
    control: ControlProcess, tmp_path: Path
) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = clean_env(
        SIGNAL_API=control.api, SIGNAL_DATA_DIR=str(empty), SIGNAL_API_TOKEN=control.token
    )
    code, _out, err = await run_csignal("console", "--read-only", env=env)
    assert code == 2
    assert f"no read-only API token: {empty / 'api-token-read-only'} does not exist" in err
