"""A brain that needs no network and no model: phrase banks and a heuristic.

Answers are assembled from the persona's openers, markers and closers, one of
a few sentence templates and the prompt's topic keywords, then roughened with
the persona's habits (case, punctuation, typos, length, emoji). Nothing is
taken from other players' answers or from the history, so instructions hidden
there cannot steer a robot; the history is read only to avoid repeating the
robot's own earlier answers. Words that would give a robot away (ai, bot,
instructions, prompt, human, seat labels, ...; ``_text.REVEALING_WORDS``) are
never taken from a custom prompt, and a draft that still spells one, or the
persona's name, is drawn again. Every draw comes from a ``random.Random``
seeded with the first eight bytes, read as a big-endian integer, of the sha256
of ``f"{seed}:{command_id}"``, so a command always gets the same result.

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
from collections.abc import Callable, Sequence, Set
from typing import NamedTuple

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
# Phrase banks kept per persona name; a worker plays one persona, a test a few.
_MAX_VOICES = 64
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
        self._voices: dict[str, _Voice] = {}

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
        rng = _CommandRandom(self._seed, command.command_id)
        voice = self._voice(persona)
        habits = persona.habits
        topic = self._topic_words(command)
        said = _said_before(command, memory)

        def refused(text: str) -> bool:
            # A typo or two adjacent words can still spell a revealing word or
            # the persona's name; a curated prompt's own topic words stay
            # allowed.
            return _normal(text) in said or reveals(text, persona.name, topic)

        for _ in range(_MAX_ATTEMPTS):
            draft, choice = _draft(rng, voice, habits, topic, memory.used)
            text = fit_chars(draft, habits, command.max_chars)
            if not refused(text):
                break
        else:
            text = _distinguish(text, topic, command.max_chars, refused)
        memory.remember(text, *_memory_keys(voice, choice, draft.included))
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
        # A clear winner needs no draw: choosing from one seat always gives
        # that seat, so the generator is seeded only to break a tie.
        if len(tied) == 1:
            target = tied[0]
        else:
            target = _CommandRandom(self._seed, command.command_id).choice(tied)
        logger.debug(
            "voted command_id=%s persona=%s target=%s tied=%d",
            command.command_id,
            persona.name,
            target,
            len(tied),
        )
        return Generation(brain=self.name, target=target)

    def _voice(self, persona: Persona) -> _Voice:
        # Keyed by name, but a persona of that name with other settings (a
        # reloaded file) gets its banks built afresh.
        voice = self._voices.get(persona.name)
        if voice is None or (voice.persona is not persona and voice.persona != persona):
            if len(self._voices) >= _MAX_VOICES:
                # Oldest first: a worker plays one persona, so this is rare.
                del self._voices[next(iter(self._voices))]
            voice = self._voices[persona.name] = _Voice.of(persona)
        return voice

    def _topic_words(self, command: GenerateAnswer) -> tuple[str, ...]:
        topic = self._topics.get(command.prompt_id)
        return topic if topic is not None else _custom_topic(command.prompt)


class _CommandRandom(random.Random):
    """The generator of one command, seeded from the brain's seed and its id."""

    def __init__(self, seed: int, command_id: str) -> None:
        digest = hashlib.sha256(f"{seed}:{command_id}".encode()).digest()
        # random.Random(number) hands an int unchanged to the C generator's
        # seed; calling that directly gives the very same state and skips
        # random.Random's __init__ and seed, Python code that costs about a
        # fifth of the seeding. gauss_next is what __init__ sets besides.
        super(random.Random, self).seed(int.from_bytes(digest[:8], "big"))
        self.gauss_next = None


class _Bank(NamedTuple):
    """Phrases to pick from and their keys in a match memory."""

    phrases: tuple[str, ...]
    keys: tuple[str, ...]

    @classmethod
    def of(cls, kind: str, phrases: Sequence[str]) -> _Bank:
        keys = tuple(f"{kind}:{phrase}" for phrase in phrases)
        return cls(tuple(phrases), keys)


class _Voice(NamedTuple):
    """A persona's phrase banks, built once rather than on every draft."""

    persona: Persona
    openers: _Bank
    markers: _Bank
    closers: _Bank
    # For each marker, the other markers an answer may add as its extra part.
    extras: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, persona: Persona) -> _Voice:
        voice = persona.voice
        markers = voice.markers
        extras = tuple(
            tuple(i for i, other in enumerate(markers) if other != marker) or (m,)
            for m, marker in enumerate(markers)
        )
        return cls(
            persona=persona,
            openers=_Bank.of("opener", voice.openers),
            markers=_Bank.of("marker", markers),
            closers=_Bank.of("closer", voice.closers),
            extras=extras,
        )


class _Choice(NamedTuple):
    """Which phrases a draft took, as indices into their banks."""

    template: int
    marker: int | None  # None when the template has no place for a marker
    extra: int
    opener: int
    closer: int


