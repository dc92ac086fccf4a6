"""The match WebSocket and HTTP API against the whole app running on Serve."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import websockets

from configs import load_settings
from events.match_events import AnswerSubmitted, VoteCast
from events.reader import read_match
from game.rules import SEAT_LABELS
from serve_app.views import is_public
from tests.integration.conftest import wait_for
from tests.integration.figures import record_figures
from tests.integration.ws_client import WsPlayer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FORBIDDEN_KEYS = {
    "kind", "persona", "robot_id", "robots_assigned", "brain", "latency_ms",
    "command_id", "producer", "causation_id", "correlation_id", "fallback",
    "occupant_id", "token_sha256", "points", "totals", "reveal_kinds",
}  # fmt: skip


def http(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def kafka_public_types(serve_url: str, match_id: str) -> list[str]:
    _, health = http(f"{serve_url}/healthz")
    log = read_match(load_settings().kafka, health["broker"], match_id)
    return [e.payload.type for e in log if is_public(e)]


def assert_no_gaps(player: WsPlayer) -> None:
    assert player.seqs() == list(range(1, len(player.seqs()) + 1))


def walk(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair inside a JSON document."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            found.extend(walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(walk(item))
    return found


async def test_protocol_full_classic_match(serve_url: str) -> None:
    player = await WsPlayer(serve_url).connect()

    await player.create("classic")
    await player.play_match()
    await player.close()

    assert_no_gaps(player)
    assert [e["type"] for e in player.events] == kafka_public_types(
        serve_url, player.match_id
    )
    reveal = player.view["reveal"]
    kinds = sorted(seat["kind"] for seat in reveal["seats"])
    assert kinds == ["human", "robot", "robot", "robot"]
    assert len(player.view["results"]) == 5
    assert all(len(r["answers"]) == 4 for r in player.view["results"]), (
        "robots answered"
    )
    assert reveal["winners"]


async def test_protocol_duo_match_with_two_clients(serve_url: str) -> None:
    alice = await WsPlayer(serve_url).connect()
    bob = await WsPlayer(serve_url).connect()

    await alice.create("duo")
    assert alice.invite_code is not None
    await bob.join(alice.invite_code.lower())
    await asyncio.gather(alice.play_match(), bob.play_match())
    await asyncio.gather(alice.close(), bob.close())

    assert bob.match_id == alice.match_id
    for player in (alice, bob):
        assert_no_gaps(player)
        kinds = sorted(s["kind"] for s in player.view["reveal"]["seats"])
        assert kinds == ["human", "human", "robot", "robot"]
    assert alice.view["you"] != bob.view["you"]
    assert [e["type"] for e in alice.events] == [e["type"] for e in bob.events]


async def test_protocol_reconnect_mid_round_misses_nothing(serve_url: str) -> None:
    first = await WsPlayer(serve_url).connect()
    await first.create("classic")
    await first.play_round(1)
    await first.until(lambda v: v["round"] == 2 and v["phase"] == "answering")
    await first.answer("back soon, still thinking about lunch", "a2")
    await first.close()
    left_at = first.seq

    async def voting_opened_while_away() -> bool:
        types = await asyncio.to_thread(kafka_public_types, serve_url, first.match_id)
        return types.count("voting_opened") >= 2

    await wait_for(voting_opened_while_away, 30.0, "round 2's voting to open")
    second = await WsPlayer(serve_url).connect()
    second.match_id, second.token = first.match_id, first.token
    second.events = list(first.events)
    await second.resume(left_at)
    catch_up = await second.expect("update")
    await second.until(lambda v: v["round"] >= 2 and v["phase"] != "answering")
    for number in range(2, 6):
        await second.play_round(number)
    await second.until(lambda v: v["phase"] == "ended")
    await second.close()

    missed = [e for e in catch_up["events"] if e["seq"] > left_at]
    assert missed and missed[0]["seq"] == left_at + 1
    assert "voting_opened" in [e["type"] for e in missed]
    assert_no_gaps(second)
    assert [e["type"] for e in second.events] == kafka_public_types(
        serve_url, second.match_id
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param("{not json", "bad_json", id="malformed-json"),
        pytest.param("[1, 2]", "bad_frame", id="not-an-object"),
        pytest.param({"type": "dance"}, "unknown_type", id="unknown-type"),
        pytest.param({"type": "answer", "text": "hi"}, "not_joined", id="not-joined"),
        pytest.param({"type": "create", "template": 7}, "bad_frame", id="wrong-field"),
        pytest.param({"type": "create", "template": "solo"}, "bad_template",
                     id="bad-template"),
        pytest.param({"type": "join", "code": "ZZZZZZ"}, "unknown_invite",
                     id="unknown-code"),
        pytest.param(
            {"type": "resume", "match_id": "m-nope", "token": "x", "last_seq": 0},
            "unknown_match",
            id="resume-unknown-match",
        ),
    ],
)  # fmt: skip
async def test_protocol_bad_frames_before_joining(
    serve_url: str, frame: Any, code: str
) -> None:
    player = await WsPlayer(serve_url).connect()

    await player.send(frame)
    error = await player.expect("error")
    await player.send({"type": "ping"})
    pong = await player.expect("pong")
    await player.close()

    assert error["code"] == code
    assert error["message"]
    assert pong["server_time"]


async def test_protocol_bad_actions_change_nothing(serve_url: str) -> None:
    player = await WsPlayer(serve_url).connect()
    other = await WsPlayer(serve_url).connect()
    await other.create("classic")
    await player.create("classic")
    await player.until(lambda v: v["phase"] == "answering")
    you = player.view["you"]

    async def refused(frame: dict[str, Any]) -> str:
        # Robot answers and votes may land meanwhile and move ``seq``; what a
        # refused frame must not change is this seat's own answer and vote.
        mine = (player.view["your_answer"], player.view["your_vote"])
        await player.send(frame)
        error = await player.expect("error")
        assert (player.view["your_answer"], player.view["your_vote"]) == mine
        return str(error["code"])

    codes = {
        "wrong-phase": await refused(
            {"type": "vote", "token": player.token, "seat": you}
        ),
        "empty": await refused({"type": "answer", "token": player.token, "text": "  "}),
        "too-long": await refused(
            {"type": "answer", "token": player.token, "text": "x" * 281}
        ),
        "foreign-token": await refused(
            {"type": "answer", "token": other.token, "text": "not mine"}
        ),
    }
    await player.answer("a proper answer", "first")
    await player.until(lambda v: v["your_answer"] is not None)
    codes["second-answer"] = await refused(
        {
            "type": "answer",
            "token": player.token,
            "text": "again",
            "command_id": "second",
        }
    )
    await player.until(lambda v: v["phase"] == "voting")
    codes["self-vote"] = await refused(
        {"type": "vote", "token": player.token, "seat": you}
    )
    # Labels come from one set of eight; four are not seats of this match.
    foreign_seat = next(s for s in SEAT_LABELS if s not in player.view["seats"])
    codes["other-match-seat"] = await refused(
        {"type": "vote", "token": player.token, "seat": foreign_seat}
    )
    await player.send("x" * 5000)
    assert player.ws is not None
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:  # updates already on their way come first
            await player.recv(10)
    await other.close()

    assert codes == {
        "wrong-phase": "wrong_phase",
        "empty": "empty_answer",
        "too-long": "answer_too_long",
        "foreign-token": "bad_token",
        "second-answer": "already_answered",
        "self-vote": "self_vote",
        "other-match-seat": "unknown_seat",
    }
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    _, health = http(f"{serve_url}/healthz")
    log = read_match(load_settings().kafka, health["broker"], player.match_id)
    answers = [
        e.payload.text
        for e in log
        if isinstance(e.payload, AnswerSubmitted) and e.payload.seat == you
    ]
    votes = [e for e in log if isinstance(e.payload, VoteCast)]
    assert answers == ["a proper answer"]
    assert not [e for e in votes if e.payload.voter == you]  # type: ignore[union-attr]


async def test_protocol_frames_before_reveal_hide_who_is_human(serve_url: str) -> None:
    alice = await WsPlayer(serve_url).connect()
    bob = await WsPlayer(serve_url).connect()
    await alice.create("duo")
    assert alice.invite_code is not None
    await bob.join(alice.invite_code)

    await asyncio.gather(alice.play_match(), bob.play_match())
    await asyncio.gather(alice.close(), bob.close())

    personas = set(load_settings().persona_names())
    for player in (alice, bob):
        before_reveal = [
            f for f in player.frames if not (f.get("view") or {}).get("reveal")
        ]
        assert len(before_reveal) > 10
        for frame in before_reveal:
            pairs = walk(frame)
            keys = {k for k, _ in pairs}
            assert not keys & FORBIDDEN_KEYS, keys & FORBIDDEN_KEYS
            for _, value in pairs:
                if isinstance(value, str):
                    assert value not in ("human", "robot"), frame
                    assert not any(p in value for p in personas), frame
                    assert not value.startswith("robot-"), frame
        others = [
            e for e in player.events
            if e["type"] in ("answer_submitted", "vote_cast") and not e.get("yours")
        ]  # fmt: skip
        assert others and all(set(e) == {"seq", "type", "round"} for e in others)


def test_protocol_forged_origins_are_refused(serve_url: str) -> None:
    async def handshake(origin: str) -> bool:
        try:
            player = await WsPlayer(serve_url, origin=origin).connect()
        except (websockets.InvalidStatus, websockets.InvalidHandshake):
            return False
        await player.send({"type": "ping"})
        await player.expect("pong")
        await player.close()
        return True

    host = serve_url.removeprefix("http://")
    results = {
        origin: asyncio.run(handshake(origin))
        for origin in (
            serve_url,
            "https://play.robot-orchestra.example",
            "null",
            f"http://{host}.evil.example",
            "https://evil.play.robot-orchestra.example",
            "https://play.robot-orchestra.example.evil",
        )
    }

    assert results == {
        serve_url: True,
        "https://play.robot-orchestra.example": True,
        "null": False,
        f"http://{host}.evil.example": False,
        "https://evil.play.robot-orchestra.example": False,
        "https://play.robot-orchestra.example.evil": False,
    }


async def test_protocol_http_create_join_history_and_stats(serve_url: str) -> None:
    status, created = http(f"{serve_url}/api/matches", {"template": "duo"})
    _, joined = http(f"{serve_url}/api/matches/join", {"code": created["invite_code"]})
    bad_status, bad = http(f"{serve_url}/api/matches/join", {"code": "QQQQQQ"})
    player = await WsPlayer(serve_url).connect()
    player.match_id, player.token = created["match_id"], created["token"]
    await player.resume(0)
    await player.until(lambda v: v["phase"] == "answering")
    await player.answer("an answer by http player", "a1")
    await player.until(lambda v: v["your_answer"] is not None)

    async def timeline_has_answer() -> dict[str, Any]:
        for _ in range(100):
            _, body = http(f"{serve_url}/api/matches/{player.match_id}")
            if any(e["type"] == "answer_submitted" for e in body.get("timeline", [])):
                return body
            await asyncio.sleep(0.1)
        raise AssertionError("the history never showed the answer")

    running = await timeline_has_answer()
    _, page = http(f"{serve_url}/api/players/{created['token']}/matches")
    _, stats = http(f"{serve_url}/api/stats")
    _, pool = http(f"{serve_url}/api/pool")
    missing_status, _ = http(f"{serve_url}/api/matches/m-none")
    await player.close()

    assert status == 201 and joined["match_id"] == created["match_id"]
    assert bad_status == 404 and bad["error"] == "unknown_invite"
    assert running["finished"] is False
    for event in running["timeline"]:
        assert not {"seat", "kind", "persona", "voter", "points"} & set(event)
    assert [m["match_id"] for m in page["matches"]] == [created["match_id"]]
    assert page["next_cursor"] is None
    assert stats["matches_started"] >= 1
    personas = pool["orchestrators"][0]["personas"]
    assert set(personas) == set(load_settings().persona_names())
    assert missing_status == 404


async def test_protocol_flood_is_throttled_without_slowing_others(
    serve_url: str,
) -> None:
    flooder = await WsPlayer(serve_url).connect()
    calm = await WsPlayer(serve_url).connect()
    loop = asyncio.get_running_loop()

    for _ in range(300):
        await flooder.send({"type": "ping"})
    started = loop.time()
    await calm.send({"type": "ping"})
    await calm.expect("pong")
    calm_rtt_s = loop.time() - started
    kinds: list[str] = []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            kinds.append((await flooder.recv(10))["type"])
    await calm.close()

    record_figures(
        "flood",
        {
            "frames_sent": 300,
            "pongs": kinds.count("pong"),
            "refused": len(flooder.errors),
            "close_code": closed.value.rcvd.code if closed.value.rcvd else None,
            "calm_rtt_ms": round(calm_rtt_s * 1000, 1),
        },
    )
    assert "pong" in kinds and "error" in kinds
    assert {e["code"] for e in flooder.errors} == {"rate_limited"}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert calm_rtt_s < 2.0
