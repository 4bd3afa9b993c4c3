"""What the property-based fuzz tests share: their budget and a real control process to aim at.

Budget: `SIGNAL_FUZZ_EXAMPLES` examples per test (default 30, a few seconds each inside
`just test`); a longer hunt: `SIGNAL_FUZZ_EXAMPLES=5000 just test -n 0 tests/fuzz`. No deadline
(a loaded machine is not a failure); failing examples are kept in `.hypothesis/` and replayed
first on the next run.
"""

from __future__ import annotations

import http.client
import json
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings

from tests.support.processes import ControlProcess

FUZZ_EXAMPLES = int(os.environ.get("SIGNAL_FUZZ_EXAMPLES", "30"))

fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
)
"""The settings of every fuzz test."""

REQUEST_TIMEOUT_S = 120.0


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    control: ControlProcess,
    method: str,
    path: str,
    body: bytes,
    content_type: str = "application/json",
) -> Answer:
    """One request to control's operator API, with its token; a 500 fails the test at once
    with the end of control's log (its traceback)."""
    host, port = control.api.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request(
            method, path, body=body, headers=control.auth(**{"Content-Type": content_type})
        )
        response = connection.getresponse()
        answer = Answer(response.status, response.read())
    finally:
        connection.close()
    assert answer.status < 500, (
        f"{method} {path} answered {answer.status}: {answer.body[:500]!r}\n"
        f"--- control's log:\n{control.tail(4000)}"
    )
    return answer


def sql_scalar(control: ControlProcess, sql: str) -> Any:
    answer = call(control, "POST", "/api/v1/sql", json.dumps({"sql": sql}).encode())
    assert answer.status == 200, answer.body[:500]
    return answer.json()["rows"][0][0]
