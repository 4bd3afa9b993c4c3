"""The account configuration as YAML: load (resolving `${VAR}` secrets) and export.

Secrets come from the environment, never from a file Signal writes: `client_secret: ${VAR}` (a
Certain source's `password: ${VAR}`) is resolved at load and the variable's *name* is kept in
`client_secret_ref` (`password_ref`), so an export writes `${VAR}` back. A literal secret in an
imported file is used, but never exported or shown again.

Export writes the shape of `examples/account.yaml`: keys in model order, defaults left out (except
the few an operator reads first: a flow's mode and active flag, a connection's target), short
records on one line.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.input_limits import (
    BoundedSafeLoader,
    InputLimitError,
    check_data,
    check_size,
    prescan_yaml,
)
from config.load_problems import check_raw
from config.models import Account
from config.problems import Problem
from config.secret_refs import DEFAULT_ALLOWLIST, EnvAllowList, url_hosts

ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
"""A whole value of the form `${VAR}`; anything else is taken literally."""

HEADER = (
    "# Signal account configuration (csignal config export).\n"
    "# Secrets are never exported: give them as ${ENV_VAR} references.\n"
)

_SECRETS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("connections", "client_secret", "client_secret_ref", ("access_token_url", "service_url")),
    ("certain_sources", "password", "password_ref", ("host",)),
)
"""Secrets a configuration holds: section, secret key, the key keeping its `${VAR}` name, and
the keys of the URLs the secret is sent to (what an allow-list entry's host pattern checks)."""

_ALWAYS_WRITTEN: dict[str, tuple[str, ...]] = {
    "flows": ("mode", "active"),
    "connections": ("target",),
}


class YamlSyntaxError(ValueError):
    """The text is not YAML; carries the 1-based line and column of the mistake."""

    def __init__(self, problem: str, line: int | None, column: int | None) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"{where}{problem}")


class ConfigError(ValueError):
    """The configuration does not load; `problems` lists every reason with its path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Loaded:
    """What a configuration text amounts to: the account when it loads, and every problem."""

    account: Account | None
    problems: list[Problem] = field(default_factory=list)
    literal_secrets: list[str] = field(default_factory=list)
    """Paths of secrets given literally: usable now, but lost on export."""

    @property
    def ok(self) -> bool:
        return self.account is not None and not self.problems


# --- load --------------------------------------------------------------------------------------


class _StrictLoader(BoundedSafeLoader):
    """Safe loading that refuses a repeated key, which YAML would otherwise let win silently,
    and anchors, aliases and oversized documents (`config.input_limits`)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                first = seen[key].start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.line + 1}, "
                    f"column {first.column + 1})",
                    key_node.start_mark,
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = key_node
        return super().construct_mapping(node, deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A scalar PyYAML cannot convert (`2026-13-45`, `!!int x`) is a syntax error at its
        position, not a `ValueError` escaping as a server error."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as error:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {_brief_value(node)}: {error}", node.start_mark
            ) from None


