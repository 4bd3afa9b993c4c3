"""A whole account imported from a YAML (or JSON) document: reading it, and what to tell the
operator afterwards.

Apart from `ConfigService` because both ends are pure: reading the document (parsing bounded by
`config.input_limits`, every problem named by its path) runs on a thread before the service's
lock is taken, and the report is built from the stored forms before and after.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from config.input_limits import parse_json
from config.models import Connection
from config.secret_refs import EnvAllowList
from config.validation import Problem
from config.yamlio import Loaded, YamlSyntaxError, load_raw, load_text

from .config_errors import InvalidConfigError
from .config_rows import Bodies, changed_keys

__all__ = ["ImportResult", "import_result", "read_document"]


@dataclass
class ImportResult:
    account: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_document(
    text: str, json_body: bool, env: Mapping[str, str], allowlist: EnvAllowList
) -> Loaded:
    """The account in a YAML (or JSON) document, validated (blocking: parsing is bounded
    by `config.input_limits`, but may still take a second or two).

    Raises `InvalidConfigError` with every problem by path.
    """
    try:
        if json_body:
            try:
                raw = parse_json(text)
            except ValueError as error:
                raise InvalidConfigError(
                    f"not JSON: {error}", [Problem("", f"not JSON: {error}")]
                ) from None
            loaded = load_raw(raw, env, require_env=False, allow=allowlist)
        else:
            loaded = load_text(text, env, require_env=False, allow=allowlist)
    except YamlSyntaxError as error:
        where = f"line {error.line}, column {error.column}" if error.line else ""
        raise InvalidConfigError(
            f"YAML syntax error: {error}",
            [Problem(where, f"YAML syntax error: {error.problem}")],
        ) from None
    if loaded.account is None or loaded.problems:
        raise InvalidConfigError("the configuration has problems", loaded.problems)
    return loaded


def import_result(
    account: str,
    before: Bodies,
    after: Bodies,
    *,
    literal: Iterable[str],
    notices: Sequence[str],
    connections: Sequence[Connection],
    cleared: Mapping[str, str],
) -> ImportResult:
    """What an import changed and what the operator should know: literal secrets kept by
    control, secrets cleared, connections left without a secret (`connections` as stored)."""
    result = ImportResult(account)
    result.created, result.updated, result.deleted = changed_keys(before, after)
    result.warnings = [
        f"{path}: literal secret; kept by control, never exported" for path in literal
    ]
    result.warnings += notices
    for index, connection in enumerate(connections):
        if connection.client_secret is None and connection.id not in cleared:
            ref = connection.client_secret_ref
            why = f" (environment variable {ref} is not set)" if ref else ""
            result.warnings.append(f"connections[{index}]: no client secret{why}")
    return result
