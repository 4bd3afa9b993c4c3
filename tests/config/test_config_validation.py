"""Every validation rule, table-driven: the path and what was found vs. expected."""

from __future__ import annotations

from typing import Any

import pytest

from config.load_problems import check_raw, load_problems
from config.models import Account, FilterOp
from config.problems import Problem, format_path
from config.validation import filter_value_problem, validate_account
from tests.config.config_helpers import DELETE, mutated

CONNECTION_2 = {"id": "mkto-2", "name": "Second", "service_url": "https://456-DEF-789.mktorest.com"}

# (id, [(dotted path, new value)], expected path, expected message fragment)
RULES: list[tuple[str, list[tuple[str, Any]], str, str]] = [
    # duplicates
    (
        "dup-tag",
        [("tags.7", {"name": "vip", "label": "V", "objects": ["event"]})],
        "tags[7].name",
        "duplicate tag 'vip' (already used by tags[3])",
    ),
    (
        "dup-connection",
        [("connections.1", {**CONNECTION_2, "id": "mkto-prod"})],
        "connections[1].id",
        "duplicate connection 'mkto-prod' (already used by connections[0])",
    ),
    (
        "dup-mapping",
        [("mappings.1", {"id": "lead-basic", "name": "Again"})],
        "mappings[1].id",
        "duplicate mapping 'lead-basic'",
    ),
    (
        "dup-flow",
        [("flows.3", {"id": "vip-attended", "name": "Again"})],
        "flows[3].id",
        "duplicate flow 'vip-attended' (already used by flows[1])",
    ),
    (
        "dup-target",
        [("mappings.0.fields.8", {"target": "email", "sources": ["registration.profile.email"]})],
        "mappings[0].fields[8].target",
        "duplicate target 'email' in mapping 'lead-basic' (already mapped by fields[0])",
    ),
    # unknown references
    (
        "unknown-connection",
        [("flows.0.destination.connection", "mkto-x")],
        "flows[0].destination.connection",
        "unknown connection 'mkto-x' (known: mkto-prod)",
    ),
    (
        "unknown-mapping",
        [("flows.1.destination.mapping", "lead-x")],
        "flows[1].destination.mapping",
        "unknown mapping 'lead-x' (known: lead-basic)",
    ),
    (
        "unknown-activate-tag",
        [("flows.0.activate_for.registration_statuses", ["registred"])],
        "flows[0].activate_for.registration_statuses[0]",
        "unknown tag 'registred' (tags for registration statuses: registered, cancelled, attended)",
    ),
    (
        "unknown-attendee-tag",
        [("flows.1.filters.0", {"attendee_type_tags": ["vipp"]})],
        "flows[1].filters[0].attendee_type_tags[0]",
        "unknown tag 'vipp'",
    ),
    (
        "unknown-event-tag",
        [("flows.0.filters.0.value", "nope")],
        "flows[0].filters[0].value",
        "unknown tag 'nope' (tags for events: signal_marketo)",
    ),
    (
        "unknown-assigned-tag",
        [("assignments.registration_statuses.New", ["ghost"])],
        "assignments.registration_statuses.New[0]",
        "unknown tag 'ghost'",
    ),
    (
        "unknown-assigned-tag-quoted-label",
        [("assignments.registration_statuses.Pre-Registered", ["ghost"])],
        "assignments.registration_statuses['Pre-Registered'][0]",
        "unknown tag 'ghost'",
    ),
    # tag used for the wrong object kind
    (
        "vip-as-status",
        [("flows.0.activate_for.registration_statuses", ["vip"])],
        "flows[0].activate_for.registration_statuses[0]",
        "tag 'vip' does not apply to registration statuses (it applies to: attendee_type)",
    ),
    (
        "status-as-attendee",
        [("flows.1.filters.0", {"attendee_type_tags": ["registered"]})],
        "flows[1].filters[0].attendee_type_tags[0]",
        "does not apply to attendee types",
    ),
    (
        "attendee-as-event-tag",
        [("flows.0.filters.0.value", "vip")],
        "flows[0].filters[0].value",
        "tag 'vip' does not apply to events",
    ),
    (
        "event-tag-in-list",
        [
            (
                "flows.0.filters.0",
                {"field": "event.tags", "op": "in", "value": ["signal_marketo", "diet"]},
            )
        ],
        "flows[0].filters[0].value",
        "tag 'diet' does not apply to events",
    ),
    (
        "wrong-kind-assignment",
        [("assignments.event_statuses.Active", ["registered"])],
        "assignments.event_statuses.Active[0]",
        "does not apply to event statuses",
    ),
    (
        "wrong-kind-session-activate",
        [("flows.1.activate_for.session_registration_statuses", ["registered"])],
        "flows[1].activate_for.session_registration_statuses[0]",
        "does not apply to session registration statuses",
    ),
    (
        "wrong-kind-event-status",
        [
            ("flows.2.activate_for", {"event_statuses": ["registered"]}),
            ("flows.2.source", "event.create_update"),
        ],
        "flows[2].activate_for.event_statuses[0]",
        "does not apply to event statuses",
    ),
    (
        "wrong-kind-custom-property",
        [("flows.2.activate_for.custom_registration_properties", ["registered"])],
        "flows[2].activate_for.custom_registration_properties[0]",
        "does not apply to custom registration properties",
    ),
    # activate-for kinds that the source cannot match
    (
        "event-status-on-status-change",
        [("flows.0.activate_for.event_statuses", ["event_live"])],
        "flows[0].activate_for.event_statuses",
        "event_statuses cannot activate a flow with source registration.status_change "
        "(expected: registration_statuses)",
    ),
    (
        "standard-on-session",
        [("flows.1.activate_for.standard_properties", ["Complete"])],
        "flows[1].activate_for.standard_properties",
        "expected: session_registration_statuses",
    ),
    (
        "session-on-create-update",
        [("flows.2.activate_for.session_registration_statuses", ["attended"])],
        "flows[2].activate_for.session_registration_statuses",
        "expected: registration_statuses, custom_registration_properties, standard_properties",
    ),
    # URLs
    (
        "url-query",
        [("connections.0.service_url", "https://123-ABC-456.mktorest.com/?a=1")],
        "connections[0].service_url",
        "expected a URL without a query string, got '?a=1'",
    ),
    (
        "url-credentials",
        [("connections.0.service_url", "https://u:p@123-ABC-456.mktorest.com")],
        "connections[0].service_url",
        "without user:password",
    ),
    (
        "url-fragment",
        [("connections.0.test_connection_url", "https://x.mktorest.com/rest#top")],
        "connections[0].test_connection_url",
        "without a fragment, got '#top'",
    ),
    (
        "url-malformed",
        [("connections.0.service_url", "not a url")],
        "connections[0].service_url",
        "expected an http(s) URL",
    ),
    (
        "url-scheme",
        [("connections.0.access_token_url", "ftp://x.mktorest.com")],
        "connections[0].access_token_url",
        "expected an http(s) URL",
    ),
    (
        "form-url-malformed",
        [("flows.2.destination.form.form_url", "forms/1234")],
        "flows[2].destination.form.form_url",
        "got 'forms/1234'",
    ),
    # source paths
    (
        "unknown-mapping-path",
        [("mappings.0.fields.3.sources.0", "registration.profile.company")],
        "mappings[0].fields[3].sources[0]",
        "unknown source path 'registration.profile.company'",
    ),
    (
        "typo-suggests",
        [("mappings.0.fields.0.sources.0", "registration.profile.emial")],
        "mappings[0].fields[0].sources[0]",
        "did you mean 'registration.profile.email'?",
    ),
    (
        "no-suggestion",
        [("mappings.0.fields.0.sources.0", "zzz")],
        "mappings[0].fields[0].sources[0]",
        "expected a path such as 'registration.profile.email'",
    ),
    (
        "answers-unknown-tag",
        [("mappings.0.fields.7.sources.0", "answers.food")],
        "mappings[0].fields[7].sources[0]",
        "unknown question tag 'food' in 'answers.food' (known: diet)",
    ),
    (
        "answers-wrong-kind",
        [("mappings.0.fields.7.sources.0", "answers.vip")],
        "mappings[0].fields[7].sources[0]",
        "does not apply to registration questions",
    ),
    (
        "answers-empty",
        [("mappings.0.fields.7.sources.0", "answers.")],
        "mappings[0].fields[7].sources[0]",
        "unknown source path 'answers.'",
    ),
    (
        "empty-sources",
        [("mappings.0.fields.3.sources", [])],
        "mappings[0].fields[3].sources",
        "no source for target 'company'",
    ),
    (
        "filter-unknown-path",
        [("flows.0.filters.1.field", "registration.profile.adress.country")],
        "flows[0].filters[1].field",
        "did you mean 'registration.profile.address.country'?",
    ),
    (
        "filter-session-path-on-registration",
        [("flows.0.filters.1", {"field": "session.sessionName", "op": "equals", "value": "K"})],
        "flows[0].filters[1].field",
        "'session.sessionName' is not available for source registration.status_change "
        "(only for: session_registration.status_change)",
    ),
    (
        "mapping-paths-on-event-source",
        [
            ("flows.2.source", "event.create_update"),
            ("flows.2.activate_for", {"event_statuses": ["event_live"]}),
        ],
        "flows[2].destination.mapping",
        "not available for source event.create_update",
    ),
    (
        "attendee-filter-on-event-source",
        [
            ("flows.1.source", "event.create_update"),
            ("flows.1.activate_for", {"event_statuses": ["event_live"]}),
        ],
        "flows[1].filters[0]",
        "an attendee-type filter needs a registration",
    ),
    (
        "token-unknown-path",
        [("flows.1.destination.tokens", {"{{my.x}}": "session.name"})],
        "flows[1].destination.tokens['{{my.x}}']",
        "unknown source path 'session.name'",
    ),
    (
        "token-wrong-source",
        [("flows.0.destination.tokens", {"{{my.s}}": "session.sessionName"})],
        "flows[0].destination.tokens['{{my.s}}']",
        "not available for source registration.status_change",
    ),
    # filter value shapes
    (
        "in-scalar",
        [("flows.0.filters.1.value", "US")],
        "flows[0].filters[1].value",
        "operator in expects a list of values, got 'US'",
    ),
    (
        "in-empty",
        [("flows.0.filters.1.value", [])],
        "flows[0].filters[1].value",
        "got an empty list",
    ),
    (
        "is-empty-value",
        [
            (
                "flows.0.filters.1",
                {"field": "registration.profile.phone", "op": "is_empty", "value": "x"},
            )
        ],
        "flows[0].filters[1].value",
        "operator is_empty takes no value, got 'x'",
    ),
    (
        "is-not-empty-value",
        [
            (
                "flows.0.filters.1",
                {"field": "registration.profile.phone", "op": "is_not_empty", "value": 0},
            )
        ],
        "flows[0].filters[1].value",
        "operator is_not_empty takes no value, got 0",
    ),
    (
        "equals-list",
        [("flows.0.filters.1.op", "equals")],
        "flows[0].filters[1].value",
        "operator equals expects a single value (text, number or boolean), got a list",
    ),
    (
        "contains-nothing",
        [("flows.0.filters.0.value", DELETE)],
        "flows[0].filters[0].value",
        "operator contains expects a single value",
    ),
    (
        "filter-value-mapping",
        [("flows.0.filters.1.value", {"a": 1})],
        "flows[0].filters[1].value",
        "expected a string, number, boolean or list of strings, got {'a': 1}",
    ),
    # destination rules
    (
        "empty-campaign",
        [("flows.0.destination.campaign", {})],
        "flows[0].destination.campaign",
        "empty campaign rule (expected event_question, campaign_id or both)",
    ),
    (
        "campaign-on-form",
        [("flows.2.destination.campaign", {"campaign_id": 5})],
        "flows[2].destination.campaign",
        "a campaign rule does not apply to action form_post "
        "(only to create_update_lead, trigger_campaign)",
    ),
    (
        "form-on-trigger",
        [("flows.1.destination.form", {"form_id": 1})],
        "flows[1].destination.form",
        "a form does not apply to action trigger_campaign (only to form_post)",
    ),
    (
        "form-on-create-update",
        [("flows.0.destination.form", {"form_id": 1})],
        "flows[0].destination.form",
        "does not apply to action create_update_lead",
    ),
    (
        "token-name-no-braces",
        [("flows.1.destination.tokens", {"my.session": "session.sessionName"})],
        "flows[1].destination.tokens['my.session']",
        "is not of the form '{{my.name}}'",
    ),
    (
        "token-name-not-my",
        [("flows.1.destination.tokens", {"{{program.x}}": "session.sessionName"})],
        "flows[1].destination.tokens['{{program.x}}']",
        "is not of the form",
    ),
    (
        "tokens-on-form",
        [("flows.2.destination.tokens", {"{{my.x}}": "event.eventName"})],
        "flows[2].destination.tokens",
        "tokens do not apply to action form_post",
    ),
    # connections
    (
        "two-primaries",
        [("connections.1", {**CONNECTION_2, "primary": True})],
        "connections[1].primary",
        "a second primary connection "
        "(connections[0] 'mkto-prod' is already primary; expected at most one)",
    ),
    (
        "unresolved-secret",
        [("connections.0.client_secret", "${NOT_RESOLVED}")],
        "connections[0].client_secret",
        "unresolved environment reference ${NOT_RESOLVED}",
    ),
    (
        "unresolved-secret-inside",
        [("connections.0.client_secret", "pre${X}post")],
        "connections[0].client_secret",
        "unresolved environment reference ${X}",
    ),
    (
        "unresolved-client-id",
        [("connections.0.client_id", "${CLIENT_ID}")],
        "connections[0].client_id",
        "unresolved environment reference ${CLIENT_ID}",
    ),
]


