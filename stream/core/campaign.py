"""Which Marketo campaign a flow requests for a change (DESIGN 5, "Campaign ID").

The event question named in the flow wins when the event has a value for it, so one flow can
serve events that each have their own campaign; otherwise the flow's own campaign id applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from config.models import CampaignRule
from stream.certain.events import QuestionValue
from stream.core.context import EVENT_QUESTIONS_PREFIX
from stream.core.results import DataFailure

_DIGITS = re.compile(r"\d+")


def question_value(questions: Mapping[str, QuestionValue], code: str) -> QuestionValue:
    """The event's answer to question `code` (exact code first, then ignoring case)."""
    if code in questions:
        return questions[code]
    key = code.strip().casefold()
    return next((v for k, v in questions.items() if k.strip().casefold() == key), None)


def _is_blank(value: QuestionValue) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_campaign_id(value: QuestionValue) -> int | None:
    """A positive whole number, from JSON text or number; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value > 0 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
        return number if number > 0 else None
    return None


def resolve_campaign_id(
    rule: CampaignRule | None, event_questions: Mapping[str, QuestionValue]
) -> int | DataFailure:
    question = rule.event_question if rule is not None else None
    if question:
        value = question_value(event_questions, question)
        if not _is_blank(value):
            number = parse_campaign_id(value)
            if number is None:
                return DataFailure(
                    field=f"{EVENT_QUESTIONS_PREFIX}{question}",
                    reason=(
                        f"event question {question!r} holds {value!r}; "
                        "expected a positive whole number (a Marketo campaign id)"
                    ),
                )
            return number
    if rule is not None and rule.campaign_id is not None:
        return rule.campaign_id
    if question:
        reason = f"the event has no value for question {question!r} and the flow no campaign id"
    else:
        reason = "the flow has no campaign id and no campaign event question"
    return DataFailure(field="campaign_id", reason=reason)
