"""Error answers: always JSON `{"errors": [{"path": …, "message": …}]}`.

`path` uses the configuration's own notation (`flows[1].destination.mapping`, or a field of the
request body); an empty path means the request as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from config.load_problems import problems_from
from config.problems import Problem


def error_body(problems: Iterable[Problem], **extra: Any) -> dict[str, Any]:
    return {"errors": [{"path": p.path, "message": p.message} for p in problems], **extra}


def json_error(status: int, message: str, path: str = "", **extra: Any) -> web.Response:
    return web.json_response(error_body([Problem(path, message)], **extra), status=status)


def problems_response(status: int, problems: Iterable[Problem], **extra: Any) -> web.Response:
    return web.json_response(error_body(problems, **extra), status=status)


def validation_response(error: ValidationError, prefix: str = "") -> web.Response:
    problems = [
        Problem(f"{prefix}.{p.path}" if prefix and p.path else prefix or p.path, p.message)
        for p in problems_from(error)
    ]
    return problems_response(422, problems)


def if_match_version(request: web.Request) -> int | None:
    """The version an editor read (`If-Match: 3` or `If-Match: "3"`), or None to overwrite."""
    value = request.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise web.HTTPBadRequest(
            text=json.dumps(
                error_body([Problem("If-Match", f"expected a version number, got {value!r}")])
            ),
            content_type="application/json",
        )
    return int(text)
