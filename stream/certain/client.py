"""The Certain source's HTTP edge: the few REST calls a poll makes, within a request budget.

Reference/certain-data.md §3: `https://{host}/certainExternal/service/v1/{Object}/{acct}[/{evt}]`
with HTTP Basic auth, collections in `{"size", "completeCollectionSize", "maxResults", <plural>}`
paged with `max_results` + `start_index` (a 0-based record offset, as the sandbox takes it:
whether Certain counts records or pages is unconfirmed), filtered with `dateModified_after`
and sorted with `orderBy=dateModified_asc`. A 404 on a filtered list means "no match": an empty
page, not an error.

Failures are sorted by what the poller should do about them: `CertainUnauthorized` (401/403:
the credentials or the account are wrong, retrying cannot help), `CertainUnavailable` (5xx, 429,
timeouts, refused connections: back off and try again) and `CertainRefused` (another 4xx, or an
answer that is not the JSON expected: also backed off, and reported). The password is sent and
never logged or put in a message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from config.models import CertainSource
from stream.certain.poll_diff import format_timestamp
from stream.server_answers import echo_forms, read_capped, scrub

PAGE_SIZE = 500
MAX_LIST_PAGES = 200
"""Pages of a whole list read at once (events, an event's sessions): 100,000 items. A host that
always serves another full page is refused there rather than read into memory for ever."""
"""Records per page: big enough that a mass change of thousands costs a few calls."""
REQUEST_TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class CertainError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CertainUnauthorized(CertainError):
    """401 or 403: wrong credentials, or a user without access to the account."""


class CertainUnavailable(CertainError):
    """5xx, 429, a timeout or no connection: worth trying again later."""


class CertainRefused(CertainError):
    """Another 4xx, or an answer that is not the collection expected."""


@dataclass(frozen=True, slots=True)
class Page:
    records: list[Any]
    total: int | None


class RequestBudget:
    """At most `per_minute` requests in any minute, spread out: a token bucket holding a
    minute's worth, refilled continuously. `acquire` waits for a token."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.per_minute = per_minute
        self._clock = clock
        self._tokens = float(per_minute)
        self._at = clock()
        self.waited_s = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(
            float(self.per_minute), self._tokens + (now - self._at) * self.per_minute / 60
        )
        self._at = now

    async def acquire(self) -> None:
        while True:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return
            wait = (1 - self._tokens) * 60 / self.per_minute
            self.waited_s += wait
            await asyncio.sleep(wait)


class CertainClient:
    """One source's calls; `requests` counts the calls made (poll cost)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        source: CertainSource,
        budget: RequestBudget,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        if source.password is None:
            raise CertainUnauthorized(f"Certain source {source.id!r} has no password")
        self._session = session
        self._source = source
        password = source.password.get_secret_value()
        self._authorization = aiohttp.encode_basic_auth(source.username, password)
        self._echoes = echo_forms(password, basic=(source.username, password))
        self._budget = budget
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.requests = 0

    async def registrations(
        self, event_code: str, after: datetime, start_index: int, max_results: int = PAGE_SIZE
    ) -> Page:
        """Registrations of one event modified after `after`, oldest first, one page."""
        params = {
            "dateModified_after": format_timestamp(after),
            "orderBy": "dateModified_asc",
            "max_results": str(max_results),
            "start_index": str(start_index),
            "includeList": "registration_questions,reg_properties",
        }
        return await self._page(f"Registration/{self._source.account_code}/{event_code}", params)

    async def session_registrations(
        self, event_code: str, after: datetime, start_index: int, max_results: int = PAGE_SIZE
    ) -> Page:
        """Session registrations (`registrationAgendas`) of one event modified after `after`,
        oldest first, one page."""
        params = {
            "dateModified_after": format_timestamp(after),
            "orderBy": "dateModified_asc",
            "max_results": str(max_results),
            "start_index": str(start_index),
        }
        path = f"RegistrationAgenda/{self._source.account_code}/{event_code}"
        return await self._page(path, params, plural="registrationAgendas")

    async def sessions(
        self, event_code: str, start_index: int, max_results: int = PAGE_SIZE
    ) -> Page:
        """The event's sessions (names, tracks, instances), one page, from the API 2.0 family
        (reference §2.8): API v1 names a session registration's session by code only."""
        params = {"max_results": str(max_results), "start_index": str(start_index)}
        path = f"accounts/{self._source.account_code}/events/{event_code}/sessions"
        url = f"{str(self._source.host).rstrip('/')}/api/standard/2.0/{path}"
        return await self._page(path, params, plural="sessions", url=url)

    async def registration(self, event_code: str, code: str) -> Any:
        """One registration; None when Certain has no such registration."""
        params = {"includeList": "registration_questions,reg_properties"}
        path = f"Registration/{self._source.account_code}/{event_code}/{quote(code, safe='')}"
        return await self._get(path, params)

    async def events(self, start_index: int, max_results: int = PAGE_SIZE) -> Page:
        """The account's events (with their tags), one page."""
        params = {
            "orderBy": "dateModified_asc",
            "max_results": str(max_results),
            "start_index": str(start_index),
            "includeList": "tags",
        }
        return await self._page(f"Event/{self._source.account_code}", params, plural="events")

    async def event(self, event_code: str) -> Any:
        """One event with its questions and setup; None when Certain has no such event."""
        return await self._get(f"Event/{self._source.account_code}/{event_code}", {})

    async def _page(
        self, path: str, params: Mapping[str, str], plural: str = "", url: str = ""
    ) -> Page:
        body = await self._get(path, params, url)
        if body is None:
            return Page([], 0)
        key = plural or "registrations"
        records = body.get(key) if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise CertainRefused(f"{path}: expected a collection with '{key}', got {_kind(body)}")
        asked = params.get("max_results", "")
        if asked.isdigit() and len(records) > int(asked):
            # More than was asked for: a misbehaving host (300,000 tiny items in 2 MB took 22 s
            # of the loop and as many rejected rows); Certain never serves more.
            raise CertainRefused(
                f"{path}: {len(records):,} records on a page of at most {asked} asked for"
            )
        total = body.get("completeCollectionSize")
        return Page(records, total if isinstance(total, int) else None)

    async def _get(self, path: str, params: Mapping[str, str], url: str = "") -> Any:
        """GET `path` under the v1 base (or `url`, which `path` then only names in messages)."""
        await self._budget.acquire()
        self.requests += 1
        url = url or f"{self._source.base_url}/{path}"
        headers = {"Accept": "application/json", "Authorization": self._authorization}
        try:
            async with self._session.get(
                url, params=params, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status
                raw = scrub(await read_capped(response, MAX_ANSWER_BYTES), self._echoes)
        except TimeoutError:
            raise CertainUnavailable(f"{path}: no answer within {self._timeout.total} s") from None
        except aiohttp.ClientError as error:
            raise CertainUnavailable(f"{path}: {type(error).__name__}: {error}") from None
        if status == 404:
            return None
        text = raw[:300].decode("utf-8", "replace")
        if status in (401, 403):
            raise CertainUnauthorized(f"{path}: {status} {_message(text)}", status)
        if status == 429 or status >= 500:
            raise CertainUnavailable(f"{path}: {status} {_message(text)}", status)
        if status != 200:
            raise CertainRefused(f"{path}: {status} {_message(text)}", status)
        if len(raw) > MAX_ANSWER_BYTES:
            raise CertainRefused(f"{path}: answer over {MAX_ANSWER_BYTES} bytes")
        try:
            return json.loads(raw)
        except ValueError:
            raise CertainRefused(f"{path}: the answer is not JSON: {text[:80]!r}") from None


async def whole_list(
    read_page: Callable[[int], Awaitable[Page]], where: str, items: str
) -> list[Any]:
    """Every record of a list Certain serves a page at a time from an offset (the events, an
    event's sessions): pages until a short one or the collection's size; past
    `MAX_LIST_PAGES` full pages the host is refused."""
    records: list[Any] = []
    for _ in range(MAX_LIST_PAGES):
        page = await read_page(len(records))
        records += page.records
        if len(page.records) < PAGE_SIZE or (page.total is not None and len(records) >= page.total):
            return records
    raise CertainRefused(
        f"{where}: more than {len(records):,} {items} listed ({MAX_LIST_PAGES} full pages); "
        "the host keeps serving pages"
    )


def _message(text: str) -> str:
    """Certain's readable message when the body carries one, else the start of the text."""
    try:
        body = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:120]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:200]
    return " ".join(text.split())[:120]


def _kind(value: Any) -> str:
    return type(value).__name__ if not isinstance(value, dict) else f"keys {sorted(value)[:5]}"
