"""Is an account configuration valid? Every problem at once, each with its path (DESIGN 4.5).

Two layers. `config.load_problems` turns what pydantic rejects while loading (wrong types,
unknown keys, bad enum values) into problems with paths in the configuration's own terms, and
`check_raw` runs both layers in one go. `validate_account`, here, judges a loaded account:
references resolve, tags apply to the objects they are used for, source paths exist for the
flow's source, filter values fit their operator.

Validity is not completeness: a flow may be half-built and still valid (`config.completeness`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from pydantic import AnyHttpUrl

from config import source_paths
from config.models import (
    ACTIVATE_FOR_KINDS,
    CAMPAIGN_ACTIONS,
    Account,
    Action,
    AttendeeTypeFilter,
    CampaignRule,
    Connection,
    FieldFilter,
    FilterOp,
    Flow,
    ObjectKind,
    Source,
)
from config.problems import Problem, format_path, show_value
from config.program_rules import PROGRAM_SOURCES, status_kind

__all__ = [
    "ACTIVATE_FOR_BY_SOURCE",
    "EVENT_TAGS_PATH",
    "TOKEN_NAME",
    "Problem",
    "campaign_rule_is_empty",
    "filter_value_problem",
    "url_problem",
    "validate_account",
]


_KIND_WORDS = {
    ObjectKind.REGISTRATION_STATUS: "registration statuses",
    ObjectKind.CUSTOM_REGISTRATION_PROPERTY: "custom registration properties",
    ObjectKind.ATTENDEE_TYPE: "attendee types",
    ObjectKind.EVENT: "events",
    ObjectKind.REGISTRATION_QUESTION: "registration questions",
    ObjectKind.SESSION_REGISTRATION_STATUS: "session registration statuses",
    ObjectKind.EVENT_STATUS: "event statuses",
}

ACTIVATE_FOR_BY_SOURCE: dict[Source, tuple[str, ...]] = {
    Source.REGISTRATION_CREATE_UPDATE: (
        "registration_statuses",
        "custom_registration_properties",
        "standard_properties",
    ),
    Source.REGISTRATION_STATUS_CHANGE: ("registration_statuses",),
    Source.SESSION_REGISTRATION_STATUS_CHANGE: ("session_registration_statuses",),
    Source.EVENT_CREATE_UPDATE: ("event_statuses",),
}
"""The activate-for lists that can match a change of each source (DESIGN 5, "Activate for").
Validation refuses a list the source cannot match; completeness wants at least one it can."""

TOKEN_NAME = re.compile(r"^\{\{my\.[^{}\s][^{}]*\}\}$")
_ENV_REFERENCE = re.compile(r"\$\{[^}]*\}")
_SCALAR_OPS = {
    FilterOp.EQUALS,
    FilterOp.NOT_EQUALS,
    FilterOp.CONTAINS,
    FilterOp.STARTS_WITH,
    FilterOp.ENDS_WITH,
}
_NO_VALUE_OPS = {FilterOp.IS_EMPTY, FilterOp.IS_NOT_EMPTY}
EVENT_TAGS_PATH = "event.tags"


def validate_account(account: Account) -> list[Problem]:
    """Every problem in a loaded account, in document order; [] when it is valid."""
    return [
        *_duplicates(account),
        *_assignment_problems(account),
        *_connection_problems(account),
        *_mapping_problems(account),
        *(p for i, flow in enumerate(account.flows) for p in _flow_problems(account, i, flow)),
        *_certain_source_problems(account),
    ]


def _duplicates(account: Account) -> Iterator[Problem]:
    groups: list[tuple[str, str, list[str]]] = [
        ("tags", "tag", [t.name for t in account.tags]),
        ("connections", "connection", [c.id for c in account.connections]),
        ("mappings", "mapping", [m.id for m in account.mappings]),
        ("flows", "flow", [f.id for f in account.flows]),
        ("certain_sources", "Certain source", [s.id for s in account.certain_sources]),
    ]
    for section, noun, keys in groups:
        key_name = "name" if section == "tags" else "id"
        for index, first in _repeats(keys):
            yield Problem(
                f"{section}[{index}].{key_name}",
                f"duplicate {noun} {keys[index]!r} (already used by {section}[{first}])",
            )


def _repeats(keys: list[str]) -> Iterator[tuple[int, int]]:
    """(index, index of first occurrence) for every repeated key."""
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in seen:
            yield index, seen[key]
        else:
            seen[key] = index


def _tag_problem(account: Account, name: str, kind: ObjectKind) -> str | None:
    tag = account.tag(name)
    if tag is None:
        known = [t.name for t in account.tags if kind in t.objects]
        listed = ", ".join(known) if known else "none"
        return f"unknown tag {name!r} (tags for {_KIND_WORDS[kind]}: {listed})"
    if kind not in tag.objects:
        allowed = ", ".join(tag.objects)
        return f"tag {name!r} does not apply to {_KIND_WORDS[kind]} (it applies to: {allowed})"
    return None


def _assignment_problems(account: Account) -> Iterator[Problem]:
    for field_name in type(account.assignments).model_fields:
        kind = account.assignments.kind_of(field_name)
        items: dict[str, list[str]] = getattr(account.assignments, field_name)
        for label, names in items.items():
            for position, name in enumerate(names):
                message = _tag_problem(account, name, kind)
                if message:
                    path = format_path(["assignments", field_name, label, position])
                    yield Problem(path, message)


_URL_FIELDS = ("service_url", "access_token_url", "refresh_token_url", "test_connection_url")


def _connection_problems(account: Account) -> Iterator[Problem]:
    first_primary: int | None = None
    for index, connection in enumerate(account.connections):
        base = f"connections[{index}]"
        if connection.primary:
            if first_primary is None:
                first_primary = index
            else:
                first = account.connections[first_primary].id
                yield Problem(
                    f"{base}.primary",
                    f"a second primary connection (connections[{first_primary}] {first!r} "
                    "is already primary; expected at most one)",
                )
        for field_name in _URL_FIELDS:
            url = getattr(connection, field_name)
            message = url_problem(url) if url is not None else None
            if message:
                yield Problem(f"{base}.{field_name}", message)
        yield from _secret_problems(base, connection)


def url_problem(url: AnyHttpUrl) -> str | None:
    """What pydantic lets through but no Marketo endpoint has: credentials, query, fragment."""
    if url.username or url.password:
        return "expected a URL without user:password (credentials go in client_id/client_secret)"
    if url.query:
        return f"expected a URL without a query string, got '?{url.query}'"
    if url.fragment:
        return f"expected a URL without a fragment, got '#{url.fragment}'"
    return None


def _secret_problems(base: str, connection: Connection) -> Iterator[Problem]:
    secret = connection.client_secret
    if secret is not None:
        found = _ENV_REFERENCE.search(secret.get_secret_value())
        if found:
            yield Problem(
                f"{base}.client_secret",
                f"unresolved environment reference {found.group()} "
                "(expected the variable to be set when the configuration is loaded)",
            )
    if connection.client_id is not None:
        found = _ENV_REFERENCE.search(connection.client_id)
        if found:
            yield Problem(
                f"{base}.client_id",
                f"unresolved environment reference {found.group()} (expected the client id)",
            )


def _certain_source_problems(account: Account) -> Iterator[Problem]:
    """A Certain source's host is a base URL the REST path is appended to, and its password
    (like a client secret) must not be an unresolved `${VAR}`."""
    for index, source in enumerate(account.certain_sources):
        base = f"certain_sources[{index}]"
        host = source.host
        if host.username or host.password:
            yield Problem(
                f"{base}.host",
                "expected a URL without user:password (credentials go in username/password)",
            )
        elif host.query or host.fragment:
            yield Problem(
                f"{base}.host",
                f"expected the account's Certain URL without a query or fragment, got '{host}'",
            )
        if source.password is not None:
            found = _ENV_REFERENCE.search(source.password.get_secret_value())
            if found:
                yield Problem(
                    f"{base}.password",
                    f"unresolved environment reference {found.group()} "
                    "(expected the variable to be set when the configuration is loaded)",
                )
        found = _ENV_REFERENCE.search(source.username)
        if found:
            yield Problem(
                f"{base}.username",
                f"unresolved environment reference {found.group()} (expected the username)",
            )


def _mapping_problems(account: Account) -> Iterator[Problem]:
    for index, mapping in enumerate(account.mappings):
        base = f"mappings[{index}]"
        targets = [f.target for f in mapping.fields]
        for position, first in _repeats(targets):
            yield Problem(
                f"{base}.fields[{position}].target",
                f"duplicate target {targets[position]!r} in mapping {mapping.id!r} "
                f"(already mapped by fields[{first}])",
            )
        for position, field in enumerate(mapping.fields):
            if not field.sources:
                yield Problem(
                    f"{base}.fields[{position}].sources",
                    f"no source for target {field.target!r} (expected at least one source path)",
                )
            for number, path in enumerate(field.sources):
                message = source_paths.path_problem(path, account)
                if message:
                    yield Problem(f"{base}.fields[{position}].sources[{number}]", message)


def _known(ids: Iterable[str]) -> str:
    listed = ", ".join(ids)
    return listed if listed else "none"


def _flow_problems(account: Account, index: int, flow: Flow) -> Iterator[Problem]:
    base = f"flows[{index}]"
    yield from _activate_for_problems(account, base, flow)
    for position, rule in enumerate(flow.filters):
        yield from _filter_problems(account, f"{base}.filters[{position}]", flow.source, rule)
    yield from _destination_problems(account, f"{base}.destination", flow)


def _activate_for_problems(account: Account, base: str, flow: Flow) -> Iterator[Problem]:
    activate_for = flow.activate_for
    for field_name, kind in ACTIVATE_FOR_KINDS.items():
        names: list[str] = getattr(activate_for, field_name)
        path = f"{base}.activate_for.{field_name}"
        if names and flow.source is not None:
            allowed = ACTIVATE_FOR_BY_SOURCE[flow.source]
            if field_name not in allowed:
                yield Problem(
                    path,
                    f"{field_name} cannot activate a flow with source {flow.source} "
                    f"(expected: {', '.join(allowed)})",
                )
        if kind is None:
            continue
        for position, name in enumerate(names):
            message = _tag_problem(account, name, kind)
            if message:
                yield Problem(f"{path}[{position}]", message)


def _filter_problems(
    account: Account, path: str, source: Source | None, rule: FieldFilter | AttendeeTypeFilter
) -> Iterator[Problem]:
    if isinstance(rule, AttendeeTypeFilter):
        if source == Source.EVENT_CREATE_UPDATE:
            yield Problem(
                path,
                f"an attendee-type filter needs a registration; source {source} has none",
            )
        for position, name in enumerate(rule.attendee_type_tags):
            message = _tag_problem(account, name, ObjectKind.ATTENDEE_TYPE)
            if message:
                yield Problem(f"{path}.attendee_type_tags[{position}]", message)
        return
    yield from _path_problems(account, f"{path}.field", rule.field, source)
    shape = filter_value_problem(rule.op, rule.value)
    if shape:
        yield Problem(f"{path}.value", shape)
    elif rule.field == EVENT_TAGS_PATH and rule.value is not None:
        values = rule.value if isinstance(rule.value, list) else [rule.value]
        for value in values:
            message = _tag_problem(account, str(value), ObjectKind.EVENT)
            if message:
                yield Problem(f"{path}.value", message)


def filter_value_problem(op: FilterOp, value: object) -> str | None:
    """Does `value` have the shape `op` needs: `in` a list, `is_empty` none, the rest a scalar."""
    if op in _NO_VALUE_OPS:
        if value is not None:
            return f"operator {op} takes no value, got {show_value(value)}"
        return None
    if op == FilterOp.IN:
        if not isinstance(value, list):
            return f"operator in expects a list of values, got {show_value(value)}"
        if not value:
            return "operator in expects a list of values, got an empty list"
        return None
    if op in _SCALAR_OPS and (value is None or isinstance(value, list)):
        found = "no value" if value is None else f"a list {show_value(value)}"
        return f"operator {op} expects a single value (text, number or boolean), got {found}"
    return None


def _path_problems(
    account: Account, path: str, source_path: str, source: Source | None
) -> Iterator[Problem]:
    message = source_paths.path_problem(source_path, account)
    if message is None and source is not None:
        message = source_paths.source_problem(source_path, source)
    if message:
        yield Problem(path, message)


def campaign_rule_is_empty(campaign: CampaignRule) -> bool:
    """A rule naming neither an event question nor a campaign id never yields a campaign id:
    invalid when written, and a campaign action without a usable rule is incomplete."""
    return campaign.event_question is None and campaign.campaign_id is None


def _program_problems(account: Account, base: str, flow: Flow) -> Iterator[Problem]:
    """The program rule: only for update_program_status, from a source with a registrant, its
    status map keyed by tags of the change's status kind."""
    destination = flow.destination
    action = destination.action
    source = flow.source
    wrong_source = source is not None and source not in PROGRAM_SOURCES
    if action is Action.UPDATE_PROGRAM_STATUS and wrong_source:
        yield Problem(
            f"{base}.action",
            f"action {action} needs a registration or session registration source, "
            f"not {source} (expected: {', '.join(sorted(PROGRAM_SOURCES))})",
        )
    rule = destination.program
    if rule is None:
        return
    if action is not None and action is not Action.UPDATE_PROGRAM_STATUS:
        yield Problem(
            f"{base}.program",
            f"a program rule does not apply to action {action} "
            f"(only to {Action.UPDATE_PROGRAM_STATUS})",
        )
    kind = status_kind(flow.source)
    for name in rule.statuses:
        message = _tag_problem(account, name, kind)
        if message:
            yield Problem(f"{base}.program.statuses[{name!r}]", message)


