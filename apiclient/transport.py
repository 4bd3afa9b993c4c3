"""How `ApiClient` talks to control: the HTTP session, the token, the actor, time limits, and
the translation of every failure into an `ApiError` whose text says what to do.

Apart from the routes (`apiclient.client`) because this part is the same for all of them and has
its own rules: the token is read only when a call needs it (and a missing one is reported as
control not running when nothing answers), a 401 names where the token came from, and a call
that hangs is reported after its limit instead of waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp

from apiclient import access
from apiclient.errors import (
    ApiError,
    ControlTimeout,
    ControlUnreachable,
    TokenMissing,
    TokenRefused,
    refusal,
)
from config.settings import Settings

__all__ = [
    "API_PREFIX",
    "CLI_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "CONSOLE_TIMEOUT_S",
    "Transport",
]

API_PREFIX = "/api/v1"
CLI_TIMEOUT_S = 60.0
CONSOLE_TIMEOUT_S = 10.0
"""The console keeps refreshing: a call that hangs longer is reported, not waited for."""
CONNECT_TIMEOUT_S = 3.0


class Transport:
    """One HTTP session to control's operator API, with its token and actor."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        actor: str | None = None,
        read_only: bool = False,
        token_hint: str | None = None,
        settings: Settings | None = None,
        timeout: float = CLI_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        """`token` None reads it (apiclient.access) at the first call that needs it; `actor`
        None is the CLI's (`$SIGNAL_ACTOR`, else the login name)."""
        self._settings = settings
        self.base_url = access.api_base_url(base_url, settings)
        self._token = token
        self._read_only = read_only
        self._actor = actor or access.cli_actor()
        self._token_hint = token_hint or (
            "$SIGNAL_DATA_DIR/api-token-read-only" if read_only else "$SIGNAL_DATA_DIR/api-token"
        )
        """Where the token came from, for the message when it is refused."""
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def actor(self) -> str:
        """What the audit trail records for this client's changes."""
        return self._actor

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _auth(self) -> dict[str, str]:
        token = self._token or access.read_token(self._settings, read_only=self._read_only)
        if token is None:
            raise TokenMissing(
                access.token_file(self._settings, read_only=self._read_only),
                access.token_env(read_only=self._read_only),
            )
        self._token = token
        return {"Authorization": f"Bearer {token}"}

    # -- plumbing -------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        auth: bool = True,
        accept: str = "application/json",
        ok_statuses: Iterable[int] = (),
        timeout_s: float | None = None,
        if_match: int | None = None,
    ) -> tuple[int, Any]:
        """One call; `(status, body)` for a success or a status in `ok_statuses`. The body is
        parsed JSON when control sent JSON, else its text."""
        headers = {"Accept": accept, "X-Signal-Actor": self._actor}
        if auth:
            try:
                headers.update(self._auth())
            except TokenMissing:
                await self.healthz()  # control not running is the likelier, clearer story
                raise
        if content_type is not None:
            headers["Content-Type"] = content_type
        if if_match is not None:
            headers["If-Match"] = str(if_match)
        limit = max(self._timeout, timeout_s or 0.0)
        timeout = aiohttp.ClientTimeout(total=limit, sock_connect=self._connect_timeout)
        try:
            async with self._http().request(
                method,
                self.base_url + path,
                json=json_body,
                data=data,
                headers=headers,
                timeout=timeout,
            ) as response:
                raw = await response.read()
                status = response.status
                is_json = "json" in (response.content_type or "")
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ServerDisconnectedError,
            aiohttp.ConnectionTimeoutError,
        ) as error:
            raise ControlUnreachable(self.base_url, str(error)) from None
        except TimeoutError:
            raise ControlTimeout(self.base_url, limit) from None
        except aiohttp.ClientError as error:
            raise ControlUnreachable(self.base_url, str(error) or type(error).__name__) from None
        body: Any = raw.decode("utf-8", "replace")
        if is_json:
            with contextlib.suppress(ValueError):
                body = json.loads(raw) if raw else None
        if status == 401:
            raise TokenRefused(self._token_hint)
        if status >= 400 and status not in set(ok_statuses):
            raise refusal(method, path, status, body)
        return status, body

    async def _api(
        self,
        method: str,
        route: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        if_match: int | None = None,
    ) -> Any:
        """A JSON call to `/api/v1{route}`; empty query values are left out."""
        params = {k: str(v) for k, v in (query or {}).items() if v is not None and v != ""}
        path = f"{API_PREFIX}{route}" + (f"?{urlencode(params)}" if params else "")
        _status, reply = await self._request(
            method, path, json_body=body, timeout_s=timeout_s, if_match=if_match
        )
        return reply

    async def _object(self, method: str, route: str, **kw: Any) -> dict[str, Any]:
        """A call whose answer must be a JSON object."""
        reply = await self._api(method, route, **kw)
        if not isinstance(reply, dict):
            raise ApiError(f"unexpected answer to {method} {route}: {str(reply)[:200]}")
        return reply

    async def call(
        self, method: str, route: str, *, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> Any:
        """Any route under `/api/v1` (e.g. `/connections/x`), for a one-off use."""
        return await self._api(method, route, body=body, query=query)

    # -- health ---------------------------------------------------------------------------------

    async def healthz(self) -> dict[str, Any]:
        """Control's health; answered without a token, also while not ready (503)."""
        _status, body = await self._request("GET", "/healthz", auth=False, ok_statuses=(503,))
        return body if isinstance(body, dict) else {"status": body}

    async def wait_ready(self, within: float = 30.0, interval: float = 0.2) -> dict[str, Any]:
        """Poll /healthz until control says it is ready (`ok`); the last error when it never
        does (`ControlUnreachable` when nothing listened)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            try:
                health = await self.healthz()
                if health.get("ok", True) is not False:
                    return health
                if loop.time() >= deadline:
                    raise ApiError(f"control at {self.base_url} is not ready: {health}")
            except ApiError:
                if loop.time() >= deadline:
                    raise
            await asyncio.sleep(interval)
