"""Account-level tag assignments, written: the whole set, or one item's tags.

Tagging a status is the fix for the most common data failure ("status 'X' in event E resolves
no tags"), so an operator edits assignments here rather than exporting and importing YAML. Each
write is validated with the whole account (an unknown tag, or one that does not apply to the
item's kind, is refused by its path and names the tag), audited with the actor as the
`assignments` object, bumps its version and reaches workers with the next snapshot.

`PUT /api/v1/tags/assignments` replaces them all (the `assignments` of `GET /api/v1/tags`);
`PATCH /api/v1/tags/assignments` with `{"kind", "label", "tags"}` sets one item's tags (an
empty list removes its assignment) and leaves the others alone. Both honour `If-Match: <version>`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from config.models import Account, Assignments
from config.validation import Problem
from stream.api.bodies import json_object
from stream.api.deps import deps_of
from stream.api.errors import (
    if_match_version,
    problems_response,
    validation_response,
)
from stream.api.middleware import actor_of

KINDS = tuple(Assignments.model_fields)
"""The item kinds assignments exist for: registration_statuses, session_registration_statuses,
event_statuses."""


def tags_json(account: Account, version: int | None) -> dict[str, Any]:
    """Tags with the items each is assigned to, the assignments and their version."""
    assignments = account.assignments.model_dump(mode="json")
    tags: list[dict[str, Any]] = []
    for tag in account.tags:
        assigned = {
            kind: sorted(label for label, names in items.items() if tag.name in names)
            for kind, items in assignments.items()
        }
        tags.append({**tag.model_dump(mode="json"), "assigned_to": assigned})
    return {"tags": tags, "assignments": assignments, "version": version}


async def put_assignments(request: web.Request) -> web.Response:
    deps = deps_of(request)
    body = await json_object(request)
    if isinstance(body.get("assignments"), dict):
        body = body["assignments"]  # the shape GET /api/v1/tags answers with
    try:
        assignments = Assignments.model_validate(body)
    except ValidationError as error:
        return validation_response(error, "assignments")
    await deps.config.save_assignments(
        assignments, actor_of(request), expected_version=if_match_version(request)
    )
    return web.json_response(tags_json(deps.config.account, deps.config.assignments_version))


def _item(body: dict[str, Any]) -> tuple[str, str, list[str], list[Problem]]:
    problems: list[Problem] = []
    kind = body.get("kind")
    if kind not in KINDS:
        problems.append(Problem("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}"))
    label = body.get("label")
    if not isinstance(label, str) or not label.strip():
        problems.append(Problem("label", f"expected the item's label (a string), got {label!r}"))
    tags = body.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        problems.append(
            Problem("tags", f"expected a list of tag names (may be empty), got {tags!r}")
        )
    if problems:
        return "", "", [], problems
    assert isinstance(kind, str) and isinstance(label, str) and isinstance(tags, list)
    return kind, label.strip(), [t.strip() for t in tags], []


async def patch_assignment(request: web.Request) -> web.Response:
    deps = deps_of(request)
    kind, label, names, problems = _item(await json_object(request))
    if problems:
        return problems_response(422, problems)
    known = {t.name for t in deps.config.account.tags}
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        return problems_response(
            422,
            [
                Problem(f"tags[{names.index(n)}]", f"unknown tag {n!r} (tags: {listed})")
                for n in unknown
            ],
        )
    await deps.config.assign_tags(
        kind, label, names, actor_of(request), expected_version=if_match_version(request)
    )
    return web.json_response(tags_json(deps.config.account, deps.config.assignments_version))


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/tags/assignments", put_assignments)
    app.router.add_patch("/api/v1/tags/assignments", patch_assignment)
