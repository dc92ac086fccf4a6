"""The gateway's commands, shared by the WebSocket and the HTTP routes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayError, RayTaskError

from actors._engine_core import Outcome
from actors.engines import NAMESPACE, engine_index, engine_name, invite_engine
from actors.errors import ActorsError, MatchSetAside, UnknownMatch, WrongEngine
from configs import AppSettings
from events import BrokerError, EventsError
from game import GameError, RuleViolation, TemplateBook, TemplateError
from serve_app.feeds import FeedBook, MatchFeed

logger = logging.getLogger(__name__)

_ENGINE_RETRY_S = 30.0
# Calls of ``act_many`` on their way to one engine at a time; actions that
# come meanwhile wait for the next call, so batches grow with the load.
_CALLS_IN_FLIGHT = 2
_MAX_BATCH = 500

Action = tuple[str, str, str, str, str]


class Refused(Exception):
    """A request was refused; ``code`` and ``message`` go back to the client."""

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f"{code}: {message}")


def refusal_for(exc: BaseException) -> Refused | None:
    """The refusal a client is sent for an error raised while serving it.

    Ray re-raises an actor's error as a ``RayTaskError`` (usually made an
    instance of the cause's class too, by ``as_instanceof_cause``); the
    project error in its ``cause`` decides the code, and its text, not the
    remote traceback, makes the message.

    Args:
        exc: the error caught at the WebSocket or HTTP boundary.

    Returns:
        A ``Refused`` with a code listed in ``docs/protocol.md``, or ``None``
        for an error that is not the project's (a bug), to be re-raised.
    """
    cause = _cause(exc)
    match cause:
        case Refused():
            return cause
        case RuleViolation():
            return Refused(cause.code, cause.message)
        case TemplateError():
            return Refused("bad_template", str(cause))
        case UnknownMatch():
            return Refused(
                "unknown_match",
                f"no match {cause.match_id!r}: it never existed or ended too long "
                "ago; create or join another",
            )
        case MatchSetAside():
            # The reason names records and offsets: for operators, who find
            # it in the engine's log, not for players.
            return Refused(
                "match_unavailable",
                f"match {cause.match_id!r} takes no actions: its events could "
                "not be replayed when its engine restarted, and it waits for an "
                "operator to repair them; create or join another match",
            )
        case WrongEngine() | BrokerError() | RayError():
            logger.warning("backend unavailable error=%s", type(cause).__name__)
            return Refused("unavailable", _unavailable(cause))
        case GameError() | ActorsError() | EventsError():
            logger.error("request failed", exc_info=cause)
            return Refused(
                "server_error",
                f"the server failed ({type(cause).__name__}); retry later, "
                "and report it if it keeps happening",
            )
    return None


def json_object(raw: str | bytes, what: str) -> dict[str, Any]:
    """Parse a frame or a body that must be one JSON object of valid Unicode.

    Raises:
        Refused: ``bad_json`` for text that is not JSON (nesting too deep
            included), ``bad_frame`` for another value or a lone surrogate.
    """
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Refused("bad_json", f"not valid JSON: {exc.msg} at {exc.pos}") from exc
    except (ValueError, RecursionError) as exc:
        # CPython's parser gives up near 1000 levels of nesting with a
        # RecursionError, which is not a ValueError.
        raise Refused("bad_json", f"not valid JSON: {type(exc).__name__}") from exc
    if not isinstance(value, dict):
        raise Refused(
            "bad_frame", f"{what} is a JSON object, got {type(value).__name__}"
        )
    try:
        # A "\ud800" escape parses to a lone surrogate, which no event can
        # carry; refuse it here rather than fail when the event is encoded.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Refused(
            "bad_frame", f"{what} holds a lone surrogate at {exc.start}: not Unicode"
        ) from exc
    return value


@dataclass(frozen=True)
class Seat:
    """A player bound to a match by their token."""

    match_id: str
    player_id: str
    token: str


def token_hash(token: str) -> str:
    """The SHA-256 of a token: the only form in which tokens are kept."""
    return hashlib.sha256(token.encode()).hexdigest()


class EngineActions:
    """Players' answers and votes bound for one engine, sent in few calls.

    An action goes out at once while fewer than ``_CALLS_IN_FLIGHT`` calls
    are on their way; otherwise it waits and leaves with every other action
    that came meanwhile, in one ``act_many`` call. An idle gateway adds no
    delay, and a busy one makes one Ray call per batch instead of one per
    action, which was a quarter of its CPU.
    """

    def __init__(self, handle: Callable[[], Any]) -> None:
        self._handle = handle
        self._waiting: list[tuple[Action, asyncio.Future[Outcome]]] = []
        self._in_flight = 0
        self._calls: set[asyncio.Task[None]] = set()
        self.calls = 0

    def submit(self, action: Action) -> asyncio.Future[Outcome]:
        """Queue an action; the future holds its outcome or the error it met."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((action, future))
        self._send_some()
        return future

    def _send_some(self) -> None:
        while self._waiting and self._in_flight < _CALLS_IN_FLIGHT:
            batch = self._waiting[:_MAX_BATCH]
            del self._waiting[:_MAX_BATCH]
            self._in_flight += 1
            self.calls += 1
            task = asyncio.create_task(self._call(batch))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, batch: list[tuple[Action, asyncio.Future[Outcome]]]) -> None:
        try:
            results = await self._handle().act_many.remote([a for a, _ in batch])
        except Exception as exc:
            # The engine is unreachable (restarting, not found): every
            # action of the call meets the same error; callers retry.
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its player left meanwhile
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._send_some()


