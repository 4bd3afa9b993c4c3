"""The operator-API calls behind `csignal retry`, `replay`, `flows` and `metrics`.

A thin extension of `stream.apiclient.ApiClient` (same address, token and error types), so these
commands fail the same way as the others: one line on stderr naming what went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TextIO
from urllib.parse import quote, urlencode

from stream.apiclient import API_PREFIX, ApiClient, ApiError

FAILED = 1
ACTOR_ENV = "SIGNAL_ACTOR"


def actor() -> str:
    """Who is acting, for the audit trail: `$SIGNAL_ACTOR`, else the login name."""
    name = os.environ.get(ACTOR_ENV) or os.environ.get("USER") or os.environ.get("LOGNAME")
    return (name or "cli").strip()[:100] or "cli"


class OpsClient(ApiClient):
    async def call(
        self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> Any:
        params = {k: str(v) for k, v in (query or {}).items() if v is not None and v != ""}
        url = f"{API_PREFIX}{path}" + (f"?{urlencode(params)}" if params else "")
        _status, reply = await self._request(method, url, json_body=body)
        return reply

    def _auth(self) -> dict[str, str]:
        return {**super()._auth(), "X-Signal-Actor": actor()}

    async def retry_list(self, filters: Mapping[str, Any], offset: int, limit: int) -> Any:
        return await self.call(
            "GET", "/retry-queue", query={**filters, "offset": offset, "limit": limit}
        )

    async def retry_submit(self, body: Mapping[str, Any]) -> Any:
        return await self.call("POST", "/retry-queue/submit", body=dict(body))

    async def replay_start(self, body: Mapping[str, Any]) -> Any:
        return await self.call("POST", "/replays", body=dict(body))

    async def replay_get(self, replay_id: str) -> Any:
        return await self.call("GET", f"/replays/{quote(replay_id, safe='')}")

    async def replay_cancel(self, replay_id: str) -> Any:
        return await self.call("DELETE", f"/replays/{quote(replay_id, safe='')}")

    async def metrics(self, kind: str, mode: str, period: str) -> Any:
        return await self.call("GET", f"/metrics/{kind}", query={"mode": mode, "period": period})


def run_ops(
    command: str,
    args: argparse.Namespace,
    work: Callable[[OpsClient], Awaitable[int]],
    err: TextIO | None = None,
) -> int:
    """Run `work` with a client; an `ApiError` becomes one line on stderr and exit code 1."""
    stream = err or sys.stderr

    async def main() -> int:
        client = OpsClient(getattr(args, "api", None))
        try:
            return await work(client)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except ApiError as error:
        print(f"csignal {command}: {error}", file=stream)
        return FAILED
    except KeyboardInterrupt:
        print(f"csignal {command}: interrupted", file=stream)
        return 130


class Writer(Protocol):
    def write(self, text: str, /) -> int: ...


def table(columns: list[str], rows: list[list[Any]], out: Writer, max_cell: int = 60) -> None:
    """An aligned plain-text table."""
    cells = [[_cell(v, max_cell) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _cell(value: Any, max_cell: int) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= max_cell else text[: max_cell - 1] + "…"