_TEMPLATE_BANK = _Bank.of("template", _TEMPLATES)
_HAS_MARKER = tuple("{m}" in template for template in _TEMPLATES)
_INCLUDED = {
    (opener, closer, emoji): frozenset(
        kind
        for kind, on in (("opener", opener), ("closer", closer), ("emoji", emoji))
        if on
    )
    for opener in (False, True)
    for closer in (False, True)
    for emoji in (False, True)
}
_CASES: tuple[Case, ...] = ("lower", "sentence")


@functools.lru_cache(maxsize=1024)
def _custom_topic(prompt: str) -> tuple[str, ...]:
    # A custom prompt is player text: keep no word that would give the robot
    # away, whatever the prompt asks for.
    words = _WORD.findall(prompt.lower())
    content = [
        w for w in words if w not in _STOPWORDS and len(w) > 2 and not revealing(w)
    ]
    return tuple(dict.fromkeys(content)) or ("this",)


def _index(bits: Callable[[int], int], n: int) -> int:
    """A uniformly drawn index below ``n``, which must be at least 1."""
    # As many random bits as n needs, drawn again while the number is too
    # big, so every index is equally likely. This is how random.choice
    # draws too, minus two Python calls per draw.
    size = n.bit_length()
    index = bits(size)
    while index >= n:
        index = bits(size)
    return index


def _two_of(words: tuple[str, ...], bits: Callable[[int], int]) -> tuple[str, str]:
    """Two words at different places in ``words``; one twice if it is alone."""
    n = len(words)
    if n < 2:
        return words[0], words[0]
    # A partial shuffle: the first word's place is handed to the last word,
    # and the second is drawn from the n - 1 places still open.
    first = _index(bits, n)
    second = _index(bits, n - 1)
    return words[first], words[second if second != first else n - 1]


def _pick(bank: _Bank, used: set[str], bits: Callable[[int], int]) -> int:
    # Prefer phrases not used yet in the match, so a robot varies its voice.
    if not used or used.isdisjoint(bank.keys):
        return _index(bits, len(bank.keys))
    fresh = [i for i, key in enumerate(bank.keys) if key not in used]
    if not fresh:
        return _index(bits, len(bank.keys))
    return fresh[_index(bits, len(fresh))]


def _draft(
    rng: random.Random,
    voice: _Voice,
    habits: Habits,
    topic: tuple[str, ...],
    used: set[str],
) -> tuple[Draft, _Choice]:
    """A fitted draft and the phrases it was made from."""
    # The order of the draws is part of what a seed means: keep it.
    bits = rng.getrandbits
    t = _pick(_TEMPLATE_BANK, used, bits)
    first, second = _two_of(topic, bits)
    m = _pick(voice.markers, used, bits)
    extras = voice.extras[m]
    extra = extras[_index(bits, len(extras))]
    opener = _pick(voice.openers, used, bits)
    closer = _pick(voice.closers, used, bits)
    markers = voice.markers.phrases
    core = _TEMPLATES[t].format(t1=first, t2=second, m=markers[m])
    with_opener, with_closer = _SHAPES[_index(bits, len(_SHAPES))]
    with_emoji = rng.random() < habits.emoji_rate
    # Drawn even when unused, so a persona's other draws do not shift.
    mixed_case = _CASES[_index(bits, len(_CASES))]
    rate = habits.typo_rate
    draft = Draft(
        core=sprinkle_typos(core, rate, rng),
        opener=sprinkle_typos(voice.openers.phrases[opener], rate, rng),
        closer=sprinkle_typos(voice.closers.phrases[closer], rate, rng),
        extra=markers[extra],
        emoji=_EMOJI[_index(bits, len(_EMOJI))],
        included=_INCLUDED[with_opener, with_closer, with_emoji],
        opener_join=_OPENER_JOINS[_index(bits, len(_OPENER_JOINS))],
        closer_join=_CLOSER_JOINS[_index(bits, len(_CLOSER_JOINS))],
        case=mixed_case if habits.case == "mixed" else habits.case,
    )
    choice = _Choice(t, m if _HAS_MARKER[t] else None, extra, opener, closer)
    return fit_words(draft, habits), choice


def _memory_keys(voice: _Voice, choice: _Choice, included: Set[str]) -> list[str]:
    # The core is not a phrase; the extra part is one of the persona's markers.
    picked = [(_TEMPLATE_BANK, choice.template)]
    if choice.marker is not None:
        picked.append((voice.markers, choice.marker))
    if "extra" in included:
        picked.append((voice.markers, choice.extra))
    if "opener" in included:
        picked.append((voice.openers, choice.opener))
    if "closer" in included:
        picked.append((voice.closers, choice.closer))
    return [bank.keys[i] for bank, i in picked if bank.phrases[i]]


def _said_before(command: GenerateAnswer, memory: MatchMemory) -> set[str]:
    """This robot's earlier answers in the match, normalised.

    Gathered once per command, so each attempt is one set lookup.
    """
    said = {_normal(text) for text in memory.said}
    seat = command.seat
    for past in command.history:
        for answer in past.answers:
            # Usually the robot's memory holds this answer already.
            if answer.seat == seat and answer.text not in memory.said:
                said.add(_normal(answer.text))
    return said


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


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