class GatewayCore:
    """Creates and joins matches, checks tokens, forwards actions to engines."""

    def __init__(self, settings: AppSettings, namespace: str = NAMESPACE) -> None:
        self.settings = settings
        self.namespace = namespace
        self.book = TemplateBook.load(settings.templates_file)
        self.feeds = FeedBook(self.engine_for)
        self._engines: dict[int, Any] = {}
        self._actions: dict[int, EngineActions] = {}
        self.open_sockets = 0

    def engine(self, index: int) -> Any:
        """The handle of engine ``index`` (looked up once)."""
        if index not in self._engines:
            try:
                self._engines[index] = ray.get_actor(
                    engine_name(index), namespace=self.namespace
                )
            except ValueError as exc:
                # ray.get_actor raises ValueError for a name no live actor has.
                raise Refused(
                    "engine_unavailable",
                    f"match engine {index} is not running; retry shortly",
                ) from exc
        return self._engines[index]

    def engine_for(self, match_id: str) -> Any:
        """The engine that owns a match."""
        return self.engine(engine_index(match_id, self.settings))

    def actions_for(self, match_id: str) -> EngineActions:
        """The action batches of the engine that owns a match."""
        index = engine_index(match_id, self.settings)
        if index not in self._actions:
            self._actions[index] = EngineActions(lambda: self.engine(index))
        return self._actions[index]

    async def create(
        self, template: str, humans: int | None = None, robots: int | None = None
    ) -> tuple[Seat, Outcome]:
        """Create a match on a random engine and seat the caller in it."""
        try:
            self.book.resolve(template, humans=humans, robots=robots)
        except TemplateError as exc:
            raise Refused("bad_template", str(exc)) from exc
        player_id, token = _new_player()
        index = random.randrange(self.settings.engine.engines)
        outcome: Outcome = await self.engine(index).create_match.remote(
            template,
            player_id,
            token_hash(token),
            humans=humans,
            robots=robots,
            timings=dict(self.settings.game.timings) or None,
        )
        _check(outcome)
        return Seat(outcome.match_id, player_id, token), outcome

    async def join(self, code: str) -> tuple[Seat, Outcome]:
        """Seat the caller in the match behind an invite code."""
        cleaned = code.strip().upper()
        if len(cleaned) != 6 or not cleaned.isalnum():
            raise Refused("unknown_invite", "an invite code has 6 letters and digits")
        player_id, token = _new_player()
        engine = self.engine(invite_engine(cleaned, self.settings.engine.engines))
        outcome: Outcome = await engine.join_by_code.remote(
            cleaned, player_id, token_hash(token)
        )
        _check(outcome)
        return Seat(outcome.match_id, player_id, token), outcome

    async def seat_of(self, match_id: str, token: str) -> tuple[Seat, MatchFeed]:
        """The player a token belongs to in a match, checked against its events."""
        feed = self.feeds.get(match_id)
        await feed.wait_until(1, timeout_s=5.0)
        if feed.lost or feed.state.settings is None:
            raise Refused("unknown_match", f"no match {match_id!r}")
        wanted = token_hash(token)
        for player_id, stored in feed.state.token_hashes.items():
            if hmac.compare_digest(stored, wanted):
                return Seat(match_id, player_id, token), feed
        raise Refused(
            "bad_token", "this token does not belong to a player of the match"
        )

    async def answer(self, seat: Seat, text: str, command_id: str) -> Outcome:
        """Forward an answer to the match's engine."""
        return await self._act(("answer", *self._ids(seat), text, command_id))

    async def vote(self, seat: Seat, target: str, command_id: str) -> Outcome:
        """Forward a vote to the match's engine."""
        return await self._act(("vote", *self._ids(seat), target, command_id))

    @staticmethod
    def _ids(seat: Seat) -> tuple[str, str]:
        return seat.match_id, seat.player_id

    async def _act(self, action: Action) -> Outcome:
        """Send an action to the match's engine; while it restarts, send again.

        Safe because every action carries a command id: a repeat of one
        that landed before the engine died is acknowledged with no change.
        The command id is made the player's own, so two players' ids never
        collide.

        Raises:
            Refused: the engine refused the action, or stayed unreachable.
        """
        kind, match_id, player_id, value, command_id = action
        action = (kind, match_id, player_id, value, f"{player_id}:{command_id}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _ENGINE_RETRY_S
        while True:
            try:
                outcome = await self.actions_for(match_id).submit(action)
                break
            except (RayActorError, ActorUnavailableError) as exc:
                if loop.time() > deadline:
                    raise Refused(
                        "engine_unavailable", "the match engine is restarting; retry"
                    ) from exc
                await asyncio.sleep(0.25)
        _check(outcome)
        return outcome


def _new_player() -> tuple[str, str]:
    return f"p-{uuid.uuid4().hex[:16]}", secrets.token_urlsafe(24)


def _check(outcome: Outcome) -> None:
    if not outcome.ok:
        raise Refused(outcome.code, outcome.message)


def _cause(exc: BaseException) -> BaseException:
    # An actor that called another actor nests one RayTaskError in another.
    while isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    return exc


def _unavailable(cause: BaseException) -> str:
    if isinstance(cause, WrongEngine):
        return (
            f"match {cause.match_id!r} reached engine {cause.engine}, but engine "
            f"{cause.owner} owns it (the gateway and the engines disagree on "
            "engine.engines); retry shortly"
        )
    if isinstance(cause, BrokerError):
        return (
            "the event log did not confirm the action, so it may not have "
            "happened; retry with the same command_id"
        )
    return "a backend actor is restarting; retry"
