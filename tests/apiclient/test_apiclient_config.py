"""The client's configuration and flow routes against a real `csignal control` process (embedded
broker, DuckDB): the account goes in and out without its secret, flows toggle, bad input is
refused by path and a wrong token is refused as such."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apiclient.client import ApiClient
from apiclient.errors import RequestRefused, TokenRefused
from simulators.certain.demo_account import SECRET_ENV, demo_account_yaml
from stream.broker import EmbeddedBroker
from tests.support.processes import ControlProcess, start_control

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def control_process(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    data_dir = tmp_path_factory.mktemp("apiclient-config") / "var"
    running = start_control(module_broker, data_dir, env={SECRET_ENV: "cli-secret"})
    try:
        yield running
    finally:
        running.stop()


async def test_client_flows_and_config_round_trip(control_process: ControlProcess) -> None:
    async with ApiClient(control_process.url, control_process.token) as client:
        health = await client.healthz()
        assert health["ok"] is True
        text = demo_account_yaml("http://127.0.0.1:9", "cli-client")
        await client.put_config(text)
        exported = await client.get_config()
        assert "${" + SECRET_ENV + "}" in exported and "cli-secret" not in exported
        flows = {f.id: f for f in await client.flows()}
        assert flows["complete-form"].active and flows["complete-form"].complete
        await client.set_active("complete-form", False)
        await client.set_mode("test-form", "live")
        flows = {f.id: f for f in await client.flows()}
        assert flows["complete-form"].active is False
        assert flows["test-form"].mode == "live"
        with pytest.raises(RequestRefused) as refused:
            await client.set_mode("test-form", "sometimes")
        assert refused.value.status == 422 and "mode" in str(refused.value)
        with pytest.raises(RequestRefused):
            await client.put_config("account: [unclosed")
    async with ApiClient(control_process.url, "wrong") as client:
        with pytest.raises(TokenRefused):
            await client.flows()