def _destination_problems(account: Account, base: str, flow: Flow) -> Iterator[Problem]:
    destination = flow.destination
    if destination.connection is not None and account.connection(destination.connection) is None:
        yield Problem(
            f"{base}.connection",
            f"unknown connection {destination.connection!r} "
            f"(known: {_known(c.id for c in account.connections)})",
        )
    if destination.mapping is not None:
        mapping = account.mapping(destination.mapping)
        if mapping is None:
            yield Problem(
                f"{base}.mapping",
                f"unknown mapping {destination.mapping!r} "
                f"(known: {_known(m.id for m in account.mappings)})",
            )
        elif flow.source is not None:
            unavailable = [
                path
                for field in mapping.fields
                for path in field.sources
                if source_paths.source_problem(path, flow.source)
            ]
            if unavailable:
                listed = ", ".join(repr(p) for p in dict.fromkeys(unavailable))
                yield Problem(
                    f"{base}.mapping",
                    f"mapping {mapping.id!r} reads {listed}, not available for source "
                    f"{flow.source}",
                )
    action = destination.action
    campaign = destination.campaign
    if campaign is not None:
        if campaign_rule_is_empty(campaign):
            yield Problem(
                f"{base}.campaign",
                "empty campaign rule (expected event_question, campaign_id or both)",
            )
        if action is not None and action not in CAMPAIGN_ACTIONS:
            yield Problem(
                f"{base}.campaign",
                f"a campaign rule does not apply to action {action} "
                f"(only to {', '.join(sorted(CAMPAIGN_ACTIONS))})",
            )
    if destination.form is not None and action is not None and action != Action.FORM_POST:
        yield Problem(
            f"{base}.form",
            f"a form does not apply to action {action} (only to {Action.FORM_POST})",
        )
    if destination.tokens and action in (Action.FORM_POST, Action.UPDATE_PROGRAM_STATUS):
        yield Problem(
            f"{base}.tokens",
            f"tokens do not apply to action {action} "
            f"(only to {', '.join(sorted(CAMPAIGN_ACTIONS))})",
        )
    yield from _program_problems(account, base, flow)
    for name, source_path in destination.tokens.items():
        path = f"{base}.tokens[{name!r}]"
        if not TOKEN_NAME.match(name):
            yield Problem(path, f"token name {name!r} is not of the form '{{{{my.name}}}}'")
        yield from _path_problems(account, path, source_path, flow.source)
