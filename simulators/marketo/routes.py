"""What an endpoint handler receives (`Call`) and how endpoints are declared (`Route`).

Handlers are plain synchronous functions of a `Call` returning the response body, raising
`SandboxError` for response-level failures; the pipeline in `sandbox.py` does authentication,
limits, faults, latency, logging and the envelope around them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from simulators.marketo.wire import Params, SandboxError

if TYPE_CHECKING:
    from simulators.marketo.config import SandboxConfig
    from simulators.marketo.state import SandboxState


@dataclass
class Call:
    request: web.Request
    state: SandboxState
    config: SandboxConfig
    params: Params
    body: bytes
    match: dict[str, str]
    request_id: str
    now: float
    batch_size: int | None = None
    _json: Any = field(default=None, repr=False)

    def json(self) -> Any:
        """The JSON body: 612 without a JSON content type, 609 if it does not parse."""
        if self._json is None:
            ctype = self.request.headers.get("Content-Type", "").lower()
            if "json" not in ctype:
                raise SandboxError("612")
            try:
                self._json = json.loads(self.body.decode("utf-8") or "null")
            except (UnicodeDecodeError, ValueError):
                raise SandboxError("609") from None
            if self._json is None:
                raise SandboxError("609")
        return self._json

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise SandboxError("609")
        return data


Handler = Callable[[Call], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    asset: bool = False


def route(name: str, method: str, path: str, handler: Handler, asset: bool = False) -> Route:
    """`path` uses `{name}` placeholders for integer path segments."""
    regex = (
        "^"
        + re.sub(
            r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
        )
        + "$"
    )
    return Route(name, method, re.compile(regex), handler, asset)


def resolve(
    routes: list[Route], path: str, method: str
) -> tuple[Route | None, dict[str, str], bool]:
    """(route, path params, path known). A known path with the wrong method means 605."""
    known = False
    for r in routes:
        m = r.pattern.match(path)
        if m is None:
            continue
        known = True
        if r.method == method:
            return r, m.groupdict(), True
    return None, {}, known
