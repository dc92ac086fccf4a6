"""A detached actor that owns the embedded broker for the whole Ray cluster."""

from __future__ import annotations

import logging

import ray

from actors._logging import setup_logging
from configs import AppSettings
from events.broker import EmbeddedBroker
from events.settings import KafkaSettings
from events.topics import ensure_topics

logger = logging.getLogger(__name__)

BROKER_ACTOR_NAME = "robot-orchestra-broker"
NAMESPACE = "robot-orchestra"


@ray.remote(num_cpus=0, max_restarts=0)
class BrokerKeeper:
    """Runs the embedded broker; it dies with this actor's process."""

    def __init__(self, settings: KafkaSettings, personas: tuple[str, ...]) -> None:
        setup_logging()
        self._broker = EmbeddedBroker()
        self._broker.start()
        self._topics = ensure_topics(settings, self._broker.bootstrap, personas)

    def bootstrap(self) -> str:
        """The broker's ``host:port``."""
        return self._broker.bootstrap

    def stop(self) -> None:
        """Stop the broker (its data is lost)."""
        self._broker.stop()

    def pause(self) -> None:
        """Freeze the broker process (SIGSTOP), for fault tests."""
        self._broker.pause()

    def resume(self) -> None:
        """Thaw the broker (SIGCONT)."""
        self._broker.resume()


def backbone_address(settings: AppSettings, namespace: str = NAMESPACE) -> str:
    """The configured brokers, or the cluster's embedded broker (started once).

    Either way every topic, the personas' command topics included, exists
    when this returns.

    Raises:
        events.BrokerError: the broker could not be started or reached.
    """
    kafka, personas = settings.kafka, settings.persona_names()
    if not kafka.embedded:
        ensure_topics(kafka, kafka.bootstrap_servers, personas)
        return kafka.bootstrap_servers
    keeper = BrokerKeeper.options(  # type: ignore[attr-defined]
        name=BROKER_ACTOR_NAME,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
    ).remote(kafka, personas)
    address: str = ray.get(keeper.bootstrap.remote())
    return address
