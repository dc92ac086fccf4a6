"""The match engine actor: owns a share of the matches and their deadlines."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import uuid
from collections import defaultdict
from typing import Any

import ray

from actors._engine_core import Decide, EngineCore, Outcome
from actors._heap import HeapKeeper
from actors._logging import setup_logging
from actors.errors import ActorsError
from configs import AppSettings
from events import DeliveryError, Envelope
from events.consumer import EventConsumer, Record
from events.robot_events import AnswerGenerated, GenerationFailed, VoteGenerated
from game import RuleViolation, accept_robot_result

logger = logging.getLogger(__name__)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class MatchEngine:
    """One of ``engine.engines`` engines; Ray restarts it when it dies.

    On every start it rebuilds its matches from ``match-events`` before it
    accepts a command, then folds robot results from its partitions of
    ``robot-events`` and closes phases whose deadlines pass.
    """

    def __init__(self, index: int, settings: AppSettings, bootstrap: str) -> None:
        setup_logging()
        self._core = EngineCore(index, settings, bootstrap)
        self._results = EventConsumer(
            settings.kafka,
            bootstrap,
            f"engine-{index}.{settings.kafka.topics.robot_events.name}",
            [settings.kafka.topics.robot_events],
            self._core.producer,
            partitions=self._core.owned_partitions(),
        )
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._heap = HeapKeeper()
        self._heap.start()
        start = asyncio.get_running_loop().create_task(self._run())
        start.add_done_callback(self._exit_if_failed)
        self._tasks = [start]

    async def _run(self) -> None:
        await self._core.rebuild()  # retries broker failures; sets matches aside
        await self._results.start()
        self._tasks += [
            asyncio.create_task(self._fold_results()),
            asyncio.create_task(self._tick()),
        ]

    def _exit_if_failed(self, task: asyncio.Task[None]) -> None:
        # The rebuild retries broker failures and sets bad matches aside;
        # anything else escaping the start-up (a bug, or the results consumer
        # refusing to start) would leave every call waiting on ``ready``
        # forever. The process exits instead: Ray takes it for an unexpected
        # actor death and restarts the actor (max_restarts=-1), which
        # rebuilds afresh.
        if task.cancelled() or task.exception() is None:
            return
        logger.critical(
            "engine start failed engine=%d; exiting for Ray to restart it",
            self._core.index,
            exc_info=task.exception(),
        )
        os._exit(1)

    async def ready(self) -> bool:
        """Wait until the engine rebuilt its matches; True when it did."""
        await self._core.ready.wait()
        return True

    async def create_match(
        self,
        template: str,
        player_id: str,
        token_sha256: str = "",
        humans: int | None = None,
        robots: int | None = None,
        timings: dict[str, Any] | None = None,
    ) -> Outcome:
        """Create a match and seat its creator.

        Args:
            template: ``classic``, ``duo`` or ``custom``.
            player_id: the creating player's id.
            token_sha256: hash of the player's secret token.
            humans: human seats, for ``custom``.
            robots: robot seats, for ``custom``.
            timings: overrides of the template's timings.

        Returns:
            The outcome; ``data["invite_code"]`` is set when others must join.
        """
        await self._core.ready.wait()
        return await self._core.create_match(
            template,
            player_id,
            token_sha256,
            humans=humans,
            robots=robots,
            timings=timings,
        )

    async def join_by_code(
        self, code: str, player_id: str, token_sha256: str = ""
    ) -> Outcome:
        """Seat a player behind an invite code held by this engine."""
        await self._core.ready.wait()
        return await self._core.join_by_code(code, player_id, token_sha256)

    async def submit_answer(
        self, match_id: str, player_id: str, text: str, command_id: str
    ) -> Outcome:
        """A player's answer; refused outcomes carry a code and a message.

        Raises:
            UnknownMatch: no such match on this engine.
            MatchSetAside: the match's log could not be folded at rebuild.
            WrongEngine: another engine owns the match.
        """
        await self._core.ready.wait()
        return await self._core.submit_answer(match_id, player_id, text, command_id)

    async def cast_vote(
        self, match_id: str, player_id: str, target: str, command_id: str
    ) -> Outcome:
        """A player's vote for the seat they think is human."""
        await self._core.ready.wait()
        return await self._core.cast_vote(match_id, player_id, target, command_id)

    async def act_many(
        self, actions: list[tuple[str, str, str, str, str]]
    ) -> list[Outcome | Exception]:
        """Several players' actions in one call, decided side by side.

        A gateway sends the answers and votes that reach it together in one
        Ray call instead of one call each; on a busy machine the calls cost
        more than the decisions.

        Args:
            actions: ``(kind, match_id, player_id, answer text or voted
                seat, command_id)`` with kind ``answer`` or ``vote``.

        Returns:
            Per action, in order, its outcome, or the error it raised
            (``UnknownMatch``, ``MatchSetAside``, ``WrongEngine``,
            ``BrokerError``, ...), returned instead of raised so one bad
            action fails only itself.
        """
        await self._core.ready.wait()
        core = self._core

        async def one(kind: str, *args: str) -> Outcome:
            if kind == "answer":
                return await core.submit_answer(*args)
            if kind == "vote":
                return await core.cast_vote(*args)
            raise ValueError(f"unknown action kind {kind!r}")

        results = await asyncio.gather(
            *(one(*action) for action in actions), return_exceptions=True
        )
        return [_portable(r) for r in results]

    async def events_since(
        self, match_id: str, after: int, wait_s: float = 0.0
    ) -> list[Envelope]:
        """The match's events after sequence ``after``, waiting up to ``wait_s``."""
        await self._core.ready.wait()
        return await self._core.events_since(match_id, after, wait_s)

    async def events_since_many(
        self, cursors: dict[str, int], wait_s: float = 0.0
    ) -> dict[str, list[bytes] | ActorsError]:
        """New events of several matches, each after its own sequence number.

        Args:
            cursors: match id to the number of its events the caller has.
            wait_s: how long to wait for a change when nothing is new.

        Returns:
            Each match with its new events, encoded by the codec, or with
            the error that stands for it (``UnknownMatch``,
            ``MatchSetAside``, ``WrongEngine``).
        """
        await self._core.ready.wait()
        return await self._core.events_since_many(cursors, wait_s)

    async def wake(self) -> None:
        """End every waiting ``events_since_many`` call now."""
        self._core.wake()

    async def status(self) -> dict[str, Any]:
        """Match counts per phase, open invites and queued deadlines."""
        return self._core.status()

    async def shutdown(self) -> None:
        """Stop consuming and flush the producer (before a planned kill)."""
        for task in self._tasks:
            task.cancel()
        self._heap.stop()
        await self._core.robot_commands_sent()
        await self._results.close()
        self._core.producer.close()

    async def _tick(self) -> None:
        interval = self._core.settings.engine.tick_interval_s
        while True:
            try:
                await self._core.tick()
            except Exception:
                logger.exception("engine tick failed engine=%d", self._core.index)
            await asyncio.sleep(interval)

    async def _fold_results(self) -> None:
        # Consumption never waits on folding: each match folds its results in
        # order on a chain of its own, and matches fold side by side.
        async for batch in self._results.batches():
            per_match: dict[str, list[Record]] = defaultdict(list)
            for record in batch:
                per_match[record.envelope.key].append(record)
            for match_id, records in per_match.items():
                previous = self._chains.get(match_id)
                task = asyncio.create_task(self._fold_after(previous, records))
                self._chains[match_id] = task
                task.add_done_callback(functools.partial(self._unchain, match_id))

    async def _fold_after(
        self, previous: asyncio.Task[None] | None, records: list[Record]
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            await self._fold(records)
        except Exception:
            logger.exception("robot results not folded engine=%d", self._core.index)

    def _unchain(self, match_id: str, task: asyncio.Task[None]) -> None:
        if self._chains.get(match_id) is task:
            del self._chains[match_id]

    async def _fold(self, records: list[Record]) -> None:
        # A match's results that arrived together are decided in order and
        # appended at once: one broker round trip and one player update.
        steps: list[tuple[Decide, uuid.UUID | None]] = []
        for record in records:
            result = record.envelope.payload
            if isinstance(result, AnswerGenerated | VoteGenerated):
                steps.append((_accepting(result), record.envelope.event_id))
            elif isinstance(result, GenerationFailed):
                logger.warning(
                    "robot generation failed match_id=%s seat=%s reason=%s",
                    record.envelope.key,
                    result.seat,
                    result.reason,
                )
            else:
                logger.warning("unexpected %s on robot-events", result.type)
        if steps:
            try:
                await self._execute(records[0].envelope.key, steps)
            except DeliveryError:
                # Not marked done: the records come again after a restart.
                logger.warning("robot results not folded; broker did not confirm")
                return
        self._results.done_many(records)

    async def _execute(
        self, match_id: str, steps: list[tuple[Decide, uuid.UUID | None]]
    ) -> None:
        try:
            outcomes = await self._core.execute_steps(match_id, steps)
        except (ActorsError, RuleViolation) as exc:
            logger.warning("robot result dropped match_id=%s reason=%s", match_id, exc)
            return
        for outcome in outcomes:
            if not outcome.ok:
                logger.warning(
                    "robot result refused match_id=%s code=%s", match_id, outcome.code
                )


def _portable(result: Outcome | BaseException) -> Outcome | Exception:
    """An action's result as it may cross Ray: cancellations and exits re-raised."""
    if isinstance(result, Exception) or not isinstance(result, BaseException):
        return result
    raise result


def _accepting(result: AnswerGenerated | VoteGenerated) -> Decide:
    return lambda state, ctx: accept_robot_result(state, result, ctx)
