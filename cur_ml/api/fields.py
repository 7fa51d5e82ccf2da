"""Field types shared by every request model and parameter: what a store can hold, and times.

One type per kind of value, so that a check is written once and documented where it is
enforced: every text a client sends is `Text` (no NUL — PostgreSQL text cannot hold it —
and valid Unicode: a lone surrogate cannot be encoded to UTF-8), every time in a query is
`QueryTime` (ISO 8601 only, as UTC), an appeal's `created_at` is `AppealTime`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, StrictStr
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

__all__ = [
    "APPEAL_TIME_PATTERN",
    "NON_BLANK_PATTERN",
    "NO_NUL_PATTERN",
    "AppealTime",
    "NonBlankText",
    "QueryTime",
    "Text",
    "text_problem",
]

#: ECMA-262 and Python alike: a string without NUL characters.
NO_NUL_PATTERN = r"^[^\u0000]*$"
#: RFC 3339 date-time (`format: date-time`) in the years the model can read, 1900-2200.
APPEAL_TIME_PATTERN = (
    r"^(19[0-9]{2}|2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
#: Characters `str.strip` removes (Python's whitespace), spelt out: `\s` differs by engine.
_SPACE = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: No NUL, and one character at least that is not whitespace.
NON_BLANK_PATTERN = rf"^[^\u0000]*[^\u0000{_SPACE}][^\u0000]*$"
_ISO_EXAMPLE = "e.g. 2024-05-14T09:30:00+03:00"

#: Every text field of a request body and every text parameter (add lengths at the use:
#: `Annotated[Text, Field(max_length=128)]`). pydantic-core checks it natively: the pattern
#: refuses NUL, and a lone surrogate fails the string's conversion to UTF-8; `text_problem`
#: words both for the answer.
Text = Annotated[StrictStr, Field(pattern=NO_NUL_PATTERN)]
#: A `Text` that says something: blank values are refused (labels, correction values).
NonBlankText = Annotated[StrictStr, Field(pattern=NON_BLANK_PATTERN)]


def text_problem(error_type: str, value: Any) -> str | None:
    """The problem of a `Text` value as a client should read it (None: not a `Text` error)."""
    if not isinstance(value, str):
        return None
    if error_type == "string_pattern_mismatch":
        if "\x00" in value:
            return f"contains a NUL character at position {value.index(chr(0))}"
        if not value.strip():
            return "must not be empty or only spaces"
    if error_type == "string_unicode":
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"contains a character that is not valid Unicode at position {exc.start}"
    return None


def _iso(value: Any) -> datetime:
    """An ISO 8601 string as a datetime; numbers (Unix times) and other forms are refused."""
    if isinstance(value, datetime):
        return value
    try:
        if not isinstance(value, str):
            raise ValueError
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"is not an ISO 8601 date-time, {_ISO_EXAMPLE}") from None


def _as_utc(value: Any) -> datetime:
    """A query-string time as UTC (without an offset it is taken as UTC). A bound that
    leaves Python's datetime range once converted is the end of that range: it selects the
    same rows."""
    when = _iso(value)
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:
        return (datetime.min if when.year == 1 else datetime.max).replace(tzinfo=UTC)


class _QueryTime:
    """Annotation: `_as_utc` is the whole validation, documented as `format: date-time`."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_as_utc)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time"}


#: A time in a query string (`since`, `until`): ISO 8601 only (pydantic alone would take
#: `0.5` as a Unix time), as UTC.
QueryTime = Annotated[datetime, _QueryTime()]


def _appeal_time(value: str) -> str:
    """`created_at`: an ISO 8601 string in 1900-2200 (the years the model reads), stripped."""
    when = _iso(value)
    if not 1900 <= when.year <= 2200:
        raise ValueError(f"year {when.year} is out of range (1900-2200)")
    return value.strip()


class _AppealTimeDoc:
    """Annotation: documents `created_at` as RFC 3339 in the years accepted."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out.update(format="date-time", pattern=APPEAL_TIME_PATTERN)
        return out


#: An appeal's `created_at`, kept as the string sent (stripped). Documented as RFC 3339;
#: the other forms of ISO 8601 (a date alone, no offset, a space for `T`) are accepted too.
AppealTime = Annotated[Text, AfterValidator(_appeal_time), _AppealTimeDoc()]
