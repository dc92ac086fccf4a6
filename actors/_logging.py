"""The project's log records inside Ray's worker processes."""

from __future__ import annotations

import logging

_PACKAGES = ("actors", "events", "game", "serve_app")
_FORMAT = "%(levelname)s %(asctime)s %(name)s -- %(message)s"
_configured: set[str] = set()


def setup_logging(level: int = logging.INFO) -> None:
    """Write this project's records at ``level`` and above to stderr.

    Ray sets up its own loggers in a worker and leaves the root logger at
    WARNING, so our INFO lines (one per state change) would be dropped; Ray
    keeps a worker's stderr in its log file, which is where these go.
    """
    for name in _PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if name in _configured:
            continue
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
        _configured.add(name)
