"""The refusals of configuration changes, each with the HTTP status the operator API answers.

A module of their own because both the service and the secret rules it applies
(`stream.control.config_secrets`) raise them, and the API's middleware only needs these.
"""

from __future__ import annotations

from collections.abc import Sequence

from config.validation import Problem

__all__ = [
    "ConfigServiceError",
    "ConflictError",
    "InvalidConfigError",
    "NotFoundError",
    "check_write",
]


class ConfigServiceError(Exception):
    """Base of the refusals the operator API turns into 4xx answers."""

    status = 400

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems) or [Problem("", message)]


class NotFoundError(ConfigServiceError):
    status = 404


class ConflictError(ConfigServiceError):
    status = 409


class InvalidConfigError(ConfigServiceError):
    status = 422


def check_write(label: str, object_id: str, *, exists: bool, create: bool) -> None:
    """A create refuses an id in use (409), a replace one that is not there (404): the same rule
    for every object an operator creates or replaces by id."""
    if create and exists:
        raise ConflictError(
            f"{label} {object_id!r} already exists", [Problem("id", "already exists")]
        )
    if not create and not exists:
        raise NotFoundError(f"no {label} {object_id!r}")
