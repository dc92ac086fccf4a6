"""Hidden roles over many matches, and secrets kept out of the logs."""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.loadtest import Figures, run
from configs import load_settings
from tests.integration.conftest import wait_for
from tests.integration.figures import record_figures
from tests.integration.ws_client import WsPlayer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ALLOWED_KEYS = {
    "type", "match_id", "token", "invite_code", "seq", "events", "view", "code",
    "message", "server_time", "template", "humans", "robots", "rounds", "seats",
    "round", "prompt", "deadline", "seat", "text", "yours", "order", "missing",
    "target", "votes", "phase", "you", "joined", "max_answer_chars", "results",
    "answers", "answered", "voted", "your_answer", "your_vote", "reveal",
}  # fmt: skip


def pairs(value: Any) -> list[tuple[str, Any]]:
    """(key, value) pairs of a frame; a ``votes`` map's seat keys are data."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            if key == "votes" and isinstance(item, dict):
                found += [("seat", s) for s in (*item.keys(), *item.values())]
            else:
                found += pairs(item)
    elif isinstance(value, list):
        for item in value:
            found += pairs(item)
    return found


# Fields of HTTP bodies about one match that frames do not have.
HTTP_KEYS = {
    "finished", "timeline", "at", "matches", "next_cursor", "started_at",
    "score", "won",
}  # fmt: skip
# Words that would name a brain or a model provider in a value.
MODEL_WORDS = ("bedrock", "claude", "anthropic", "offline", "titan", "llama")


def check_frame(
    frame: dict[str, Any], personas: set[str], allowed: set[str] = ALLOWED_KEYS
) -> None:
    what = frame.get("type", "body")
    for key, value in pairs(frame):
        assert key in allowed, f"unexpected field {key!r} in {what}"
        if key == "reveal":
            assert value is None, "a reveal before the end"
        if isinstance(value, str) and key != "text":
            lowered = value.lower()
            assert lowered not in {"human", "robot"}, frame
            assert not lowered.startswith(("robot-", "worker-")), frame
            assert not any(p in value for p in personas), frame
            assert not any(word in lowered for word in MODEL_WORDS), frame


@pytest.mark.parametrize(
    ("template", "matches"),
    [pytest.param("classic", 12, id="classic"), pytest.param("duo", 6, id="duo")],
)
async def test_hidden_roles_every_frame_before_the_reveal_is_anonymous(
    serve_url: str, template: str, matches: int
) -> None:
    figures = Figures(record_frames=True)
    args = argparse.Namespace(
        url=serve_url.replace("http://", "ws://"),
        matches=matches,
        concurrency=matches,
        template=template,
        timeout_s=120.0,
    )

    results = await run(args, figures)

    assert results["matches_completed"] == matches
    personas = set(load_settings().persona_names())
    before_reveal = [
        f
        for f in figures.frames
        if not any(e["type"] == "match_ended" for e in f.get("events", []))
    ]
    assert len(before_reveal) > matches * 20
    for frame in before_reveal:
        check_frame(frame, personas)
    record_figures(
        f"hidden-roles-{template}",
        {"matches": matches, "frames_before_reveal": len(before_reveal)},
    )


async def test_hidden_roles_http_bodies_before_the_reveal_are_anonymous(
    serve_url: str,
) -> None:
    personas = set(load_settings().persona_names())
    player = await WsPlayer(serve_url).connect()
    await player.create("classic")
    await player.play_round(1)
    await player.play_round(2)
    timeline_url = f"{serve_url}/api/matches/{player.match_id}"
    history_url = f"{serve_url}/api/players/{player.token}/matches"

    async def folded() -> bool:
        body = await asyncio.to_thread(get_json, timeline_url)
        types = [item["type"] for item in body["timeline"]]
        return types.count("round_scored") >= 2

    await wait_for(folded, 30.0, "the projector to fold two rounds")
    timeline = await asyncio.to_thread(get_json, timeline_url)
    history = await asyncio.to_thread(get_json, history_url)
    await player.close()

    assert timeline["finished"] is False
    assert len(timeline["timeline"]) > 10
    assert [m["match_id"] for m in history["matches"]] == [player.match_id]
    assert history["matches"][0]["score"] is None
    for body in (timeline, history):
        check_frame(body, personas, ALLOWED_KEYS | HTTP_KEYS)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def ray_log_text() -> str:
    import ray._private.worker

    # This driver's own session: /tmp/ray/session_latest points at whichever
    # Ray started last on the machine (the multinode test starts others).
    node = ray._private.worker._global_node
    assert node is not None, "the test's local Ray is not running"
    logs = Path(node.get_logs_dir_path())
    chunks = []
    for path in logs.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".out", ".err"):
            chunks.append(path.read_text(errors="replace"))
    return "\n".join(chunks)


async def test_secrets_tokens_and_answers_never_reach_the_logs(
    serve_url: str,
) -> None:
    marker = f"quokka-{uuid.uuid4().hex[:10]}"
    player = await WsPlayer(serve_url).connect()
    await player.create("classic")
    await player.until(lambda v: v["phase"] == "answering")
    await player.answer(f"my secret answer is {marker}", "a1")
    await player.until(lambda v: v["your_answer"] is not None)
    await player.send({"type": "vote", "token": "forged-token", "seat": "amber"})
    await player.expect("error")
    url = f"{serve_url}/api/players/{player.token}/matches"
    history: dict[str, Any] = {"matches": []}
    for _ in range(100):  # the projector folds the match a moment later
        history = await asyncio.to_thread(get_json, url)
        if history["matches"]:
            break
        await asyncio.sleep(0.1)
    await player.close()

    text = ray_log_text()

    assert history["matches"], "the history call itself worked"
    # Serve's access log names the route, never the path that holds a token.
    assert "/api/players/{token}/matches" in text, "the gateway's log was not read"
    assert "gateway ready" in text, "our own INFO lines are not in the logs"
    assert player.token not in text
    assert marker not in text
