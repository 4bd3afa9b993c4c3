"""Marketo's protocol rules from plain bytes: no server, no session, no event loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stream.marketo.errors import FailureClass
from stream.marketo.protocol import (
    LEADS_PATH,
    Answer,
    chunks,
    compact,
    match_records,
    parse_envelope,
    parse_identity,
    retry_after_seconds,
    token_name,
)

TOKEN_URL = "https://123-abc-456.mktorest.com/identity/oauth/token"


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


# ---- identity ---------------------------------------------------------------------------------


def test_identity_issues_a_token_with_its_lifetime_and_scope() -> None:
    raw = body(
        {"access_token": "t-1", "expires_in": 3599, "scope": "api@x", "token_type": "bearer"}
    )
    issued, failure = parse_identity(200, raw, TOKEN_URL)
    assert failure is None and issued is not None
    assert issued.value.get_secret_value() == "t-1"
    assert (issued.expires_in, issued.scope) == (3599, "api@x")


def test_identity_with_an_unreadable_lifetime_counts_it_as_spent() -> None:
    issued, _ = parse_identity(200, body({"access_token": "t", "expires_in": "soon"}), TOKEN_URL)
    assert issued is not None and issued.expires_in == 0


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [(b"1e400", 0), (b"9" * 400, 86_400), (b"-5", 0), (b"7200", 7200)],
)
def test_a_hostile_token_lifetime_is_bounded(lifetime: bytes, expected: int) -> None:
    """An infinite or 400-digit lifetime raised OverflowError out of the token cache."""
    raw = b'{"access_token": "t", "expires_in": ' + lifetime + b"}"
    issued, failure = parse_identity(200, raw, TOKEN_URL)
    assert failure is None and issued is not None and issued.expires_in == expected


def test_an_answer_nested_past_the_parser_is_a_failure_not_a_crash() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    _, failure, _ = parse_envelope(200, deep, LEADS_PATH)
    assert failure is not None and failure.kind is FailureClass.TECHNICAL
    issued, failure = parse_identity(200, deep, TOKEN_URL)
    assert issued is None and failure is not None


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"error": "invalid_client"}, "bad client id or secret"),
        (
            {"error": "invalid_client", "error_description": "Bad client credentials"},
            "bad client id or secret: Bad client credentials",
        ),
        ({"error": "unauthorized"}, "the identity endpoint refused the credentials (unauthorized)"),
    ],
)
def test_identity_refusals_are_auth_failures_in_words(answer: dict[str, str], message: str) -> None:
    issued, failure = parse_identity(401, body(answer), TOKEN_URL)
    assert issued is None and failure is not None
    assert (failure.kind, failure.message, failure.http_status) == (FailureClass.AUTH, message, 401)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_identity_server_trouble_is_an_http_failure(status: int) -> None:
    _, failure = parse_identity(status, b"<html>busy</html>", TOKEN_URL)
    assert failure is not None and failure.code == f"http-{status}"


@pytest.mark.parametrize(
    ("status", "raw"), [(200, b"<html>login</html>"), (200, body({"token": "x"})), (404, b"")]
)
def test_an_endpoint_that_is_not_marketo_says_so_with_its_url(status: int, raw: bytes) -> None:
    _, failure = parse_identity(status, raw, TOKEN_URL)
    assert failure is not None
    assert (failure.kind, failure.code) == (FailureClass.SYSTEMIC, "not-marketo")
    assert TOKEN_URL in failure.message and f"HTTP {status}" in failure.message


# ---- the REST envelope ------------------------------------------------------------------------


def test_a_successful_envelope_comes_back_with_its_request_id() -> None:
    raw = body({"requestId": "r#1", "success": True, "result": []})
    envelope, failure, request_id = parse_envelope(200, raw, LEADS_PATH)
    assert failure is None and envelope is not None and request_id == "r#1"


def test_a_marketo_error_code_is_classified_and_keeps_the_request_id() -> None:
    raw = body({"requestId": "r#2", "success": False, "errors": [{"code": "606", "message": "x"}]})
    envelope, failure, request_id = parse_envelope(200, raw, LEADS_PATH)
    assert envelope is None and failure is not None
    assert (failure.kind, failure.code, request_id) == (FailureClass.THROTTLE, "606", "r#2")


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"not json", "not-json", "the answer is not a JSON object"),
        (body([1, 2]), "not-json", "the answer is not a JSON object"),
        (body({"requestId": "r"}), "malformed", "the answer has no success flag"),
        (
            body({"success": False, "errors": [{"message": "odd"}]}),
            None,
            "success:false without an error code: odd",
        ),
        (body({"success": False, "errors": ["x"]}), None, "success:false without an error code"),
    ],
)
def test_answers_marketo_never_gives_are_technical(
    raw: bytes, code: str | None, message: str
) -> None:
    _, failure, _ = parse_envelope(200, raw, LEADS_PATH)
    assert failure is not None and failure.kind is FailureClass.TECHNICAL
    assert failure.code == code and failure.message.startswith(message)


def test_a_non_200_status_is_judged_by_the_status_alone() -> None:
    _, failure, _ = parse_envelope(413, body({"success": True}), LEADS_PATH)
    assert failure is not None
    assert (failure.code, failure.message, failure.endpoint) == (
        "http-413",
        "HTTP 413: request body too large",
        LEADS_PATH,
    )


# ---- per-record results -----------------------------------------------------------------------


def answer(result: Any, request_id: str = "r#3") -> Answer:
    return Answer({"success": True, "result": result}, None, 200, request_id)


def test_records_are_matched_by_position_to_their_inputs() -> None:
    results = match_records(
        [4, 7, 9],
        answer(
            [
                {"id": 11, "status": "created"},
                {"status": "skipped", "reasons": [{"code": "1003", "message": "bad email"}]},
                {"id": "12", "status": "updated"},
            ]
        ),
        LEADS_PATH,
    )
    assert [(r.index, r.status, r.lead_id) for r in results] == [
        (4, "created", 11),
        (7, "skipped", None),
        (9, "updated", None),
    ]
    assert results[0].failure is None and results[0].request_id == "r#3"
    skipped = results[1].failure
    assert skipped is not None and skipped.code == "1003" and skipped.kind is FailureClass.DATA


@pytest.mark.parametrize("result", [[{"id": 1, "status": "created"}], None, "x"])
def test_a_result_list_that_does_not_line_up_fails_every_record(result: Any) -> None:
    results = match_records([0, 1], answer(result), LEADS_PATH)
    assert [r.index for r in results] == [0, 1]
    for r in results:
        assert r.failure is not None and r.failure.code == "result-mismatch"
        assert "for 2 records" in r.failure.message


def test_an_unknown_status_without_a_reason_is_a_technical_failure() -> None:
    (result,) = match_records([0], answer([{"status": "pondering"}]), LEADS_PATH)
    assert result.failure is not None and result.failure.kind is FailureClass.TECHNICAL
    assert "'pondering'" in result.failure.message


def test_a_success_status_with_reasons_is_not_taken_for_success() -> None:
    reasons = [{"code": "1006", "message": "field not found"}]
    (result,) = match_records([0], answer([{"status": "updated", "reasons": reasons}]), LEADS_PATH)
    assert result.failure is not None and result.failure.code == "1006"


# ---- batching and small rules -----------------------------------------------------------------


def test_chunks_keep_both_the_count_and_the_byte_caps() -> None:
    sizes = [(i, 10) for i in range(7)]
    assert list(chunks(sizes, 3, 0, 10_000)) == [[0, 1, 2], [3, 4, 5], [6]]
    # overhead 5 + 10 + (1 + 10) = 26 fits 30; a third record would need 37.
    assert list(chunks(sizes[:5], 300, 5, 30)) == [[0, 1], [2, 3], [4]]
    assert list(chunks([], 3, 0, 100)) == []


def test_a_record_larger_than_the_cap_still_travels_alone() -> None:
    assert list(chunks([(0, 5), (1, 500), (2, 5)], 300, 0, 100)) == [[0], [1], [2]]


def test_compact_counts_bytes_as_marketo_does() -> None:
    assert compact({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'.encode()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("20", 20.0),
        ("-3", 0.0),
        ("Wed, 21 Oct 2026", None),
        ("1e400", None),  # infinite: a timedelta of it overflowed out of the call
        ("nan", None),
        ("9" * 400, None),
        ("1e9", 86_400.0),
    ],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


@pytest.mark.parametrize(
    ("name", "token"),
    [("city", "{{my.city}}"), ("my.city", "{{my.city}}"), (" {{my.city}} ", "{{my.city}}")],
)
def test_campaign_token_names(name: str, token: str) -> None:
    assert token_name(name) == token
