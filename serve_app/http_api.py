"""The HTTP routes: matches, history, stats, pool and health."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from serve_app.gateway import (
    GatewayCore,
    Refused,
    json_object,
    refusal_for,
    token_hash,
)
from serve_app.views import public_timeline

Handler = Callable[[Request], Awaitable[Response]]
_MAX_BODY_BYTES = 4096
_STATUS = {
    "match_full": 409,
    "match_ended": 409,
    "invite_expired": 409,
    "rate_limited": 429,
    "server_error": 500,
    "unavailable": 503,
    "engine_unavailable": 503,
    "match_unavailable": 503,
}


class HttpApi:
    """Route handlers bound to the gateway and the read-side actors."""

    def __init__(
        self,
        core: GatewayCore,
        projector: Any,
        orchestrators: list[Any],
        health: dict[str, Any],
    ) -> None:
        self.core = core
        self.projector = projector
        self.orchestrators = orchestrators
        self.health = health

    async def create_match(self, request: Request) -> Response:
        """``POST /api/matches``: create a match and seat the caller."""
        body = await _json_body(request)
        template = _field(body, "template", str, "classic")
        humans = _field(body, "humans", int, None)
        robots = _field(body, "robots", int, None)
        seat, outcome = await self.core.create(template, humans, robots)
        return JSONResponse(
            {
                "match_id": seat.match_id,
                "token": seat.token,
                "invite_code": outcome.data.get("invite_code"),
            },
            status_code=201,
        )

    async def join_match(self, request: Request) -> Response:
        """``POST /api/matches/join``: take a seat behind an invite code."""
        body = await _json_body(request)
        seat, _ = await self.core.join(_field(body, "code", str, None))
        return JSONResponse({"match_id": seat.match_id, "token": seat.token})

    async def match(self, request: Request) -> Response:
        """``GET /api/matches/{id}``: the timeline, redacted until the reveal."""
        match_id = request.path_params["match_id"]
        found = await self.projector.timeline.remote(match_id)
        if found is None:
            raise Refused("unknown_match", f"no match {match_id!r} in the history")
        events, finished = found
        return JSONResponse(
            {
                "match_id": match_id,
                "finished": finished,
                "timeline": public_timeline(events, finished),
            }
        )

    async def player_matches(self, request: Request) -> Response:
        """``GET /api/players/{token}/matches?cursor=``: a page of past matches."""
        token = request.path_params["token"]
        try:
            cursor = int(request.query_params.get("cursor", "0"))
        except ValueError as exc:
            raise Refused(
                "bad_cursor", "cursor is a number from a next_cursor"
            ) from exc
        if cursor < 0:
            raise Refused("bad_cursor", "cursor cannot be negative")
        limit = self.core.settings.serve.history_page_size
        items, next_cursor = await self.projector.player_matches.remote(
            token_hash(token), cursor, limit
        )
        return JSONResponse({"matches": items, "next_cursor": next_cursor})

    async def stats(self, _request: Request) -> Response:
        """``GET /api/stats``: live analytics folded from the streams."""
        return JSONResponse(await self.projector.stats.remote())

    async def pool(self, _request: Request) -> Response:
        """``GET /api/pool``: every orchestrator's status per persona."""
        statuses = await asyncio.gather(
            *(o.status.remote() for o in self.orchestrators)
        )
        return JSONResponse({"orchestrators": list(statuses)})

    async def healthz(self, _request: Request) -> Response:
        """``GET /healthz``: the broker and the topics in use."""
        return JSONResponse({"status": "ok", **self.health})


def refusals(handler: Handler) -> Handler:
    """Answer a refusal, or a backend error, with a JSON error and a fitting status.

    Args:
        handler: a route handler that may raise ``Refused`` or a project error.

    Returns:
        The handler, answering ``{"error", "message"}`` with the status of
        the code (404 for ``unknown_*``, 400 for other client errors) for
        every error ``refusal_for`` knows; other errors propagate.
    """

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            refused = refusal_for(exc)
            if refused is None:
                raise
            return JSONResponse(
                {"error": refused.code, "message": refused.message},
                status_code=status_of(refused.code),
            )

    return wrapped


def status_of(code: str) -> int:
    """The HTTP status of a refusal code."""
    return _STATUS.get(code, 404 if code.startswith("unknown_") else 400)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY_BYTES:
        raise Refused("bad_frame", f"bodies are at most {_MAX_BODY_BYTES} bytes")
    return json_object(raw or b"{}", "the body")


def _field(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = body.get(name, default)
    if value is None and default is None and name not in body:
        if name == "code":
            raise Refused("bad_frame", "'code' is required")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Refused(
            "bad_frame", f"{name!r} must be {kind.__name__}, got {value!r:.40}"
        )
    return value
