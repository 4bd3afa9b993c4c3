"""The activity log's parsers from plain bytes (stream/marketo/activities.py): types by name,
date tokens, pages, and the answers that cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from stream.marketo.activities import (
    Activity,
    ActivityError,
    lead_groups,
    parse_page,
    parse_token,
    parse_types,
    since_param,
    type_id,
)
from stream.marketo.errors import FailureClass, MarketoError

TYPES = (
    b'{"requestId":"a1#b","result":[{"id":2,"name":"Fill Out Form","primaryAttribute":'
    b'{"name":"Webform ID","dataType":"integer"},"attributes":[]},{"id":47,"name":'
    b'"Request Campaign","attributes":[{"name":"Source","dataType":"string"}]}],"success":true}'
)
PAGE = (
    b'{"requestId":"c#d","result":[{"id":9,"marketoGUID":"9","leadId":"31",'
    b'"activityDate":"2031-05-02T10:00:01Z","activityTypeId":47,"campaignId":1001,'
    b'"primaryAttributeValueId":1001,"primaryAttributeValue":"Welcome","attributes":'
    b'[{"name":"Source","value":"Web Service API"}]},{"id":10,"leadId":32,"activityDate":'
    b'"2031-05-02T10:00:02Z","activityTypeId":12,"attributes":[]}],"success":true,'
    b'"nextPageToken":"TOKEN2","moreResult":true}'
)


def test_types_by_name() -> None:
    types = parse_types(TYPES)
    assert types == {"Fill Out Form": 2, "Request Campaign": 47}
    assert type_id(types, "Request Campaign") == 47
    with pytest.raises(ActivityError, match=r"'Change Score' not found.*Fill Out Form"):
        type_id(types, "Change Score")


def test_a_page_with_its_token_and_more_result() -> None:
    page = parse_page(PAGE)
    assert page.more is True and page.next_token == "TOKEN2"
    assert page.activities == (
        Activity(9, 31, 47, datetime(2031, 5, 2, 10, 0, 1, tzinfo=UTC), 1001),
        Activity(10, 32, 12, datetime(2031, 5, 2, 10, 0, 2, tzinfo=UTC), None),
    )


def test_an_empty_last_page_has_no_result() -> None:
    page = parse_page(b'{"requestId":"e#f","success":true,"nextPageToken":"T3","moreResult":false}')
    assert page.activities == () and page.more is False and page.next_token == "T3"


def test_the_date_token() -> None:
    assert parse_token(b'{"requestId":"g#h","success":true,"nextPageToken":"GIYDA"}') == "GIYDA"
    with pytest.raises(ActivityError, match="nextPageToken is None"):
        parse_token(b'{"requestId":"g#h","success":true}')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"success":true,"result":{"id":1}}', "result is dict, expected a list"),
        (b'{"success":true,"result":[7]}', "activity 0: expected an object, got int"),
        (
            b'{"success":true,"result":[{"id":1,"activityTypeId":47,"activityDate":'
            b'"2031-05-02T10:00:01Z"}]}',
            "activity 0: leadId is None, expected an integer",
        ),
        (
            b'{"success":true,"result":[{"id":1,"leadId":3,"activityTypeId":47,'
            b'"activityDate":"yesterday"}]}',
            "activity 0: activityDate is 'yesterday', expected an ISO date-time",
        ),
        (
            b'{"success":true,"result":[{"id":1,"leadId":3,"activityTypeId":47,'
            b'"activityDate":"2031-05-02T10:00:01Z","primaryAttributeValueId":"x"}]}',
            "activity 0: primaryAttributeValueId is 'x', expected an integer",
        ),
        (b'{"success":true,"moreResult":true}', "moreResult without a nextPageToken"),
    ],
)
def test_unreadable_pages_say_what_is_wrong(raw: bytes, expected: str) -> None:
    with pytest.raises(ActivityError) as raised:
        parse_page(raw)
    assert expected in str(raised.value)


def test_an_error_envelope_is_a_marketo_error() -> None:
    raw = b'{"requestId":"i#j","success":false,"errors":[{"code":"606","message":"Max rate"}]}'
    with pytest.raises(MarketoError) as raised:
        parse_page(raw)
    assert raised.value.failure.code == "606"
    assert raised.value.failure.kind is FailureClass.THROTTLE
    with pytest.raises(MarketoError):
        parse_types(b"<html>busy</html>")


def test_since_is_utc_to_the_second() -> None:
    local = datetime(2031, 5, 2, 12, 0, 1, 900_000, tzinfo=timezone(timedelta(hours=2)))
    assert since_param(local) == "2031-05-02T10:00:01Z"


def test_leads_go_in_groups_of_thirty_without_repeats() -> None:
    groups = lead_groups([*range(70), 5, 6])
    assert [len(g) for g in groups] == [30, 30, 10]
    assert sorted(i for g in groups for i in g) == list(range(70))
