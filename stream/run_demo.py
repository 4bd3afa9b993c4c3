"""The Marketo side of `csignal run --demo`: the sandbox, the demo account, pushed traffic.

Apart from the runner because it is the one place where `csignal run` touches the simulators (the
import contracts list it by name): the Marketo sandbox in this process, the demo account pointing
at it, and, with `demo_feed="push"`, the simulator's traffic posted straight into the ingest API
as another producer would. The Certain side of the demo is `stream.demo_certain`.

The demo account is imported into an empty data dir only: an account already stored is the
operator's and is kept, its demo connection pointed at this run's sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from apiclient.client import ApiClient
from apiclient.errors import ApiError, RequestRefused
from apiclient.rows import IngestResult
from simulators.certain.demo_account import (
    CONNECTION_ID,
    SECRET_ENV,
    demo_account_yaml,
)
from simulators.certain.send import send_paced
from simulators.certain.traffic import SimChange, generate
from simulators.marketo.sandbox import Sandbox, SandboxConfig
from stream.run_supervisor import RunError

__all__ = [
    "DEMO_CHUNK_S",
    "DEMO_CLIENT_ID",
    "demo_account",
    "push_traffic",
    "start_sandbox",
]

DEMO_CHUNK_S = 600.0
DEMO_CLIENT_ID = "signal-demo"

Say = Callable[[str], None]


async def start_sandbox(
    env: MutableMapping[str, str], os_env: MutableMapping[str, str], say: Say
) -> Sandbox:
    """The Marketo sandbox on a free port, with a client secret drawn for this run and handed
    to control (`env`) and to this process (`os_env`) through the demo account's `${VAR}`."""
    secret = secrets.token_urlsafe(24)
    env[SECRET_ENV] = secret
    os_env[SECRET_ENV] = secret
    sandbox = Sandbox(SandboxConfig(client_id=DEMO_CLIENT_ID, client_secret=secret))
    await sandbox.start("127.0.0.1", 0)
    say(f"Marketo sandbox: {sandbox.url} (leads at {sandbox.url}/_sandbox/leads)")
    return sandbox


async def demo_account(
    client: ApiClient, sandbox_url: str, data_dir: Path, say: Say, variant: str = "full"
) -> str | None:
    """The demo account's YAML (`variant`: `simulators.certain.demo_account.VARIANTS`) to import
    when the data dir is empty; None otherwise. An account already stored is the operator's
    (edited flows, filters, transforms) and is kept as it is, whatever the variant asked; only
    the demo connection is pointed at this run's sandbox, whose port is new at every start."""
    try:
        stored = json.loads(await client.get_config("json"))
    except ApiError as error:
        raise RunError(f"reading the stored account failed: {error}") from None
    except ValueError as error:
        raise RunError(f"control's account export is not JSON: {error}") from None
    counts = {kind: len(stored.get(kind) or []) for kind in ("flows", "connections")}
    if not any(value for key, value in stored.items() if key != "account"):
        return demo_account_yaml(sandbox_url, DEMO_CLIENT_ID, variant=variant)
    held = ", ".join(
        f"{n} {kind if n != 1 else kind.removesuffix('s')}" for kind, n in counts.items()
    )
    say(
        f"keeping the account in {data_dir}: {held} (the demo account is imported only "
        "into an empty data dir); start with an empty --data-dir for a fresh demo"
    )
    await _repoint_demo_connection(client, sandbox_url, say)
    return None


async def _repoint_demo_connection(client: ApiClient, sandbox_url: str, say: Say) -> None:
    """The kept demo connection reaches the previous run's sandbox, gone with it: give it
    this run's URL, and its `${VAR}` secret again (a new URL without one would clear it).
    A connection the operator pointed elsewhere (not this sandbox's client id, or not a
    loopback URL) is left alone."""
    try:
        connection = await client.call("GET", f"/connections/{CONNECTION_ID}")
    except RequestRefused as error:
        if error.status == 404:
            return
        raise RunError(f"reading connection {CONNECTION_ID!r} failed: {error}") from None
    except ApiError as error:
        raise RunError(f"reading connection {CONNECTION_ID!r} failed: {error}") from None
    old = str(connection.get("service_url") or "").rstrip("/")
    new = sandbox_url.rstrip("/")
    loopback = old.startswith(("http://127.0.0.1:", "http://localhost:"))
    if old == new or not loopback or connection.get("client_id") != DEMO_CLIENT_ID:
        return
    body = {
        key: value
        for key, value in connection.items()
        if not key.startswith("secret_") and key not in ("client_secret_ref", "version")
    }
    body["service_url"] = new
    token_url = str(connection.get("access_token_url") or "")
    if token_url.startswith(old):
        body["access_token_url"] = new + token_url[len(old) :]
    if connection.get("client_secret_ref") == SECRET_ENV:
        body["client_secret"] = f"${{{SECRET_ENV}}}"
    try:
        await client.call("PUT", f"/connections/{CONNECTION_ID}", body=body)
    except ApiError as error:
        raise RunError(f"pointing {CONNECTION_ID!r} at the sandbox failed: {error}") from None
    say(f"connection {CONNECTION_ID} now points at this run's sandbox ({new})")


async def push_traffic(
    client: ApiClient,
    rate: float,
    seed: int | None,
    stop: asyncio.Event,
    say: Say,
    *,
    chunk_s: float = DEMO_CHUNK_S,
) -> None:
    """The simulator's traffic, ten minutes generated at a time, posted to the ingest API as it
    falls due until `stop`; an API error waits 2 s and goes on with the rest of the chunk from
    the batch that failed (the run outlives a restart of control: starting the chunk over would
    post only changes already accepted for as long as it had run, up to ten minutes)."""
    if seed is None:
        seed = random.SystemRandom().randrange(1, 10**9)
    say(f"simulator: {rate:g} changes/s, seed {seed}")
    rounds = 0
    items: Sequence[SimChange] = ()
    posted = [0]  # items of `items` posted so far (send_paced's running total)

    def progress(total: IngestResult) -> None:
        posted[0] = total.sent

    while not stop.is_set():
        if not items:
            items = await asyncio.to_thread(
                generate, seed + rounds, rate, chunk_s, datetime.now(UTC)
            )
            rounds += 1
        posted[0] = 0
        try:
            await send_paced(items, client, stop=stop, on_batch=progress)
        except ApiError as error:
            # The rest of the chunk, due from now on: its offsets count from the chunk's start.
            rest = items[posted[0] :]
            items = [replace(item, offset=item.offset - rest[0].offset) for item in rest]
            say(f"simulator: {error}; retrying in 2s")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await stop.wait()
            continue
        items = ()
