"""The audit trail names who changed something through the CLI: `$SIGNAL_ACTOR`, else the login
name, also when `$USER` and `$LOGNAME` are empty (the password database's name, else `uid:<n>`),
never a stand-in such as `cli`."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from simulators.certain.demo_account import SECRET_ENV, demo_account_yaml
from stream.broker import EmbeddedBroker
from tests.support.processes import ControlProcess, clean_env, run_csignal, start_control

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def control(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    data_dir = tmp_path_factory.mktemp("cli-actor") / "var"
    running = start_control(module_broker, data_dir, env={SECRET_ENV: "actor-secret"})
    try:
        yield running
    finally:
        running.stop()


async def last_actor(control: ControlProcess) -> str:
    async with aiohttp.ClientSession() as session:
        rows = await control.sql(
            session, 'SELECT actor FROM config_audit ORDER BY "at" DESC, actor LIMIT 1'
        )
    return str(rows[0][0])


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"USER": "", "LOGNAME": ""}, getpass.getuser()),
        ({"USER": "ana", "LOGNAME": ""}, "ana"),
        ({"USER": "", "SIGNAL_ACTOR": "ops:night-shift"}, "ops:night-shift"),
    ],
    ids=["empty-user", "user", "signal-actor"],
)
async def test_the_cli_names_its_operator_in_the_audit(
    control: ControlProcess, tmp_path: Path, names: dict[str, str], expected: str
) -> None:
    data = yaml.safe_load(demo_account_yaml("http://127.0.0.1:9"))
    data["flows"][0]["name"] = f"Renamed by {expected}"  # a change of its own, so it is audited
    account = tmp_path / "account.yaml"
    account.write_text(yaml.safe_dump(data))
    env = clean_env(SIGNAL_API=control.api, SIGNAL_DATA_DIR=str(control.data_dir))
    env.pop("SIGNAL_ACTOR", None)
    env.update(names)
    code, _out, err = await run_csignal("config", "import", str(account), env=env)
    assert code == 0, err
    assert await last_actor(control) == expected