def _problems(raw: dict[str, Any], changes: list[tuple[str, Any]]) -> list[Problem]:
    for path, value in changes:
        raw = mutated(raw, path, value)
    _account, problems = check_raw(raw)
    return problems


def test_the_example_is_valid(example: Account) -> None:
    assert validate_account(example) == []


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [pytest.param(c, p, f, id=i) for i, c, p, f in RULES],
)
def test_rule(
    example_raw: dict[str, Any], changes: list[tuple[str, Any]], path: str, fragment: str
) -> None:
    problems = _problems(example_raw, changes)
    matching = [p for p in problems if p.path == path and fragment in p.message]
    assert matching, f"wanted {path}: …{fragment}… in:\n" + "\n".join(map(str, problems))


@pytest.mark.parametrize(
    ("changes"),
    [
        pytest.param(
            [("mappings.0.fields.7.sources.0", "eventQuestions.anyCode")], id="event-question"
        ),
        pytest.param(
            [("flows.0.filters.1", {"field": "event.eventType", "op": "is_empty"})], id="is-empty"
        ),
        pytest.param(
            [("flows.0.filters.1", {"field": "answers.diet", "op": "equals", "value": 3})],
            id="answers-filter",
        ),
        pytest.param(
            [("flows.0.filters.1", {"field": "occurredAt", "op": "starts_with", "value": "2026"})],
            id="envelope",
        ),
        pytest.param(
            [("flows.1.destination.tokens", {"{{my.Session Name}}": "session.sessionName"})],
            id="token-space",
        ),
        pytest.param([("connections.1", CONNECTION_2)], id="second-non-primary"),
        pytest.param([("connections.0.service_url", "http://localhost:8089")], id="sandbox-url"),
        pytest.param(
            [
                ("flows.2.activate_for", {"custom_registration_properties": []}),
                ("flows.2.destination", {}),
            ],
            id="half-built",
        ),
        pytest.param(
            [("flows.0.source", DELETE), ("flows.0.activate_for.event_statuses", ["event_live"])],
            id="no-source-no-kind-check",
        ),
    ],
)
def test_valid_variants_have_no_problems(
    example_raw: dict[str, Any], changes: list[tuple[str, Any]]
) -> None:
    assert _problems(example_raw, changes) == []


