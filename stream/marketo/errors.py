"""Failure classification for Marketo calls.

Every failure the client sees ends up in exactly one class, because the class decides what the rest
of Signal does with it: auth and throttle are absorbed by the client, quota parks work until the
daily reset, technical failures use up automatic retries, systemic failures open the connection's
breaker (retrying would only repeat them), and data failures wait for an operator.

The tables are versioned: outcome rows keep the version they were classified with, so a change of
mind about a code can be told apart from a change in Marketo's behaviour. Unknown codes are
technical and flagged `known=False` so they raise an alert instead of being silently retried or
dropped.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final, Literal

CLASSIFICATION_VERSION: Final = "2026-12-05.1"


class FailureClass(enum.StrEnum):
    AUTH = "auth"
    THROTTLE = "throttle"
    QUOTA = "quota"
    TECHNICAL = "technical"
    SYSTEMIC = "systemic"
    DATA = "data"

    @property
    def uses_retry(self) -> bool:
        """Only technical failures spend one of the delivery's automatic retries."""
        return self is FailureClass.TECHNICAL


_A, _T, _Q, _X, _S, _D = (
    FailureClass.AUTH,
    FailureClass.THROTTLE,
    FailureClass.QUOTA,
    FailureClass.TECHNICAL,
    FailureClass.SYSTEMIC,
    FailureClass.DATA,
)

# Codes in a `success:false` envelope: the request as a whole was not executed.
RESPONSE_CODES: Final[Mapping[str, FailureClass]] = MappingProxyType(
    {
        "502": _X,  # bad gateway: Marketo's docs say back off and retry
        "601": _A,  # access token invalid
        "602": _A,  # access token expired
        "603": _S,  # access denied: role or IP allow-list
        "604": _X,  # request timed out on Marketo's side
        "605": _S,  # HTTP method not supported
        "606": _T,  # rate limit (100 calls / 20 s)
        "607": _Q,  # daily quota
        "608": _X,  # API temporarily unavailable
        "609": _S,  # invalid JSON
        "610": _S,  # requested resource not found: wrong URL or path
        "611": _X,  # system error
        "612": _S,  # invalid content type
        "613": _S,  # invalid multipart request
        "614": _X,  # invalid subscription: in practice Marketo being briefly unreachable
        "615": _T,  # concurrent access limit (10 in flight)
        "616": _S,  # invalid subscription type
        "701": _S,  # cannot be blank
        "702": _S,  # no data found for the given search
        "703": _S,  # feature not enabled on the subscription
        "704": _S,  # invalid date format
        "709": _S,  # business rule violation
        "710": _S,  # parent folder not found
        "711": _S,  # incompatible folder type
        "713": _X,  # transient error
        "719": _X,  # lock wait timeout
        "1001": _S,  # invalid paging token / date: a request Signal built wrongly
        "1002": _S,  # missing required parameter: a request Signal built wrongly
        "1003": _S,  # campaign cannot be requested (batch, no API trigger), or invalid request
        "1006": _S,  # lookup or requested field does not exist: mapping configuration
        "1011": _S,  # field cannot be used as lookup or filter: mapping configuration
        "1013": _S,  # unknown campaign (or other object the configuration names)
        "1025": _S,  # program status not in the program's channel: flow configuration
        "1029": _X,  # too many jobs in the queue
    }
)

# Codes in a record's `reasons`: that record was skipped, the others may have succeeded.
RECORD_CODES: Final[Mapping[str, FailureClass]] = MappingProxyType(
    {
        "1001": _D,  # invalid value type
        "1002": _D,  # missing required value
        "1003": _D,  # invalid data (bad field value, id with createOnly, ...)
        "1004": _D,  # lead not found (updateOnly)
        "1005": _D,  # lead already exists (createOnly)
        "1006": _D,  # field not found
        "1007": _D,  # multiple leads match the lookup
        "1008": _D,  # partition access denied
        "1009": _D,  # partition name required
        "1010": _D,  # partition update not allowed
        "1011": _D,  # field not supported as lookup or filter
        "1012": _D,  # invalid cookie value
        "1013": _D,  # object not found
        "1014": _X,  # failed to create object
        "1015": _D,  # lead not in list
        "1016": _X,  # too many imports
        "1017": _D,  # object already exists
        "1018": _D,  # CRM enabled: action not allowed
        "1019": _X,  # import in progress
        "1021": _D,  # company update not allowed during sync
        "1022": _X,  # object in use
        "1025": _D,  # program status not found
        "1029": _X,  # too many jobs in the queue
        "1036": _D,  # duplicate key in input
        "1037": _D,  # lead already in or past that status
    }
)


