"""Calling control from a screen, written once: a worker runs the calls, and a call that fails
is told to the operator the same way on every screen.

A worker is an `api_worker` method (one exclusive worker per group, as `@work` makes, never
fatal to the app); inside it each call goes through `call_api(what, call)`, which returns the
call's answer. When the call fails with an `ApiError` — control not reachable, a token refused,
a request turned down (a 409 among them) — the screen gets `ApiFailed(what, error.message)`,
which its handler shows ("Could not <what>") and turns into the screen's state (stale, a red
line under a form…), and the worker stops there quietly: what follows the call in the worker
runs only with an answer. `failed` gives a call its own message for an error instead (or
None: the worker stops and nothing is posted, the hook having shown the error itself).

Exceptions that are not `ApiError`s are defects: they end the worker in error and reach the
app's handler (`SignalConsole.worker_state`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

from textual import work
from textual.app import App
from textual.message import Message
from textual.worker import Worker

from apiclient.errors import ApiError
from console.host import ConsoleHost, host
from console.messages import ApiFailed

P = ParamSpec("P")
T = TypeVar("T")
Failed = Callable[[ApiError], Message | None]
"""What to post for a failed call instead of `ApiFailed(what, error.message)` (None: nothing)."""


class CallFailed(Exception):
    """A call failed and the operator has been told: ends its `api_worker` quietly."""

    def __init__(self, what: str, error: ApiError) -> None:
        super().__init__(f"could not {what}: {error.message} (raised outside an api_worker)")
        self.what = what
        self.error = error


class _Node(Protocol):
    """What `ApiCalls` needs of the screen it is mixed into."""

    @property
    def app(self) -> App[object]: ...

    def post_message(self, message: Message) -> bool: ...


class ApiCalls:
    """Mixed into a screen: the console host, and `call_api` for the screen's workers."""

    @property
    def console(self: _Node) -> ConsoleHost:
        return host(self.app)

    async def call_api(
        self: _Node, what: str, call: Awaitable[T], *, failed: Failed | None = None
    ) -> T:
        """The answer of `call`; when it fails, the screen is told (`ApiFailed(what, …)` or
        what `failed` gives) and `CallFailed` ends the worker."""
        try:
            return await call
        except ApiError as error:
            message = failed(error) if failed is not None else ApiFailed(what, error.message)
            if message is not None:
                self.post_message(message)
            raise CallFailed(what, error) from error


def api_worker(
    group: str, *, exclusive: bool = True
) -> Callable[[Callable[P, Coroutine[Any, Any, None]]], Callable[P, Worker[None]]]:
    """Make a screen method a worker of `group` (exclusive unless told otherwise: a newer one
    cancels the one under way) that ends quietly when a `call_api` inside it failed."""

    def decorate(method: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, Worker[None]]:
        @functools.wraps(method)
        async def quiet(*args: P.args, **kwargs: P.kwargs) -> None:
            with contextlib.suppress(CallFailed):
                await method(*args, **kwargs)

        return work(exclusive=exclusive, group=group, exit_on_error=False)(quiet)

    return decorate
