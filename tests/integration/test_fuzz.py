"""Fuzzing the match WebSocket and the HTTP API (hypothesis, the whole app on Serve).

Random JSON values, frames of the real types with random fields and raw
non-JSON text go to a player seated in a live classic match; random bytes
and JSON go to the two POST routes. The server must refuse each bad input
with an error naming what was wrong, keep the socket open, leave the match
as it was, and never answer with a 5xx or not at all.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from game.rules import INVITE_ALPHABET, SEAT_LABELS
from tests.integration.figures import record_figures

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The test app keeps serve's defaults: 10 frames/s with a burst of 20 per
# connection. Each example sends two frames, so this pace stays under the rate.
PACE_S = 0.12
MAX_FRAME_BYTES = 4096
REPLY_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 10.0
CLOSE_TOO_BIG = 1009
# Placeholders the fuzzer swaps for the player's real token and match id, so
# frames also get past the token check and fail on a later field.
TOKEN = "<token>"
MATCH_ID = "<match_id>"
ERROR_CODES = {
    "bad_json", "bad_frame", "unknown_type", "not_joined", "bad_token",
    "unknown_match", "unknown_invite", "rate_limited", "wrong_phase",
    "already_answered", "already_voted", "self_vote", "unknown_seat",
    "empty_answer", "answer_too_long", "deadline_passed", "no_answer_no_vote",
    "match_full", "match_ended", "invite_expired", "bad_template", "bad_seq",
}  # fmt: skip
PING = json.dumps({"type": "ping"})
# Arrays this deep fit in a frame and a body; CPython's json parser gives up
# near 1000 levels with a RecursionError, which is not a ValueError.
DEPTHS = [
    pytest.param(500, id="depth-500"),
    pytest.param(1000, id="depth-1000"),
    pytest.param(2000, id="depth-2000"),
]
# Frames a random search rarely builds: each is either refused or valid.
EDGE_FRAMES = [
    pytest.param(
        {"type": "answer", "token": TOKEN, "text": "tea \ud800"},
        id="answer-lone-surrogate",
    ),
    pytest.param(
        {"type": "answer", "token": TOKEN, "text": "\u0000\u200b"},
        id="answer-invisible",
    ),
    pytest.param({"type": "answer", "token": TOKEN, "text": "x" * 281}, id="too-long"),
    pytest.param(
        {"type": "create", "template": "custom", "humans": 10**30, "robots": -1},
        id="create-huge-count",
    ),
    pytest.param(
        {"type": "resume", "match_id": MATCH_ID, "token": TOKEN, "last_seq": 10**30},
        id="resume-far-ahead",
    ),
    pytest.param({"type": "join", "code": "\u00df\u00df\u00df"}, id="join-sharp-s"),
    pytest.param(
        {"type": "vote", "token": TOKEN, "seat": "amber", "command_id": "c" * 65},
        id="vote-long-command-id",
    ),
]

# --- strategies ----------------------------------------------------------------

words = st.sampled_from(
    [
        "", " ", "classic", "duo", "custom", "CLASSIC", "solo", "ping", "answer",
        "K7M2QX", "abcdef", "ßßß", "\u0130\u0130\u0130\u0130\u0130\u0130",
        "null", "0", "-1", "\u0000", "\ufeff", "\U0001f916", "x" * 300,
        TOKEN, MATCH_ID, *SEAT_LABELS,
    ]
)  # fmt: skip
# Lone surrogates ("\ud800" escapes) are valid JSON but not Unicode.
strings = st.one_of(
    words,
    st.text(max_size=40),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
)
numbers = st.one_of(
    st.integers(-10, 10),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**300),
    st.integers(min_value=-(10**300), max_value=-(10**18)),
    st.floats(),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
# Values of each field's own type, so that frames get past the type checks to
# the game's rules; max_answer_chars is 280.
RIGHT_TYPES = {
    "template": st.sampled_from(["classic", "duo", "custom", "solo", "Classic"]),
    "humans": st.integers(-2, 10),
    "robots": st.integers(-2, 10),
    "code": st.text(INVITE_ALPHABET + "abc0-", min_size=5, max_size=7),
    "match_id": st.one_of(st.just(MATCH_ID), st.text(max_size=24)),
    "token": st.one_of(st.just(TOKEN), st.text(max_size=40)),
    "last_seq": st.integers(-5, 10**6),
    "text": st.one_of(
        st.text(min_size=1, max_size=60), st.text(min_size=270, max_size=320)
    ),
    "seat": st.one_of(st.sampled_from(SEAT_LABELS), st.text(max_size=10)),
    "command_id": st.one_of(
        st.text(min_size=1, max_size=64), st.text(min_size=65, max_size=80)
    ),
}
keys = st.one_of(st.sampled_from(["type", *RIGHT_TYPES]), st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=15,
)


def mostly(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``right`` three times in four, else any JSON value."""
    return st.sampled_from([right, right, right, json_values]).flatmap(_itself)