def test_every_problem_is_reported_at_once(example_raw: dict[str, Any]) -> None:
    changes: list[tuple[str, Any]] = [chg for _i, cs, _p, _f in RULES[:8] for chg in cs]
    problems = _problems(example_raw, changes)
    paths = {p.path for p in problems}
    assert {path for _i, _c, path, _f in RULES[:8]} <= paths


# --- load problems (pydantic) ------------------------------------------------------------------

LOAD: list[tuple[str, str, Any, str, str]] = [
    ("mode", "flows.2.mode", "prod", "flows[2].mode", "expected 'live' or 'test', got 'prod'"),
    (
        "unknown-top-key",
        "mapings",
        [],
        "mapings",
        "unknown key 'mapings' (did you mean 'mappings'?)",
    ),
    (
        "unknown-nested-key",
        "flows.0.destination.conection",
        "x",
        "flows[0].destination.conection",
        "did you mean 'connection'?",
    ),
    (
        "unknown-filter-key",
        "flows.0.filters.0.valu",
        "x",
        "flows[0].filters[0].valu",
        "did you mean 'value'?",
    ),
    (
        "unknown-key-list",
        "connections.0.colour",
        "x",
        "connections[0].colour",
        "expected one of: id, name, target, service_url",
    ),
    ("missing", "flows.0.name", DELETE, "flows[0].name", "required, but missing"),
    ("missing-account", "account", DELETE, "account", "required, but missing"),
    (
        "bad-id",
        "flows.0.id",
        "my flow",
        "flows[0].id",
        "expected an id of letters, digits, '_', '.' or '-'",
    ),
    (
        "tag-kind",
        "tags.0.objects.0",
        "status",
        "tags[0].objects[0]",
        "expected 'registration_status', ",
    ),
    (
        "tag-objects-empty",
        "tags.0.objects",
        [],
        "tags[0].objects",
        "expected at least 1 item(s), got none",
    ),
    ("empty-label", "tags.0.label", "  ", "tags[0].label", "expected a non-empty value"),
    (
        "form-id",
        "flows.2.destination.form.form_id",
        0,
        "flows[2].destination.form.form_id",
        "expected greater than 0, got 0",
    ),
    (
        "filter-not-mapping",
        "flows.0.filters.0",
        "event.tags",
        "flows[0].filters[0]",
        "expected a mapping (key: value), got 'event.tags'",
    ),
    (
        "attendee-empty",
        "flows.1.filters.0.attendee_type_tags",
        [],
        "flows[1].filters[0].attendee_type_tags",
        "expected at least 1 item(s)",
    ),
    (
        "filter-op",
        "flows.0.filters.0.op",
        "like",
        "flows[0].filters[0].op",
        "'is_not_empty', got 'like'",
    ),
    (
        "rate-share",
        "connections.0.rate_share",
        2,
        "connections[0].rate_share",
        "expected less than or equal to 1, got 2",
    ),
    (
        "transform",
        "mappings.0.fields.0.transforms.0",
        "capitalize",
        "mappings[0].fields[0].transforms[0]",
        "got 'capitalize'",
    ),
    (
        "source",
        "flows.0.source",
        "registration.created",
        "flows[0].source",
        "expected 'registration.create_update', ",
    ),
    (
        "action",
        "flows.0.destination.action",
        "upsert",
        "flows[0].destination.action",
        "got 'upsert'",
    ),
    (
        "standard-property",
        "flows.2.activate_for.standard_properties.0",
        "complete",
        "flows[2].activate_for.standard_properties[0]",
        "expected 'Complete', ",
    ),
    (
        "assignment-not-list",
        "assignments.registration_statuses.New",
        "registered",
        "assignments.registration_statuses.New",
        "expected a list, got 'registered'",
    ),
    ("flows-not-list", "flows", {"a": 1}, "flows", "expected a list"),
    ("bool", "flows.0.active", "maybe", "flows[0].active", "got 'maybe'"),
]


