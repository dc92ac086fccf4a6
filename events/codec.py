"""Encoding and decoding of envelopes, with the versioning rule.

Versioning rule: ``schema_version`` is ``MAJOR.MINOR``. A reader accepts any
record of its own major version. A newer minor version may only add optional
fields (with defaults) at the top level of an existing payload or of the
envelope; a reader drops the fields it does not know from such a record.
Fields inside nested objects (a seat of ``MatchStarted``, say) are not
dropped, so adding one there takes a new major version. It never removes or renames a
field, changes a field's meaning or type, or adds a payload type: those need a
new major version, which an older reader refuses with an ``EventDecodeError``.
Records of the reader's own or an older minor version must not carry unknown
fields.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from events.envelope import (
    SCHEMA_MAJOR,
    SCHEMA_MINOR,
    Envelope,
    EnvelopeMismatch,
    Payload,
)
from events.errors import EventDecodeError

_PAYLOAD_ADAPTER: TypeAdapter[Payload] = TypeAdapter(Payload)
_PAYLOAD_TYPES: dict[str, type[BaseModel]] = {}


def _payload_types() -> dict[str, type[BaseModel]]:
    if not _PAYLOAD_TYPES:
        union = Payload.__origin__  # type: ignore[attr-defined]
        for model in union.__args__:
            _PAYLOAD_TYPES[model.model_fields["type"].default] = model
    return _PAYLOAD_TYPES


def encode(envelope: Envelope) -> bytes:
    """Serialize an envelope to UTF-8 JSON bytes."""
    return envelope.model_dump_json().encode()


def decode(data: bytes | str | None) -> Envelope:
    """Parse and validate one record value.

    Raises:
        EventDecodeError: the record is not JSON, has an unknown type or an
            unsupported version, or a field is missing or wrong. The error names
            the field, the value seen and what was expected. It is the only
            error raised, whatever the record holds.
    """
    if data is None:
        raise EventDecodeError("<record>", None, "a JSON object, got an empty value")
    try:
        return _decode(data)
    except EventDecodeError:
        raise
    except Exception as exc:
        # A hostile record must not stop a consumer's poll task: whatever
        # json or pydantic raise on it, the record is dead-lettered instead.
        raise EventDecodeError(
            "<record>",
            _preview(data),
            "a record the codec can decode; decoding failed with "
            f"{type(exc).__name__}: {exc}",
        ) from exc


def _decode(data: bytes | str) -> Envelope:
    try:
        envelope = Envelope.model_validate_json(data)
    except ValidationError as exc:
        return _decode_slowly(data, exc)
    check_version(envelope.schema_version)
    return envelope


def _decode_slowly(data: bytes | str, first_error: ValidationError) -> Envelope:
    """Explain a failed record, or accept it when it is a newer minor version."""
    try:
        raw = json.loads(data)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise _not_json(data, str(exc)) from exc
    except RecursionError as exc:
        # CPython's parser gives up near sys.getrecursionlimit() levels of
        # nesting with a RecursionError, which is not a ValueError.
        raise _not_json(data, "arrays or objects nested too deeply") from exc
    if not isinstance(raw, dict):
        raise EventDecodeError("<record>", raw, "a JSON object")

    minor = check_version(raw.get("schema_version"))
    _check_type(raw)
    if minor > SCHEMA_MINOR:
        raw = _drop_unknown_fields(raw)
        try:
            return Envelope.model_validate_json(json.dumps(raw))
        except ValidationError as exc:
            raise _translate(exc) from exc
    raise _translate(first_error) from first_error


def check_version(version: Any) -> int:
    """The minor version of a record this reader can read.

    Raises:
        EventDecodeError: not a "MAJOR.MINOR" string, or another major version.
    """
    if not isinstance(version, str):
        raise EventDecodeError(
            "schema_version", version, f'a "MAJOR.MINOR" string like "{SCHEMA_MAJOR}.0"'
        )
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise EventDecodeError("schema_version", version, 'a "MAJOR.MINOR" string')
    if int(major) != SCHEMA_MAJOR:
        raise EventDecodeError(
            "schema_version",
            version,
            f"major version {SCHEMA_MAJOR}; upgrade the reader to read this record",
        )
    return int(minor)


def _check_type(raw: dict[str, Any]) -> None:
    known = _payload_types()
    payload = raw.get("payload")
    kind = payload.get("type") if isinstance(payload, dict) else None
    if kind not in known:
        raise EventDecodeError(
            "payload.type", kind, f"one of {', '.join(sorted(known))}"
        )


def _drop_unknown_fields(raw: dict[str, Any]) -> dict[str, Any]:
    model = _payload_types()[raw["payload"]["type"]]
    payload = {k: v for k, v in raw["payload"].items() if k in model.model_fields}
    envelope = {k: v for k, v in raw.items() if k in Envelope.model_fields}
    envelope["payload"] = payload
    return envelope


def _translate(exc: ValidationError) -> EventDecodeError:
    error = exc.errors(include_url=False)[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, EnvelopeMismatch):
        return EventDecodeError(cause.field, cause.value, cause.expected)
    if error["type"] == "json_invalid":
        raw = error.get("input")
        shown = raw if isinstance(raw, bytes | str) else str(raw)
        return _not_json(shown, str(cause or error["msg"]))
    loc = [str(part) for part in error["loc"]]
    # A discriminated union puts the payload type into the location path;
    # readers think of ``payload.text``, not ``payload.answer_submitted.text``.
    if len(loc) >= 2 and loc[0] == "payload" and loc[1] in _payload_types():
        del loc[1]
    field = ".".join(loc) or "<record>"
    if error["type"] == "timezone_offset":
        return EventDecodeError(field, error.get("input"), "a UTC timestamp")
    return EventDecodeError(field, error.get("input"), error["msg"].lower())


def _not_json(data: bytes | str, reason: str) -> EventDecodeError:
    return EventDecodeError(
        "<record>",
        _preview(data),
        f"valid JSON; the record is not valid JSON: {reason}",
    )


def _preview(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[:60]


def decode_payload(data: dict[str, Any]) -> Payload:
    """Validate a bare payload dict (used by tests and tools)."""
    return _PAYLOAD_ADAPTER.validate_python(data, strict=False)
