"""Run the embedded broker in the foreground, with the topics created."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading

from configs import load_settings
from events.broker import EmbeddedBroker
from events.topics import ensure_topics


def main(argv: list[str] | None = None) -> int:
    """Start a broker, print its address, and wait for Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m events",
        description="Run the embedded broker (memory storage only) for local tools.",
    )
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    settings = load_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(port=args.port) as broker:
        ensure_topics(settings.kafka, broker.bootstrap, settings.persona_names())
        print(broker.bootstrap, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0
