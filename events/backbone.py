"""Which broker a command-line tool talks to."""

from __future__ import annotations

from events.settings import KafkaSettings


def require_bootstrap(settings: KafkaSettings, bootstrap: str | None) -> str | None:
    """The broker a command-line tool should use, or None when there is none."""
    return bootstrap or settings.bootstrap_servers.strip() or None
