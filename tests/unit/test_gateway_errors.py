"""Errors from engines and actors reach a client as a refusal with a clear code."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    GetTimeoutError,
    RayTaskError,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from actors.errors import UnknownMatch, WrongEngine
from events import ConfigError, DeliveryError, EventDecodeError
from game import GameError, RuleViolation, TemplateError
from serve_app.gateway import Refused, refusal_for
from serve_app.http_api import refusals, status_of


def from_actor(cause: BaseException, method: str = "submit_answer") -> RayTaskError:
    """The error Ray raises in the caller when an actor method raised ``cause``."""
    return RayTaskError(
        method,
        f"Traceback (most recent call last):\n  {type(cause).__name__}: {cause}",
        cause,
        proctitle="ray::MatchEngine",
        pid=4242,
        ip="10.0.0.7",
    )


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        pytest.param(
            Refused("bad_token", "not yours"), "bad_token", "not yours", id="refused"
        ),
        pytest.param(
            RuleViolation("self_vote", "a seat cannot vote for itself"),
            "self_vote",
            "cannot vote for itself",
            id="rule",
        ),
        pytest.param(
            TemplateError("unknown template 'solo'"),
            "bad_template",
            "'solo'",
            id="template",
        ),
        pytest.param(UnknownMatch("m-1"), "unknown_match", "'m-1'", id="unknown"),
        pytest.param(
            WrongEngine("m-1", 0, 2), "unavailable", "engine 2 owns it", id="routing"
        ),
        pytest.param(
            DeliveryError("match-events", "m-1", "timed out"),
            "unavailable",
            "same command_id",
            id="delivery",
        ),
        pytest.param(ActorDiedError(), "unavailable", "restarting", id="died"),
        pytest.param(
            ActorUnavailableError("restarting", None),
            "unavailable",
            "restarting",
            id="actor-unavailable",
        ),
        pytest.param(GetTimeoutError(), "unavailable", "retry", id="timeout"),
        pytest.param(
            GameError("no robot personas are configured"),
            "server_error",
            "GameError",
            id="game",
        ),
        pytest.param(
            EventDecodeError("payload.round", -1, "a round from 1"),
            "server_error",
            "EventDecodeError",
            id="decode",
        ),
        pytest.param(ConfigError("bad"), "server_error", "ConfigError", id="config"),
    ],
)
def test_refusal_for_maps_project_errors(
    error: Exception, code: str, said: str
) -> None:
    refused = refusal_for(error)

    assert refused is not None
    assert (refused.code, said in refused.message) == (code, True)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda e: from_actor(e).as_instanceof_cause(), id="dual"),
        pytest.param(from_actor, id="plain"),
        pytest.param(lambda e: from_actor(from_actor(e), "events_since"), id="nested"),
    ],
)
def test_refusal_for_unwraps_ray_task_errors(
    wrap: Callable[[BaseException], BaseException],
) -> None:
    raised = wrap(UnknownMatch("m-9"))

    refused = refusal_for(raised)

    assert refused is not None
    assert refused.code == "unknown_match"
    assert "'m-9'" in refused.message
    assert "Traceback" not in refused.message and "10.0.0.7" not in refused.message


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ValueError("a bug"), id="bug"),
        pytest.param(from_actor(KeyError("seat")), id="remote-bug"),
    ],
)
def test_refusal_for_leaves_bugs_alone(error: Exception) -> None:
    assert refusal_for(error) is None


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("bad_frame", 400, id="client"),
        pytest.param("bad_seq", 400, id="seq"),
        pytest.param("unknown_match", 404, id="unknown"),
        pytest.param("match_full", 409, id="conflict"),
        pytest.param("unavailable", 503, id="unavailable"),
        pytest.param("engine_unavailable", 503, id="engine"),
        pytest.param("server_error", 500, id="server"),
    ],
)
def test_status_of_code(code: str, status: int) -> None:
    assert status_of(code) == status


async def test_refusals_answers_an_engine_error_with_json() -> None:
    async def create(_request: Request) -> Response:
        raise from_actor(TemplateError("invalid timing override: rounds"))

    response = await refusals(create)(_request())

    assert response.status_code == 400
    assert json.loads(bytes(response.body)) == {
        "error": "bad_template",
        "message": "invalid timing override: rounds",
    }


async def test_refusals_answers_a_lost_broker_with_503() -> None:
    async def answer(_request: Request) -> Response:
        error = DeliveryError("match-events", "m-1", "broker down")
        raise from_actor(error).as_instanceof_cause()

    response = await refusals(answer)(_request())

    assert response.status_code == 503
    assert json.loads(bytes(response.body))["error"] == "unavailable"


async def test_refusals_lets_a_bug_through() -> None:
    async def broken(_request: Request) -> JSONResponse:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await refusals(broken)(_request())


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": []})