def _brief_value(node: yaml.Node) -> str:
    value = node.value if isinstance(node, yaml.ScalarNode) else node.tag
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_yaml(text: str) -> object:
    """The YAML document in `text`, within `config.input_limits`' bounds; `YamlSyntaxError`
    when it is not YAML or breaks a bound."""
    try:
        check_size(text)
        prescan_yaml(text)
        data = yaml.load(text, Loader=_StrictLoader)
        check_data(data)
        return data
    except InputLimitError as error:
        raise YamlSyntaxError(str(error), None, None) from None
    except RecursionError:
        raise YamlSyntaxError("nested too deeply", None, None) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        if error.problem and error.context:
            started = error.context_mark
            at = (
                f" started at line {started.line + 1}, column {started.column + 1}"
                if started
                else ""
            )
            problem += f" ({error.context}{at})"
        if mark is None:
            raise YamlSyntaxError(problem, None, None) from None
        raise YamlSyntaxError(problem, mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(str(error), None, None) from None


def resolve_secrets(
    raw: object,
    env: Mapping[str, str] | None = None,
    *,
    require: bool = True,
    allow: EnvAllowList = DEFAULT_ALLOWLIST,
) -> tuple[object, list[Problem], list[str]]:
    """Replace `${VAR}` secrets by their values, remembering the variable name.

    Returns the resolved copy, the problems (an unset variable, when `require`; a name outside
    `allow`, or bound by it to hosts the connection's URLs are not on, always), and the paths of
    secrets given literally. With `require=False` an unset
    variable leaves the secret empty but keeps its reference, so the configuration still loads
    and exports unchanged. A name outside `allow` is never looked up.
    """
    environment = os.environ if env is None else env
    if not isinstance(raw, Mapping) or not any(
        isinstance(raw.get(section), list) for section, *_ in _SECRETS
    ):
        return raw, [], []
    resolved = deepcopy(dict(raw))
    problems: list[Problem] = []
    literal: list[str] = []
    for section, key, ref_key, url_keys in _SECRETS:
        items = resolved.get(section)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            path = f"{section}[{index}].{key}"
            secret = item.get(key)
            name: str | None = None
            if isinstance(secret, str) and (match := ENV_REFERENCE.match(secret)):
                name = match.group(1)
            elif secret is None and isinstance(item.get(ref_key), str):
                name = item[ref_key]
            elif isinstance(secret, str) and "${" not in secret:
                literal.append(path)
            if name is None:
                continue
            item[ref_key] = name
            # Where the value would go: a connection's identity URL (explicit, or on the service
            # URL's host) and service URL; a Certain source's host.
            hosts = url_hosts(*(item.get(url_key) for url_key in url_keys))
            if not allow.allows_for(name, hosts):
                item.pop(key, None)
                problems.append(Problem(path, allow.refusal_for(name, hosts)))
                continue
            value = environment.get(name)
            if value:
                item[key] = value
            else:
                item.pop(key, None)
                if require:
                    problems.append(
                        Problem(path, f"environment variable {name} is not set (from ${{{name}}})")
                    )
    return resolved, problems, literal


def load_text(
    text: str,
    env: Mapping[str, str] | None = None,
    *,
    require_env: bool = True,
    allow: EnvAllowList = DEFAULT_ALLOWLIST,
) -> Loaded:
    """Parse, resolve secrets, load and validate; never raises for a bad configuration
    except `YamlSyntaxError` when the text is not YAML at all."""
    return load_raw(parse_yaml(text), env, require_env=require_env, allow=allow)


def load_raw(
    raw: object,
    env: Mapping[str, str] | None = None,
    *,
    require_env: bool = True,
    allow: EnvAllowList = DEFAULT_ALLOWLIST,
) -> Loaded:
    resolved, problems, literal = resolve_secrets(raw, env, require=require_env, allow=allow)
    account, found = check_raw(resolved)
    return Loaded(account, [*problems, *found], literal)


def load_account(
    text: str, env: Mapping[str, str] | None = None, *, require_env: bool = True
) -> Account:
    """The account in `text`; `ConfigError` listing every problem when it is not valid."""
    loaded = load_text(text, env, require_env=require_env)
    if loaded.account is None or loaded.problems:
        raise ConfigError(loaded.problems)
    return loaded.account


def read_account(
    path: Path, env: Mapping[str, str] | None = None, *, require_env: bool = True
) -> Account:
    return load_account(path.read_text(encoding="utf-8"), env, require_env=require_env)


# --- export ------------------------------------------------------------------------------------


def export_data(account: Account) -> dict[str, Any]:
    """The plain data an export writes: no secret values, `${VAR}` for referenced secrets."""
    data = account.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("account", account.account)
    for section, keys in _ALWAYS_WRITTEN.items():
        items = getattr(account, section)
        data[section] = [
            _with_keys(item.model_dump(mode="json", exclude_defaults=True), item, keys)
            for item in items
        ]
        if not data[section]:
            del data[section]
    for section, key, ref_key, _urls in _SECRETS:
        for item in data.get(section, []):
            _secret_as_reference(item, key, ref_key)
    return data


def _with_keys(dumped: dict[str, Any], model: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """`dumped` in model field order, with `keys` present even when they hold the default."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        if name in dumped:
            out[name] = dumped[name]
        elif name in keys:
            out[name] = model.model_dump(mode="json", include={name})[name]
    return out


def _secret_as_reference(item: dict[str, Any], secret_key: str, ref_key: str) -> None:
    item.pop(secret_key, None)
    ref = item.get(ref_key)
    if ref is None:
        return
    ordered = {}
    for key, value in item.items():
        if key == ref_key:
            ordered[secret_key] = f"${{{ref}}}"
        else:
            ordered[key] = value
    item.clear()
    item.update(ordered)


class _ExportDumper(yaml.SafeDumper):
    """Block style for sections, one-line flow style for short records and scalar lists; no
    anchors or aliases, which imports refuse."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_FLOW_WIDTH = 110


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _short(value: object) -> bool:
    if _is_scalar(value):
        return True
    if isinstance(value, list):
        return all(_is_scalar(v) for v in value)
    return False


def _flow_length(value: object) -> int:
    """About how long `value` is written on one line in flow style."""
    if isinstance(value, dict):
        return 2 + sum(len(str(k)) + 4 + _flow_length(v) for k, v in value.items())
    if isinstance(value, list):
        return 2 + sum(_flow_length(v) + 2 for v in value)
    return len(str(value))


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = all(_short(v) for v in data.values()) and _flow_length(data) <= _FLOW_WIDTH
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(_is_scalar(v) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_LINE_BREAKS = frozenset("\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    """Double-quote strings holding Unicode line breaks: PyYAML's single-quoted style folds a
    NEL (U+0085) into a space, so the value would not survive a round trip."""
    style = '"' if _LINE_BREAKS.intersection(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_ExportDumper.add_representer(str, _represent_str)
_ExportDumper.add_representer(dict, _represent_dict)
_ExportDumper.add_representer(list, _represent_list)


def dump_account(account: Account) -> str:
    """The account as YAML, the shape of `examples/account.yaml`, secrets omitted."""
    body = yaml.dump(
        export_data(account),
        Dumper=_ExportDumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return HEADER + body


def write_account(account: Account, path: Path) -> None:
    """Write the export form atomically: a reader never sees half a configuration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dump_account(account)
    fd, tmp = tempfile.mkstemp(prefix=".account-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
