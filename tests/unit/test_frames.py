"""Parsing frames and bodies: every bad one is refused with a code and a reason."""

from __future__ import annotations

import pytest

from serve_app.gateway import Refused, json_object


@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        pytest.param("{", "bad_json", "not valid JSON", id="truncated"),
        pytest.param("[" * 5000 + "]" * 5000, "bad_json", "Recursion", id="deep"),
        pytest.param(b"\xff\xfe", "bad_json", "not valid JSON", id="not-utf8"),
        pytest.param("[1, 2]", "bad_frame", "got list", id="array"),
        pytest.param('"text"', "bad_frame", "got str", id="string"),
        pytest.param('{"text": "tea \\ud800"}', "bad_frame", "surrogate", id="lone"),
    ],
)
def test_json_object_refuses(raw: str | bytes, code: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        json_object(raw, "a frame")

    assert refused.value.code == code
    assert reason in refused.value.message


def test_json_object_keeps_surrogate_pairs_and_nesting() -> None:
    frame = json_object(
        '{"text": "\\ud83e\\udd16", "a": ' + "[" * 200 + "]" * 200 + "}", "a frame"
    )

    assert frame["text"] == "\U0001f916"
