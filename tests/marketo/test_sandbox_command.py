"""`csignal sandbox`: starts within 2 s, says where it listens (never the secret), stops on
SIGTERM; `--seed` loads a YAML/JSON seed; a bad seed fails with exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from simulators.marketo.sandbox import SandboxSeed
from stream.commands.sandbox import COMMAND
from tests.support.processes import run_csignal, wait_exit

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stream", "sandbox", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for_url(proc: subprocess.Popen[str], within: float) -> tuple[str, str, float]:
    started = time.monotonic()
    assert proc.stderr is not None
    line = proc.stderr.readline()
    elapsed = time.monotonic() - started
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
    assert match, line
    assert elapsed < within, elapsed
    return match.group(1), line, elapsed


def test_register_adds_sandbox_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="csignal")
    COMMAND.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["sandbox", "--port", "0", "--client-id", "abc", "--token-lifetime", "5"]
    )
    assert (args.port, args.client_id, args.token_lifetime, args.host) == (0, "abc", 5, "127.0.0.1")
    assert callable(args.handler)


async def test_starts_logs_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("leads:\n  - email: seeded@example.com\n    firstName: Seed\n")
    proc = start(
        "--client-id", "demo-client", "--client-secret", "s3cr3t-value", "--seed", str(seed)
    )
    try:
        # Start-up time is measured in bench/sandbox_startup.py; here only a generous bound, so a
        # loaded machine does not fail the behaviour test.
        url, line, _ = wait_for_url(proc, within=20.0)
        assert "demo-client" in line
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"{url}/identity/oauth/token",
                params={
                    "grant_type": "client_credentials",
                    "client_id": "demo-client",
                    "client_secret": "s3cr3t-value",
                },
            ) as resp:
                token = (await resp.json())["access_token"]
            async with http.get(
                f"{url}/rest/v1/leads.json",
                params={"filterType": "email", "filterValues": "seeded@example.com"},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                body = await resp.json()
        assert body["result"][0]["firstName"] == "Seed"
    finally:
        proc.send_signal(signal.SIGTERM)
        wait_exit(proc, 10)
        out, err = proc.communicate()
    assert proc.returncode == 0
    assert "s3cr3t-value" not in out + err + line


async def test_bad_seed_file_exits_2(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"campaigns": [{"name": "no id"}]}))
    code, _, err = await run_csignal("sandbox", "--seed", str(seed), within=60)
    assert code == 2
    assert "csignal sandbox" in err


def test_seed_loads_json_and_yaml(tmp_path: Path) -> None:
    data = {
        "fields": [{"name": "badgeColour", "searchable": True}],
        "forms": [{"id": 7, "name": "Seven", "fields": [{"id": "Email"}]}],
    }
    (tmp_path / "s.json").write_text(json.dumps(data))
    (tmp_path / "s.yaml").write_text(
        "fields:\n  - name: badgeColour\n    searchable: true\n"
        "forms:\n  - id: 7\n    name: Seven\n    fields:\n      - id: Email\n"
    )
    assert SandboxSeed.load(tmp_path / "s.json") == SandboxSeed.load(tmp_path / "s.yaml")


async def test_port_in_use_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await run_csignal("sandbox", "--port", str(port), within=60)
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
