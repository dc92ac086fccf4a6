"""Find or start the broker, and make sure the topics exist."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from events.broker import EmbeddedBroker
from events.settings import KafkaSettings
from events.topics import ensure_topics


@contextlib.contextmanager
def open_backbone(
    settings: KafkaSettings, bootstrap: str | None = None
) -> Iterator[str]:
    """Yield a bootstrap address whose topics exist.

    An explicit ``bootstrap`` wins; then the configured servers; with
    neither, an embedded broker runs for the life of the context.
    """
    address = bootstrap or settings.bootstrap_servers.strip()
    if address:
        ensure_topics(settings, address)
        yield address
        return
    with EmbeddedBroker() as broker:
        ensure_topics(settings, broker.bootstrap)
        yield broker.bootstrap


def require_bootstrap(settings: KafkaSettings, bootstrap: str | None) -> str | None:
    """The broker a command-line tool should use, or None when there is none."""
    return bootstrap or settings.bootstrap_servers.strip() or None
