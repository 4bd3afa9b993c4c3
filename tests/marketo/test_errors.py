"""The failure classification table: every documented code lands in the class Signal acts on."""

from __future__ import annotations

import pytest

from stream.marketo.errors import (
    CLASSIFICATION_VERSION,
    RECORD_CODES,
    RESPONSE_CODES,
    FailureClass,
    MarketoError,
    MarketoFailure,
    classify_http_status,
    classify_record_code,
    classify_response_code,
    record_failure,
    response_failure,
)

A, T, Q, X, S, D = (
    FailureClass.AUTH,
    FailureClass.THROTTLE,
    FailureClass.QUOTA,
    FailureClass.TECHNICAL,
    FailureClass.SYSTEMIC,
    FailureClass.DATA,
)

# reference/marketo-api.md §3.1 and reliability.md §6.
RESPONSE_EXPECTED = {
    "601": A, "602": A,
    "606": T, "615": T,
    "607": Q,
    "502": X, "604": X, "608": X, "611": X, "614": X, "713": X, "719": X,
    "603": S, "605": S, "609": S, "610": S, "612": S, "613": S,
    "701": S, "702": S, "703": S, "704": S, "709": S, "710": S, "711": S,
    "1003": S,  # request campaign on a batch campaign: configuration
    "1013": S,  # unknown campaign: configuration
    "1025": S,  # program status not in the program's channel: flow configuration
    "1006": S,  # lookup/requested field missing: mapping configuration
    "1011": S,  # field not usable as filter: mapping configuration
}  # fmt: skip

# reference/marketo-api.md §3.2.
RECORD_EXPECTED = {
    "1001": D, "1002": D, "1003": D, "1004": D, "1005": D, "1006": D, "1007": D, "1008": D,
    "1009": D, "1010": D, "1011": D, "1013": D, "1015": D, "1017": D, "1021": D, "1025": D,
    "1036": D, "1037": D,
    "1014": X, "1016": X, "1019": X, "1022": X, "1029": X,
}  # fmt: skip


def test_table_is_versioned() -> None:
    assert CLASSIFICATION_VERSION
    assert response_failure("606", "x").table_version == CLASSIFICATION_VERSION


@pytest.mark.parametrize(("code", "expected"), sorted(RESPONSE_EXPECTED.items()))
def test_response_codes(code: str, expected: FailureClass) -> None:
    assert classify_response_code(code) == (expected, True)


@pytest.mark.parametrize(("code", "expected"), sorted(RECORD_EXPECTED.items()))
def test_record_codes(code: str, expected: FailureClass) -> None:
    assert classify_record_code(code) == (expected, True)


def test_every_table_entry_is_covered_by_these_tests() -> None:
    assert set(RESPONSE_CODES) - set(RESPONSE_EXPECTED) <= {"616", "1001", "1002", "1029"}
    assert set(RECORD_CODES) - set(RECORD_EXPECTED) <= {"1012", "1018"}


def test_unknown_response_code_is_technical_and_flagged() -> None:
    assert classify_response_code("799") == (X, False)
    failure = response_failure("799", "something new")
    assert failure.kind is X
    assert not failure.known
    assert failure.code == "799"
    assert failure.message == "something new"


def test_unknown_record_codes() -> None:
    # A record Marketo looked at and refused will be refused again: data, but flagged unknown.
    assert classify_record_code("1099") == (D, False)
    assert classify_record_code("abc") == (X, False)
    assert classify_record_code("") == (X, False)


def test_codes_are_matched_as_strings_with_whitespace_tolerated() -> None:
    assert classify_response_code(" 606 ") == (T, True)
    assert record_failure(" 1004", "Lead not found").code == "1004"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, T),
        (401, A),
        (403, A),
        (408, X),
        (500, X),
        (502, X),
        (503, X),
        (504, X),
        (400, S),
        (404, S),
        (405, S),
        (413, S),
        (414, S),
    ],
)
def test_http_statuses(status: int, expected: FailureClass) -> None:
    assert classify_http_status(status) is expected


def test_only_technical_spends_a_retry() -> None:
    assert [c for c in FailureClass if c.uses_retry] == [X]


def test_failure_keeps_marketo_code_and_message() -> None:
    failure = record_failure("1007", "Multiple lead match lookup criteria", request_id="r#1")
    assert (failure.kind, failure.code, failure.source) == (D, "1007", "record")
    assert failure.message == "Multiple lead match lookup criteria"
    assert failure.request_id == "r#1"
    error = MarketoError(failure)
    assert error.kind is D
    assert "1007" in str(error)
    assert "Multiple lead match" in str(error)


def test_failure_describe() -> None:
    assert MarketoFailure(kind=S, code="603", message="Access denied").describe() == (
        "systemic 603: Access denied"
    )
    assert MarketoFailure(kind=X, code=None, message="boom").describe() == "technical: boom"
