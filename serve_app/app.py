"""The Serve application: HTTP and WebSocket ingress of robot-orchestra."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ray import serve
from starlette.applications import Starlette
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from actors._heap import HeapKeeper
from actors._logging import setup_logging
from actors.broker_keeper import backbone_address
from actors.engines import NAMESPACE, start_engines
from actors.orchestrator import start_orchestrators
from actors.projector import start_projector
from configs import AppSettings, load_settings
from serve_app.gateway import GatewayCore
from serve_app.http_api import HttpApi, refusals
from serve_app.sessions import Session

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def bring_up(settings: AppSettings, namespace: str = NAMESPACE) -> dict[str, Any]:
    """Start (or find) the broker, engines, orchestrators and projector."""
    import ray

    bootstrap = backbone_address(settings, namespace)
    engines = start_engines(settings, bootstrap, namespace)
    orchestrators = start_orchestrators(settings, bootstrap, namespace)
    projector = start_projector(settings, bootstrap, namespace)
    ray.get([a.ready.remote() for a in [*engines, *orchestrators, projector]])
    return {
        "bootstrap": bootstrap,
        "engines": engines,
        "orchestrators": orchestrators,
        "projector": projector,
    }


class Gateway:
    """Serves the page, the match WebSocket and the HTTP API."""

    async def __init__(  # type: ignore[misc]
        self, config_path: str | None = None, namespace: str = NAMESPACE
    ) -> None:
        setup_logging()
        self.settings = load_settings(config_path)
        parts = await asyncio.to_thread(bring_up, self.settings, namespace)
        self.core = GatewayCore(self.settings, namespace)
        kafka = self.settings.kafka
        self.api = HttpApi(
            self.core,
            parts["projector"],
            parts["orchestrators"],
            {
                "broker": parts["bootstrap"],
                "embedded_broker": kafka.embedded,
                "topics": [t.name for t in kafka.topics.all()],
                "robot_command_topics": [
                    kafka.topics.persona_commands(p).name
                    for p in self.settings.persona_names()
                ],
            },
        )
        self._sweeper = asyncio.create_task(self._sweep_feeds())
        self._heap = HeapKeeper()
        self._heap.start()
        logger.info("gateway ready broker=%s", parts["bootstrap"])

    def __serve_build_asgi_app__(self) -> Starlette:
        api = self.api
        return Starlette(
            routes=[
                Route("/", self.index),
                Route("/healthz", api.healthz),
                Route("/api/matches", refusals(api.create_match), methods=["POST"]),
                Route("/api/matches/join", refusals(api.join_match), methods=["POST"]),
                Route("/api/matches/{match_id}", refusals(api.match)),
                Route("/api/players/{token}/matches", refusals(api.player_matches)),
                Route("/api/stats", refusals(api.stats)),
                Route("/api/pool", refusals(api.pool)),
                WebSocketRoute("/ws", self.websocket),
                Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            ]
        )

    async def index(self, _request: Any) -> Response:
        """The web page."""
        return FileResponse(STATIC_DIR / "index.html")

    async def websocket(self, websocket: WebSocket) -> None:
        """One player's socket; a foreign Origin is refused before it opens."""
        if not origin_allowed(
            websocket.headers.get("origin"),
            websocket.headers.get("host", ""),
            self.settings.serve.allowed_origins,
        ):
            await websocket.close(code=1008)
            return
        await Session(websocket, self.core).run()

    async def _sweep_feeds(self) -> None:
        while True:
            await asyncio.sleep(30)
            with contextlib.suppress(Exception):
                self.core.feeds.sweep()


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """Same-origin and allow-listed origins pass; so do clients sending none.

    The comparison is exact on scheme, host and port: a suffix
    (``example.com.evil``), a subdomain or the literal ``null`` fails.
    """
    if origin is None:
        return True
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return parts.netloc == host and not parts.path


def build_app(config_path: str | None = None, namespace: str = NAMESPACE) -> Any:
    """The deployment, sized from the settings, bound to its arguments."""
    settings = load_settings(config_path)
    deployment = serve.deployment(
        serve.ingress()(Gateway),
        name="Gateway",
        num_replicas=settings.serve.replicas,
        # An open socket holds one slot for its whole life; the default (5)
        # would make the sixth player on a replica wait and time out.
        max_ongoing_requests=settings.serve.max_sockets_per_replica,
    )
    return deployment.bind(config_path, namespace)  # type: ignore[attr-defined]


app = build_app()
