"""Mapping a change to Marketo fields and program tokens (DESIGN 5, "Mapping").

Each target field reads its source paths, skips the empty ones, joins the rest with the field's
separator and applies its transforms in the order given. When several sources are joined, each
is trimmed first, so `"Ana "` + `" Ruiz"` with separator `" "` reads `"Ana Ruiz"`. A field that
ends up empty is left out of the payload rather than sent blank, so a missing value never erases
what Marketo already has; when the field is required, that is a data failure naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from config.models import FieldMapping, Transform
from config.models import Mapping as FieldMap
from stream.core.context import ChangeContext
from stream.core.results import DataFailure

_LETTERS = re.compile(r"[^\W\d_]+")
_LETTER = re.compile(r"[^\W\d_]")


def proper_case(text: str) -> str:
    """Capitalise each word: `ana MARIA` → `Ana Maria`, `o'neil-smith` → `O'Neil-Smith`,
    `don't` → `Don't`, `3rd ave` → `3rd Ave`.

    A word after an apostrophe is capitalised only when one lone letter stands before the
    apostrophe (O'Neil, not Don'T); that is decided from the two characters before it, so the
    work stays linear in the text: a registrant's `a'a'a'…` name of a megabyte must not hold a
    worker (looking back over the whole prefix for each word took minutes)."""
    lowered = text.lower()

    def letter_at(index: int) -> bool:
        return index >= 0 and _LETTER.match(lowered, index) is not None

    def fix(match: re.Match[str]) -> str:
        word, start = match.group(), match.start()
        before = lowered[start - 1] if start else ""
        if before.isalnum():
            return word
        if before and before in "'’":
            single_letter = letter_at(start - 2) and not letter_at(start - 3)
            if not single_letter:
                return word
        return word[0].upper() + word[1:]

    return _LETTERS.sub(fix, lowered)


TRANSFORMS: dict[Transform, Callable[[str], str]] = {
    Transform.LOWER: str.lower,
    Transform.UPPER: str.upper,
    Transform.TRIM: str.strip,
    Transform.PROPER: proper_case,
}


def apply_transforms(value: str, transforms: Iterable[Transform]) -> str:
    for transform in transforms:
        value = TRANSFORMS[Transform(transform)](value)
    return value


def field_value(field: FieldMapping, ctx: ChangeContext) -> str:
    """One source passes through as it is (its transforms decide); several are each trimmed
    before joining, so the separator alone sets the spacing between them."""
    parts = [ctx.text(source) for source in field.sources]
    if len(parts) == 1:
        joined = parts[0]
    else:
        joined = field.separator.join(part.strip() for part in parts if part.strip())
    return apply_transforms(joined, field.transforms)


def map_fields(mapping: FieldMap, ctx: ChangeContext) -> dict[str, str] | DataFailure:
    """The Marketo payload, or the first required field that came out empty."""
    payload: dict[str, str] = {}
    for field in mapping.fields:
        value = field_value(field, ctx)
        if value.strip():
            payload[field.target] = value
        elif field.is_required:
            sources = ", ".join(field.sources) or "no source fields"
            return DataFailure(
                field=field.target,
                reason=f"required field {field.target!r} is empty (from {sources})",
            )
    return payload


def map_tokens(tokens: Mapping[str, str], ctx: ChangeContext) -> dict[str, str]:
    """Program tokens (`{{my.x}}` → source path), read like fields; empty ones are left out so
    the program's default applies."""
    values = {name: ctx.text(path) for name, path in tokens.items()}
    return {name: value for name, value in values.items() if value.strip()}