def classify_response_code(code: str) -> tuple[FailureClass, bool]:
    """Class of a request-level code and whether the table knows it."""
    cls = RESPONSE_CODES.get(code.strip())
    return (cls, True) if cls is not None else (FailureClass.TECHNICAL, False)


def classify_record_code(code: str) -> tuple[FailureClass, bool]:
    """Class of a record-level reason code and whether the table knows it.

    Unknown 1xxx codes on a record are data: the record was looked at and refused, so sending it
    again unchanged would be refused again. Anything else unknown is treated as technical.
    """
    code = code.strip()
    cls = RECORD_CODES.get(code)
    if cls is not None:
        return cls, True
    if len(code) == 4 and code.startswith("1") and code.isdigit():
        return FailureClass.DATA, False
    return FailureClass.TECHNICAL, False


def classify_http_status(status: int) -> FailureClass:
    """Class of a non-200 HTTP answer from a REST endpoint (not identity)."""
    if status == 429:
        return FailureClass.THROTTLE
    if status in (401, 403):
        return FailureClass.AUTH
    if status in (408,) or status >= 500:
        return FailureClass.TECHNICAL
    # 404/405 = wrong base URL or path; 413/414 not fixed by splitting; other 4xx = a request we
    # built wrongly. None of these get better by sending the same request again.
    return FailureClass.SYSTEMIC


Source = Literal["marketo", "record", "http", "transport", "identity", "local"]


@dataclass(frozen=True, slots=True)
class MarketoFailure:
    """One classified failure, keeping Marketo's own code and message.

    `code` is Marketo's code (a string, as Marketo sends it) when Marketo gave one; for HTTP,
    transport and local failures it names the condition (`http-413`, `timeout`, `refused` ...).
    `retry_at` is set for quota (the daily reset) and for throttle failures that outlasted the
    client's patience.
    """

    kind: FailureClass
    code: str | None
    message: str
    source: Source = "marketo"
    http_status: int | None = None
    request_id: str | None = None
    endpoint: str | None = None
    retry_at: datetime | None = None
    known: bool = True
    table_version: str = CLASSIFICATION_VERSION

    def describe(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.kind.value}{code}: {self.message}"


WITHDRAWN = "withdrawn"
"""The code of a call its `before_send` hook withdrew (`CallWithdrawn`): nothing was sent."""


class CallWithdrawn(Exception):
    """Raised by a call's `before_send` hook: the call must not go out after all, because its
    caller no longer owns the requests (another worker may be delivering them). The transport
    sends nothing and answers with a local `withdrawn` failure carrying this message."""


def withdrawn(withdrawal: CallWithdrawn, endpoint: str | None = None) -> MarketoFailure:
    """The failure of a call withdrawn before it went out (nothing was sent)."""
    return MarketoFailure(
        kind=FailureClass.TECHNICAL,
        code=WITHDRAWN,
        message=f"not sent: {withdrawal}",
        source="local",
        endpoint=endpoint,
    )


def not_run(failure: MarketoFailure) -> bool:
    """Whether a failed call certainly did not run: Marketo answered it (an error envelope, a
    record-level reason, a 4xx), or it never left (local checks, identity). A timeout, a dropped
    connection or a 5xx may have run on Marketo's side."""
    if failure.source in ("marketo", "record", "local", "identity"):
        return True
    if failure.source == "http" and failure.http_status is not None:
        status = failure.http_status
        return status < 500 and classify_http_status(status) is not FailureClass.TECHNICAL
    return False


class MarketoError(Exception):
    """A call-level failure surfaced by a read or admin operation.

    Record-level outcomes are never raised: they come back as result values.
    """

    def __init__(self, failure: MarketoFailure) -> None:
        super().__init__(failure.describe())
        self.failure = failure

    @property
    def kind(self) -> FailureClass:
        return self.failure.kind


def response_failure(
    code: str,
    message: str,
    *,
    http_status: int | None = 200,
    request_id: str | None = None,
    endpoint: str | None = None,
) -> MarketoFailure:
    kind, known = classify_response_code(code)
    return MarketoFailure(
        kind=kind,
        code=code.strip(),
        message=message,
        source="marketo",
        http_status=http_status,
        request_id=request_id,
        endpoint=endpoint,
        known=known,
    )


def record_failure(
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    endpoint: str | None = None,
) -> MarketoFailure:
    kind, known = classify_record_code(code)
    return MarketoFailure(
        kind=kind,
        code=code.strip(),
        message=message,
        source="record",
        http_status=200,
        request_id=request_id,
        endpoint=endpoint,
        known=known,
    )