@pytest.mark.parametrize(
    ("path", "value", "where", "fragment"),
    [pytest.param(p, v, w, f, id=i) for i, p, v, w, f in LOAD],
)
def test_load_problem(
    example_raw: dict[str, Any], path: str, value: Any, where: str, fragment: str
) -> None:
    problems = load_problems(mutated(example_raw, path, value))
    matching = [p for p in problems if p.path == where and fragment in p.message]
    assert matching, f"wanted {where}: …{fragment}… in:\n" + "\n".join(map(str, problems))


def test_load_problems_all_at_once(example_raw: dict[str, Any]) -> None:
    raw = example_raw
    for _i, path, value, _w, _f in LOAD[:6]:
        raw = mutated(raw, path, value)
    assert {p.path for p in load_problems(raw)} >= {w for _i, _p, _v, w, _f in LOAD[:6]}


def test_load_problems_of_a_valid_account_is_empty(example_raw: dict[str, Any]) -> None:
    assert load_problems(example_raw) == []


@pytest.mark.parametrize("raw", [None, [], "account: x", 3])
def test_not_a_mapping(raw: object) -> None:
    assert load_problems(raw) == [Problem("", load_problems(raw)[0].message)]
    assert "expected a mapping" in load_problems(raw)[0].message


def test_a_bad_secret_value_is_never_echoed(example_raw: dict[str, Any]) -> None:
    problems = load_problems(mutated(example_raw, "connections.0.client_secret", 98765))
    assert [p.path for p in problems] == ["connections[0].client_secret"]
    assert "98765" not in problems[0].message


