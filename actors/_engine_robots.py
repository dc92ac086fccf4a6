"""Sending the commands a match's robot seats owe to their personas' topics."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from events import DeliveryError, new_event
from events.producer import EventProducer
from events.settings import Topics, TopicSettings
from game import MatchState, pending_robot_commands

logger = logging.getLogger(__name__)


class RobotCommands:
    """Sends each pending robot command once, and again only if it failed.

    ``sent`` holds the ids of commands the broker confirmed. A send the
    broker refuses is forgotten, so the next change of the match (or the
    next rebuild) sends those commands again instead of the robots
    waiting for a deadline.
    """

    def __init__(
        self,
        producer: EventProducer,
        topics: Topics,
        personas: Iterable[str],
        producer_name: str,
    ) -> None:
        self._producer = producer
        self._topics = topics
        # Built once: a topic per persona is looked up for every command.
        self._by_persona = {p: topics.persona_commands(p) for p in personas}
        self._producer_name = producer_name
        self.sent: set[str] = set()

    async def send(self, match_id: str, state: MatchState) -> None:
        """Send the match's robot commands not sent yet.

        Raises:
            Whatever the rules raise for a state they cannot continue from;
            a broker failure is logged, not raised.
        """
        fresh = pending_robot_commands(state, self.sent)
        if not fresh:
            return
        # Marked before the await: a change of the match while the send is
        # in flight must not send the same commands a second time.
        self.sent.update(c.command_id for c in fresh)
        records = [
            (
                self._topic(c.persona),
                new_event(c, match_id=match_id, producer=self._producer_name),
            )
            for c in fresh
        ]
        try:
            await self._producer.append_many(records)
        except DeliveryError as exc:
            self.sent.difference_update(c.command_id for c in fresh)
            logger.warning(
                "robot commands not sent match_id=%s error=%s", match_id, exc
            )

    def _topic(self, persona: str) -> TopicSettings:
        topic = self._by_persona.get(persona)
        return topic or self._topics.persona_commands(persona)
