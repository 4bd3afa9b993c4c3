"""The refusals of configuration changes, each with the HTTP status the operator API answers.

A module of their own because both the service and the secret rules it applies
(`stream.control.config_secrets`) raise them, and the API's middleware only needs these.
"""

from __future__ import annotations

from collections.abc import Sequence

from config.validation import Problem

__all__ = ["ConfigServiceError", "ConflictError", "InvalidConfigError", "NotFoundError"]


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
