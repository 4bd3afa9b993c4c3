"""Program status answers from plain bytes: results by position, a backward move is its own
result (`not_changed`), other skips keep their failure class, a short answer fails every lead."""

from __future__ import annotations

import json
from typing import Any

from stream.marketo.errors import FailureClass
from stream.marketo.protocol import (
    Answer,
    match_program_records,
    parse_envelope,
    program_status_body,
    program_status_path,
)
from stream.marketo.results import Channel, Program

PATH = program_status_path(1044)


def answer_of(value: Any) -> Answer:
    envelope, failure, rid = parse_envelope(200, json.dumps(value).encode(), PATH)
    return Answer(envelope, failure, 200, rid)


def test_request_shape() -> None:
    assert PATH == "/rest/v1/programs/1044/members/status.json"
    assert json.loads(program_status_body("Attended", [5, 6])) == {
        "statusName": "Attended",
        "input": [{"leadId": 5}, {"leadId": 6}],
    }


def test_created_updated_and_backward_moves_by_position() -> None:
    answer = answer_of(
        {
            "requestId": "r#1",
            "success": True,
            "result": [
                {"seq": 0, "leadId": 5, "status": "created"},
                {"seq": 1, "leadId": 6, "status": "updated"},
                {
                    "seq": 2,
                    "leadId": 7,
                    "status": "skipped",
                    "reasons": [{"code": "1037", "message": "Lead already in or past status"}],
                },
                {
                    "seq": 3,
                    "status": "skipped",
                    "reasons": [{"code": "1004", "message": "Lead not found"}],
                },
            ],
        }
    )
    results = match_program_records([10, 11, 12, 13], [5, 6, 7, 8], answer, PATH)
    assert [(r.index, r.status, r.lead_id, r.ok) for r in results] == [
        (10, "created", 5, True),
        (11, "updated", 6, True),
        (12, "not_changed", 7, True),
        (13, "skipped", 8, False),
    ]
    assert results[2].detail == "Lead already in or past status"
    assert results[2].request_id == "r#1"
    assert results[3].failure_class is FailureClass.DATA
    assert results[3].failure is not None and results[3].failure.code == "1004"


def test_a_result_list_that_does_not_line_up_fails_every_lead() -> None:
    answer = answer_of({"requestId": "r#2", "success": True, "result": [{"status": "updated"}]})
    results = match_program_records([0, 1], [5, 6], answer, PATH)
    assert all(r.failure is not None and r.failure.code == "result-mismatch" for r in results)
    assert [r.lead_id for r in results] == [5, 6]


def test_request_level_status_not_found_is_configuration() -> None:
    _, failure, _ = parse_envelope(
        200,
        json.dumps(
            {"requestId": "r", "success": False, "errors": [{"code": "1025", "message": "x"}]}
        ).encode(),
        PATH,
    )
    assert failure is not None and failure.kind is FailureClass.SYSTEMIC


def test_channel_and_program_items() -> None:
    channel = Channel.from_api(
        {
            "id": 1,
            "name": "Webinar",
            "applicableProgramType": "event",
            "progressionStatuses": [
                {"name": "Registered", "step": 20, "success": False},
                {"name": "Attended", "step": 40, "success": True},
                "junk",
            ],
        }
    )
    assert [(s.name, s.step, s.success) for s in channel.statuses] == [
        ("Registered", 20, False),
        ("Attended", 40, True),
    ]
    program = Program.from_api({"id": 1044, "name": "P", "channel": "Webinar", "type": 3})
    assert (program.id, program.channel, program.type) == (1044, "Webinar", None)
