"""A brain that needs no network and no model: phrase banks and a heuristic.

Answers are assembled from the persona's openers, markers and closers, one of
a few sentence templates and the prompt's topic keywords, then roughened with
the persona's habits (case, punctuation, typos, length, emoji). Nothing is
taken from other players' answers or from the history, so instructions hidden
there cannot steer a robot; the history is read only to avoid repeating the
robot's own earlier answers. Words that would give a robot away (ai, bot,
instructions, prompt, human, seat labels, ...; ``_text.REVEALING_WORDS``) are
never taken from a custom prompt, and a draft that still spells one, or the
persona's name, is drawn again. Every draw comes from a random generator seeded
by sha256 of ``f"{seed}:{command_id}"``, so a command always gets the same
result.

Votes score each other seat's answer for how human it looks and pick the
highest, breaking ties with the seeded generator. The features and weights
(in ``_text``) are:

Human-like:
    - starts with a lowercase letter: +1.0
    - ends without punctuation, or with a trailing "..": +1.0
    - casual words (lol, tbh, idk, ngl, kinda, gonna, omg, ...): +1.0 each,
      at most two
    - typos of common words (an inner letter doubled, dropped or swapped):
      +1.0 each, at most two
    - a lowercase "i" on its own: +0.5
    - first person ("i", "my", "me", ...): +0.5
    - a contraction, or one typed without its apostrophe ("dont"): +0.5
    - stretched letters or marks ("sooo", "??"): +0.5
    - at most four words: +0.5
    - a length unlike the median of the other answers on the ballot:
      up to +0.5, in proportion to the relative difference
Robot-like:
    - starts capitalised and ends with one "." or "!": -1.0
    - formal words (certainly, delightful, truly, ultimately, whimsical,
      perhaps, indeed, essence, ...): -1.0 each, at most three
    - stock phrases ("as a", "in conclusion", "a blend of", ...): -1.0 each
    - a semicolon or an em dash: -1.0
    - two or more commas: -0.5
    - more than 12 words: -0.5, and more than 18: a further -1.0
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import random
import re
from collections.abc import Callable, Sequence

from actors.brains._text import (
    Case,
    Draft,
    ballot_scores,
    fit_chars,
    fit_words,
    revealing,
    reveals,
    sprinkle_typos,
    trim_to,
    vocabulary,
    whole_words,
)
from actors.brains.base import Generation, MatchMemory
from actors.personas import Habits, Persona
from events.robot_events import GenerateAnswer, GenerateVote
from game.prompts import PromptBank

logger = logging.getLogger(__name__)

_TEMPLATES = (
    "{m} {t1} wins",
    "{t1} and {t2}, {m}",
    "{m} it has to be {t1}",
    "{t1}, maybe {t2}",
    "{m} {t1} over {t2} any day",
    "i keep coming back to {t1}",
    "the {t1} part, {m}",
    "{t1} every time, {m}",
    "something with {t1} and {t2}",
    "easy, {t1}",
    "{m} {t1} beats {t2}",
    "{t1} is underrated and {t2} is overrated",
    "mostly {t1}, a bit of {t2}",
    "{m} the whole {t1} thing",
    "gotta be {t1}, {m}",
    "{t1} first, then {t2}",
)
# Which of opener and closer an answer gets; most get at least one, so the
# persona is recognisable.
_SHAPES = ((True, False), (False, True), (True, True), (True, True), (False, False))
_OPENER_JOINS = (", ", ", ", " ")
_CLOSER_JOINS = (", ", ". ", " ")
_EMOJI = ("\U0001f642", "\U0001f602", "\U0001f914", "\U0001f605", "\u2728")
_MAX_ATTEMPTS = 8
_SPARE_WORDS = ("again", "too", "still", "also", "anyway", "honestly")
_WORD = re.compile(r"[a-z]+")
_STOPWORDS = vocabulary(
    "the a an and or but if of to in on at for with from by as is are was were be "
    "been what which who whom whose where when why how would could should will "
    "can you your yours one only just most more very this that these those it "
    "its into out far than then there their they them some any every each do "
    "does did have has had describe few like about thing things make makes "
    "ever never much many best worst always actually really"
)


class OfflineBrain:
    """Answers from persona phrase banks and votes by a humanness heuristic."""

    name = "offline"

    def __init__(self, prompts: PromptBank | None = None, seed: int = 0) -> None:
        """Build a brain.

        Args:
            prompts: the bank whose topic words keep answers on topic; the
                default bank when None.
            seed: mixed with each command id to seed that command's draws.
        """
        bank = prompts if prompts is not None else PromptBank.load()
        self._topics = {prompt.id: prompt.topic for prompt in bank.prompts}
        self._seed = seed

    async def answer(
        self, command: GenerateAnswer, persona: Persona, memory: MatchMemory
    ) -> Generation:
        """Answer the round's prompt in the persona's voice.

        Args:
            command: the prompt, its id, the seat and the length limit.
            persona: the voice and habits to write with.
            memory: what this robot said earlier in the match; updated.

        Returns:
            A generation whose text is at most ``command.max_chars`` long and,
            whenever a distinct text fits that limit, differs from the robot's
            earlier answers in the match.
        """
        rng = self._rng(command.command_id)
        topic = self._topic_words(command)
        own = _own_answers(command)
        refused = functools.partial(
            _refused, memory=memory, own=own, persona_name=persona.name, topic=topic
        )
        for _ in range(_MAX_ATTEMPTS):
            draft, keys = _draft(rng, persona, topic, memory)
            text = fit_chars(draft, persona.habits, command.max_chars)
            if not refused(text):
                break
        else:
            text = _distinguish(text, topic, command.max_chars, refused)
        memory.remember(text, *keys)
        logger.debug(
            "answered command_id=%s persona=%s chars=%d",
            command.command_id,
            persona.name,
            len(text),
        )
        return Generation(brain=self.name, text=text)

    async def vote(
        self, command: GenerateVote, persona: Persona, memory: MatchMemory
    ) -> Generation:
        """Vote for the other seat whose answer looks most human.

        Args:
            command: the round's answers and the voter's own seat.
            persona: the voter's persona (the heuristic is the same for all).
            memory: the voter's match memory (not needed to vote).

        Returns:
            A generation whose target is a seat other than ``command.seat``.

        Raises:
            ValueError: no answer on the ballot is from another seat.
        """
        others = [a for a in command.answers if a.seat != command.seat]
        if not others:
            seats = [a.seat for a in command.answers]
            raise ValueError(
                f"cannot vote: no answer from a seat other than {command.seat!r} "
                f"(ballot seats: {seats}); the ballot needs another player's answer"
            )
        scores = ballot_scores([a.text for a in others])
        best = max(scores)
        tied = [a.seat for a, s in zip(others, scores, strict=True) if best - s < 1e-9]
        target = self._rng(command.command_id).choice(tied)
        logger.debug(
            "voted command_id=%s persona=%s target=%s tied=%d",
            command.command_id,
            persona.name,
            target,
            len(tied),
        )
        return Generation(brain=self.name, target=target)

    def _rng(self, command_id: str) -> random.Random:
        digest = hashlib.sha256(f"{self._seed}:{command_id}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def _topic_words(self, command: GenerateAnswer) -> tuple[str, ...]:
        topic = self._topics.get(command.prompt_id)
        return topic if topic is not None else _custom_topic(command.prompt)


@functools.lru_cache(maxsize=1024)
def _custom_topic(prompt: str) -> tuple[str, ...]:
    # A custom prompt is player text: keep no word that would give the robot
    # away, whatever the prompt asks for.
    words = _WORD.findall(prompt.lower())
    content = [
        w for w in words if w not in _STOPWORDS and len(w) > 2 and not revealing(w)
    ]
    return tuple(dict.fromkeys(content)) or ("this",)


def _pick(
    bank: Sequence[str], kind: str, memory: MatchMemory, rng: random.Random
) -> str:
    # Prefer phrases not used yet in the match, so a robot varies its voice.
    if not memory.used:
        return rng.choice(bank)
    fresh = [p for p in bank if f"{kind}:{p}" not in memory.used]
    return rng.choice(fresh or bank)


def _draft(
    rng: random.Random, persona: Persona, topic: tuple[str, ...], memory: MatchMemory
) -> tuple[Draft, tuple[str, ...]]:
    """A fitted draft and the memory keys of the phrases it uses."""
    chosen = _choose_phrases(rng, persona, topic, memory)
    draft = fit_words(_assemble(rng, chosen, persona.habits), persona.habits)
    return draft, _memory_keys(chosen, draft.included)


def _choose_phrases(
    rng: random.Random, persona: Persona, topic: tuple[str, ...], memory: MatchMemory
) -> dict[str, str]:
    voice = persona.voice
    template = _pick(_TEMPLATES, "template", memory, rng)
    first, second = rng.sample(topic, 2) if len(topic) > 1 else (topic[0], topic[0])
    marker = _pick(voice.markers, "marker", memory, rng)
    return {
        "template": template,
        "core": template.format(t1=first, t2=second, m=marker),
        "marker": marker if "{m}" in template else "",
        "extra": rng.choice([m for m in voice.markers if m != marker] or [marker]),
        "opener": _pick(voice.openers, "opener", memory, rng),
        "closer": _pick(voice.closers, "closer", memory, rng),
    }


def _assemble(rng: random.Random, chosen: dict[str, str], habits: Habits) -> Draft:
    with_opener, with_closer = rng.choice(_SHAPES)
    with_emoji = rng.random() < habits.emoji_rate
    flags = {"opener": with_opener, "closer": with_closer, "emoji": with_emoji}
    # Drawn even when unused, so a persona's other draws do not shift.
    mixed_case: Case = rng.choice(("lower", "sentence"))
    return Draft(
        core=sprinkle_typos(chosen["core"], habits.typo_rate, rng),
        opener=sprinkle_typos(chosen["opener"], habits.typo_rate, rng),
        closer=sprinkle_typos(chosen["closer"], habits.typo_rate, rng),
        extra=chosen["extra"],
        emoji=rng.choice(_EMOJI),
        included=frozenset(kind for kind, on in flags.items() if on),
        opener_join=rng.choice(_OPENER_JOINS),
        closer_join=rng.choice(_CLOSER_JOINS),
        case=mixed_case if habits.case == "mixed" else habits.case,
    )


def _memory_keys(chosen: dict[str, str], included: frozenset[str]) -> tuple[str, ...]:
    wanted = {"template", "marker", *included}  # the core is not a phrase
    return tuple(
        # The extra part is one of the persona's markers.
        f"{'marker' if kind == 'extra' else kind}:{phrase}"
        for kind, phrase in chosen.items()
        if phrase and kind in wanted
    )


def _own_answers(command: GenerateAnswer) -> set[str]:
    return {
        _normal(answer.text)
        for past in command.history
        for answer in past.answers
        if answer.seat == command.seat
    }


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _repeats(text: str, memory: MatchMemory, own: set[str]) -> bool:
    return memory.has_said(text) or _normal(text) in own


def _refused(
    text: str,
    *,
    memory: MatchMemory,
    own: set[str],
    persona_name: str,
    topic: tuple[str, ...],
) -> bool:
    # A typo or two adjacent words can still spell a revealing word or the
    # persona's name; a curated prompt's own topic words stay allowed.
    return _repeats(text, memory, own) or reveals(text, persona_name, topic)


def _distinguish(
    text: str,
    topic: tuple[str, ...],
    max_chars: int,
    refused: Callable[[str], bool],
) -> str:
    used = set(_normal(text).split())
    words = [w for w in (*topic, *_SPARE_WORDS) if w not in used]
    # Whole words first; cutting inside a word is a last resort for tiny limits.
    for cut, word in itertools.product((whole_words, trim_to), words):
        room = max(max_chars - len(word) - 1, 0)
        candidate = f"{cut(text, room)} {word}".strip()
        if len(candidate) <= max_chars and not refused(candidate):
            return candidate
    logger.warning(
        "no distinct safe answer fits max_chars=%d; keeping the last draft", max_chars
    )
    return text
