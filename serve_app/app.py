"""The Serve application: HTTP and WebSocket ingress of robot-orchestra."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from actors.broker_keeper import backbone_address
from configs import AppSettings, load_settings

logger = logging.getLogger(__name__)


@serve.deployment(max_ongoing_requests=1000)
@serve.ingress()
class Gateway:
    """Serves the game's HTTP routes; brings up the backbone it needs."""

    async def __init__(self, config_path: str | None = None) -> None:  # type: ignore[misc]
        self.settings: AppSettings = load_settings(config_path)
        self.bootstrap = await asyncio.to_thread(backbone_address, self.settings)
        logger.info("gateway ready broker=%s", self.bootstrap)

    def __serve_build_asgi_app__(self) -> Starlette:
        return Starlette(routes=[Route("/healthz", self.healthz)])

    async def healthz(self, _request: Request) -> JSONResponse:
        """Liveness: the broker address and the topics in use."""
        kafka = self.settings.kafka
        body: dict[str, Any] = {
            "status": "ok",
            "broker": self.bootstrap,
            "embedded_broker": kafka.embedded,
            "topics": [t.name for t in kafka.topics.all()],
            "robot_command_topics": [
                kafka.topics.persona_commands(p).name
                for p in self.settings.persona_names()
            ],
        }
        return JSONResponse(body)


app = Gateway.bind()  # type: ignore[attr-defined]