def test_semantic_checks_still_run_when_an_optional_key_is_bad(example_raw: dict[str, Any]) -> None:
    raw = mutated(example_raw, "flows.0.mode", "prod")
    raw = mutated(raw, "flows.1.destination.mapping", "lead-x")
    account, problems = check_raw(raw)
    assert account is None
    assert [str(p) for p in problems] == [
        "flows[0].mode: expected 'live' or 'test', got 'prod'",
        "flows[1].destination.mapping: unknown mapping 'lead-x' (known: lead-basic)",
    ]


def test_no_guessing_when_a_required_value_is_bad(example_raw: dict[str, Any]) -> None:
    raw = mutated(example_raw, "tags.0.name", "bad name")
    account, problems = check_raw(raw)
    assert account is None
    assert [p.path for p in problems] == ["tags[0].name"]


@pytest.mark.parametrize(
    ("op", "value", "ok"),
    [
        (FilterOp.IN, ["a"], True),
        (FilterOp.IN, "a", False),
        (FilterOp.IN, [], False),
        (FilterOp.IS_EMPTY, None, True),
        (FilterOp.IS_EMPTY, "", False),
        (FilterOp.IS_NOT_EMPTY, None, True),
        (FilterOp.EQUALS, "a", True),
        (FilterOp.EQUALS, 3, True),
        (FilterOp.NOT_EQUALS, False, True),
        (FilterOp.STARTS_WITH, None, False),
        (FilterOp.ENDS_WITH, ["a"], False),
    ],
)
def test_filter_value_shapes(op: FilterOp, value: object, ok: bool) -> None:
    assert (filter_value_problem(op, value) is None) is ok


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("flows", 1, "destination", "mapping"), "flows[1].destination.mapping"),
        (
            ("assignments", "registration_statuses", "Pre-Registered", 0),
            "assignments.registration_statuses['Pre-Registered'][0]",
        ),
        ((), ""),
    ],
)
def test_format_path(loc: tuple[str | int, ...], text: str) -> None:
    assert format_path(loc) == text