def _itself(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy


NEEDED = {
    "answer": ("token", "text"),
    "vote": ("token", "seat"),
    "resume": ("match_id", "token", "last_seq"),
    "ping": (),
    "join": ("code",),
    "create": ("template",),
}


def frames_of(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Frames of a real type: its fields mostly well typed, others at random."""
    return st.fixed_dictionaries(
        {"type": st.just(kind)} | {f: mostly(RIGHT_TYPES[f]) for f in NEEDED[kind]},
        optional={
            f: mostly(right)
            for f, right in RIGHT_TYPES.items()
            if f not in NEEDED[kind]
        },
    )


# Answers and votes, the actions on the live match, come up most often.
typed_frames = st.sampled_from(
    ("answer", "answer", "answer", "vote", "vote", "resume", "ping", "join", "create")
).flatmap(frames_of)
odd_types = st.fixed_dictionaries(
    {"type": st.one_of(strings, json_values)},
    optional={field: json_values for field in RIGHT_TYPES},
)
# Most frames have a real type, so most reach the field checks and the rules.
frames = st.sampled_from(
    [typed_frames] * 6
    + [odd_types, st.dictionaries(keys, json_values, max_size=6), json_values]
).flatmap(_itself)
malformed = st.sampled_from(
    [
        "", " ", "\n", "{", "}", "[", '{"type": "ping"', "{type: ping}",
        "{'type': 'ping'}", '{"type": "ping",}', '{"type" "ping"}', "nul",
        "tru", "01", "1e999999", "-", "NaN", "Infinity", "[1, 2,", '"ping',
        '\ufeff{"type": "ping"}', '{"type": "ping"} trailing', "[]]",
        '{"type": "answer", "text": "\\ud800"', "\\u0000", "<html>",
    ]
)  # fmt: skip
json_ish = st.text(st.sampled_from('{}[]":, .-+e0123456789truefalsn\\u'), max_size=60)
raw_texts = st.one_of(malformed, json_ish, st.text(max_size=300))


def body_bytes(value: Any, encoding: str) -> bytes:
    return json.dumps(value).encode(encoding)


create_bodies = st.fixed_dictionaries(
    {},
    optional={
        field: mostly(RIGHT_TYPES[field]) for field in ("template", "humans", "robots")
    },
)
join_bodies = st.fixed_dictionaries({}, optional={"code": mostly(RIGHT_TYPES["code"])})


def http_bodies(typed: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    encodings = st.sampled_from(["utf-8", "utf-16", "utf-32"])
    return st.one_of(
        st.binary(max_size=300),
        st.builds(body_bytes, json_values, encodings),
        st.builds(body_bytes, typed, encodings),
        raw_texts.map(lambda text: text.encode()),
        st.integers(4000, 6000).map(lambda n: b'{"code": "' + b"x" * n + b'"}'),
    )


# --- the WebSocket fuzzer --------------------------------------------------------


def _swap(value: Any, token: str, match_id: str) -> Any:
    if value == TOKEN:
        return token
    if value == MATCH_ID:
        return match_id
    if isinstance(value, list):
        return [_swap(item, token, match_id) for item in value]
    if isinstance(value, dict):
        return {key: _swap(item, token, match_id) for key, item in value.items()}
    return value


def _kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


class FrameFuzzer:
    """A player in a live match that sends fuzzed frames and checks each reply."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.replace("http://", "ws://") + "/ws"
        self.ws: ClientConnection | None = None
        self.match_id = ""
        self.token = ""
        self.seq = 0
        self.view: dict[str, Any] = {}
        self.matches: set[str] = set()
        self.accepted_actions = 0
        self.answered: set[tuple[str, int]] = set()
        self.voted: set[tuple[str, int]] = set()
        self.yours: set[tuple[str, int]] = set()
        self.codes: Counter[str] = Counter()
        self.valid: Counter[str] = Counter()
        self.examples = 0
        self.too_big = 0
        self._sent_at = 0.0
        self._connection = contextlib.ExitStack()

    def start(self) -> FrameFuzzer:
        self._connect()
        self._create_match()
        return self

    def close(self) -> None:
        self._connection.close()

    def check(self, value: Any, raw: str | None = None) -> None:
        """Send one fuzzed frame (``raw`` text, or ``value`` as JSON) and check."""
        self.examples += 1
        if self.view.get("phase") == "ended":
            self._create_match()
        if raw is None:
            value = _swap(value, self.token, self.match_id)
            raw = json.dumps(value)
        if len(raw.encode()) > MAX_FRAME_BYTES:
            self._check_too_big(raw)
            return
        try:
            replies = self._exchange(raw, pongs=2 if _kind(value) == "ping" else 1)
        except (ConnectionClosed, TimeoutError) as exc:
            self._reconnect()
            raise AssertionError(
                f"no reply or socket closed after {raw!r:.200}"
            ) from exc
        self._check_replies(value, raw, replies)
        self._check_match_unchanged()

    def _check_replies(
        self, value: Any, raw: str, replies: list[dict[str, Any]]
    ) -> None:
        errors = [frame for frame in replies if frame["type"] == "error"]
        for error in errors:
            assert isinstance(error.get("code"), str) and error["code"], error
            assert isinstance(error.get("message"), str) and error["message"], error
            assert error["code"] in ERROR_CODES, error
        if errors:
            assert len(errors) == 1, (raw, errors)
            assert not [f for f in replies if f["type"] == "joined"], (raw, replies)
            self.codes[errors[0]["code"]] += 1
            return
        kind = _kind(value)
        assert kind in NEEDED, f"accepted without an error: {raw!r:.200}"
        self.valid[kind] += 1
        if kind in ("create", "join"):
            assert [f for f in replies if f["type"] == "joined"], (raw, replies)
        elif kind == "resume":
            # A resume moves this socket's position in the match; put it back.
            self._exchange(self._resume_frame(), pongs=1)
        elif kind in ("answer", "vote"):
            self.accepted_actions += 1

    def _check_match_unchanged(self) -> None:
        view = self.view
        if view.get("your_answer") is not None:
            assert (self.match_id, view["round"]) in self.answered, view
        if view.get("your_vote") is not None:
            assert (self.match_id, view["round"]) in self.voted, view
        assert len(self.yours) <= self.accepted_actions, (self.yours, self.view)

    def _check_too_big(self, raw: str) -> None:
        self.too_big += 1
        with pytest.raises(ConnectionClosed) as closed:
            self._send(raw)
            while True:
                self._read()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CLOSE_TOO_BIG
        self._reconnect()

    def _create_match(self) -> None:
        create = json.dumps({"type": "create", "template": "classic"})
        replies = self._exchange(create, pongs=1)
        assert [f for f in replies if f["type"] == "joined"], replies

    def _connect(self) -> None:
        # websockets 17.1 deprecates a bare connect(); its context works on all.
        self._connection = contextlib.ExitStack()
        opening = connect(self.url, open_timeout=30, max_size=2**20)
        self.ws = self._connection.enter_context(opening)

    def _reconnect(self) -> None:
        self.close()
        self._connect()
        self._exchange(self._resume_frame(), pongs=1)

    def _resume_frame(self) -> str:
        frame = {"type": "resume", "match_id": self.match_id, "token": self.token}
        return json.dumps(frame | {"last_seq": self.seq})

    def _exchange(self, raw: str, pongs: int) -> list[dict[str, Any]]:
        """Send a frame and a ping; the frames that came back before the pongs.

        A fuzzed ping is answered by a pong or, when it is refused (a lone
        surrogate in a field), by an error frame instead: either ends its wait.
        """
        self._send(raw)
        self._send(PING)
        replies = []
        while pongs:
            frame = self._read()
            if frame["type"] == "pong":
                pongs -= 1
                continue
            replies.append(frame)
            if pongs == 2 and frame["type"] == "error":
                pongs -= 1
        return replies

    def _send(self, raw: str) -> None:
        assert self.ws is not None
        # Pacing, not waiting for an event: the server refuses frames beyond
        # its per-connection rate and closes a socket that keeps flooding.
        wait_s = PACE_S - (time.monotonic() - self._sent_at)
        if wait_s > 0:
            time.sleep(wait_s)
        self.ws.send(raw)
        self._sent_at = time.monotonic()

    def _read(self) -> dict[str, Any]:
        assert self.ws is not None
        frame: dict[str, Any] = json.loads(self.ws.recv(timeout=REPLY_TIMEOUT_S))
        if frame["type"] == "joined":
            self.match_id, self.token = frame["match_id"], frame["token"]
            self.matches.add(self.match_id)
            self.seq, self.view = 0, {}
        elif frame["type"] == "update":
            self._fold(frame)
        return frame

    def _fold(self, update: dict[str, Any]) -> None:
        match_id = update["view"]["match_id"]
        assert match_id in self.matches, f"an update of another match: {match_id}"
        for event in update["events"]:
            if event.get("yours"):
                self.yours.add((match_id, event["seq"]))
                done = self.answered if event["type"] == "answer_submitted" else None
                done = self.voted if event["type"] == "vote_cast" else done
                assert done is not None, event
                done.add((match_id, event["round"]))
        if match_id == self.match_id:
            self.seq, self.view = update["seq"], update["view"]

    def figures(self) -> dict[str, Any]:
        return {
            "frames": self.examples,
            "errors": dict(self.codes.most_common()),
            "valid": dict(self.valid),
            "too_big": self.too_big,
            "matches": len(self.matches),
        }

    def summary(self) -> str:
        return (
            f"{self.examples} frames: errors {dict(self.codes.most_common())}, "
            f"valid {dict(self.valid)}, too big {self.too_big}, "
            f"matches {len(self.matches)}"
        )


@pytest.fixture
def fuzzer(serve_url: str) -> Iterator[FrameFuzzer]:
    player = FrameFuzzer(serve_url).start()
    yield player
    player.close()


def test_fuzz_ws_json_frames_are_refused_and_change_nothing(
    fuzzer: FrameFuzzer,
) -> None:
    @FUZZ
    @given(value=frames)
    def send(value: Any) -> None:
        fuzzer.check(value)

    send()

    print(f"json frames: {fuzzer.summary()}")
    record_figures("fuzz-ws-json-frames", fuzzer.figures())
    assert fuzzer.examples >= 150
    assert fuzzer.codes["bad_frame"] > 0
    assert fuzzer.codes["unknown_type"] > 0


def test_fuzz_ws_raw_text_frames_are_refused_and_change_nothing(
    fuzzer: FrameFuzzer,
) -> None:
    @FUZZ
    @given(text=raw_texts)
    def send(text: str) -> None:
        fuzzer.check(_parsed(text), raw=text)

    send()

    print(f"raw text frames: {fuzzer.summary()}")
    record_figures("fuzz-ws-raw-text-frames", fuzzer.figures())
    assert fuzzer.examples >= 150
    assert fuzzer.codes["bad_json"] > 0


@pytest.mark.parametrize("frame", EDGE_FRAMES)
def test_fuzz_ws_edge_frames_are_handled(
    fuzzer: FrameFuzzer, frame: dict[str, Any]
) -> None:
    fuzzer.check(frame)

    fuzzer.check({"type": "ping"})

    assert fuzzer.valid["ping"] == 1


@pytest.mark.parametrize("depth", DEPTHS)
def test_fuzz_ws_deeply_nested_json_is_refused(fuzzer: FrameFuzzer, depth: int) -> None:
    raw = "[" * depth + "]" * depth

    fuzzer.check(_parsed(raw), raw=raw)

    assert set(fuzzer.codes) <= {"bad_json", "bad_frame"}
    assert sum(fuzzer.codes.values()) == 1


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# --- HTTP ----------------------------------------------------------------------


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_response(status: int, raw: bytes, body: bytes, created: set[str]) -> None:
    assert status < 500, f"{status} for body {body!r:.200}: {raw!r:.200}"
    reply = json.loads(raw)
    if status >= 400:
        assert isinstance(reply.get("error"), str) and reply["error"], reply
        assert isinstance(reply.get("message"), str) and reply["message"], reply
    else:
        assert 200 <= status < 300, status
        assert set(reply) >= created, reply


@pytest.mark.parametrize(
    ("route", "bodies", "created"),
    [
        pytest.param(
            "/api/matches",
            http_bodies(create_bodies),
            {"match_id", "token", "invite_code"},
            id="create",
        ),
        pytest.param(
            "/api/matches/join",
            http_bodies(join_bodies),
            {"match_id", "token"},
            id="join",
        ),
    ],
)
def test_fuzz_http_bodies_get_a_4xx_or_a_2xx(
    serve_url: str, route: str, bodies: st.SearchStrategy[bytes], created: set[str]
) -> None:
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(body=bodies)
    def send(body: bytes) -> None:
        status, raw = post(serve_url + route, body)
        statuses[status] += 1
        check_response(status, raw, body, created)

    send()

    print(f"{route}: {sum(statuses.values())} bodies, statuses {dict(statuses)}")
    record_figures(
        f"fuzz-http-{route.strip('/').replace('/', '-')}",
        {"bodies": sum(statuses.values()), "statuses": dict(statuses)},
    )
    assert sum(statuses.values()) >= 150
    assert any(400 <= status < 500 for status in statuses)


@pytest.mark.parametrize("route", ["/api/matches", "/api/matches/join"])
@pytest.mark.parametrize("depth", DEPTHS)
def test_fuzz_http_deeply_nested_json_gets_a_400(
    serve_url: str, route: str, depth: int
) -> None:
    body = b"[" * depth + b"]" * depth

    status, raw = post(serve_url + route, body)

    assert status == 400, raw
    assert json.loads(raw)["error"] in {"bad_json", "bad_frame"}
