"""Text helpers of the offline brain: drafts, typos, casing, humanness.

The humanness features and their weights are listed in the docstring of
``actors.brains.offline``; keep the two in step.
"""

from __future__ import annotations

import functools
import random
import re
import statistics
from collections.abc import Iterable, Sequence, Set
from typing import Literal, NamedTuple

from actors.personas import Habits
from game.rules import SEAT_LABELS

Case = Literal["lower", "sentence"]
Punctuation = Literal["none", "light", "full"]

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
# A sentence after the first starts after a closing mark and a space (the
# first one is capitalised without a regex).
_LATER_SENTENCE_START = re.compile(r"([.!?]\s+)([a-z])")
_LONE_I = re.compile(r"\bi\b")
_MARKS = re.compile(r"[,.;:!?]")
# Three of a letter in a row; doubled marks are found by plain substring
# checks, which are cheaper than one more alternative in this regex.
_STRETCHED_LETTERS = re.compile(r"([a-z])\1\1")
_DOUBLED_MARKS = ("!!", "??", "!?", "?!")
_TRAILING = " ,;:-\u2014"
_SHORTEN_ORDER = ("emoji", "closer", "extra", "opener")
_LENGTHEN_ORDER = ("closer", "opener", "extra")


def vocabulary(words: str) -> frozenset[str]:
    """The set of the space-separated words."""
    return frozenset(words.split())


CASUAL_WORDS = vocabulary(
    "lol lmao tbh idk ngl kinda gonna omg wanna yeah yea nah lowkey haha "
    "bc imo smh fr tho prob dunno ok okay ugh meh literally"
)
FORMAL_WORDS = vocabulary(
    "certainly delightful truly ultimately whimsical perhaps indeed essence "
    "absolutely undoubtedly wonderful exquisite symphony embrace evokes "
    "captures timeless quintessential furthermore moreover additionally "
    "remarkable delightfully perfectly harmonious enchanting splendid"
)
ROBOT_PHRASES = (
    "as a ",
    "in conclusion",
    "it's important",
    "it is important",
    "a testament",
    "a blend of",
    "the perfect blend",
    "not only",
    "whether it's",
    "there's something",
)
FIRST_PERSON = vocabulary("i i'm im my me i'd i've id ive mine")
NO_APOSTROPHE = vocabulary("dont cant wont im ive thats isnt doesnt didnt youre")
# Typos are only spotted in these words, so real words are never mistaken for
# slips (a spelling dictionary would be more thorough and much heavier).
COMMON_WORDS = vocabulary(
    "the and that what with have this just like really would about think know "
    "because probably definitely actually people their there they thing "
    "something always never favorite better pretty little maybe though which "
    "could should want when from your good best time going "
    "everything anything nothing whatever sure"
)
# Slips of the common words that are real words themselves.
_REAL_SLIPS = vocabulary(
    "bet bets cold form god gong jut juts lie sue thee thy tie ting tis tat "
    "noting petty rally three tough thin wit"
)

# Words that would give a robot away: what it is, what it was told, who is who.
# Prompt text may carry them (a custom prompt is typed by a player), so they
# never become topic words; stems also catch "humano", "Systemanweisungen".
REVEALING_WORDS = vocabulary(
    "ai bot bots chatbot robot robots model models llm gpt assistant "
    "assistants instruction instructions system systems prompt prompts "
    "persona personas human humans roster rosters seat seats"
) | frozenset(SEAT_LABELS)
_REVEALING_STEMS = (
    "robot", "instruc", "system", "prompt", "persona", "assistant", "roster", "human",
)  # fmt: skip
_LETTERS = re.compile(r"[a-z]+")

HUMAN_WEIGHTS = {
    "starts_lower": 1.0,
    "open_ending": 1.0,
    "casual_word": 1.0,
    "typo": 1.0,
    "lone_i": 0.5,
    "first_person": 0.5,
    "contraction": 0.5,
    "stretched": 0.5,
    "very_short": 0.5,
}
ROBOT_WEIGHTS = {
    "polished": 1.0,
    "formal_word": 1.0,
    "stock_phrase": 1.0,
    "semicolon_or_dash": 1.0,
    "many_commas": 0.5,
    "long": 0.5,
    "very_long": 1.0,
}
OUTLIER_WEIGHT = 0.5


def _slips(word: str) -> set[str]:
    inner = range(1, len(word) - 1)
    swapped = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in inner}
    dropped = {word[:i] + word[i + 1 :] for i in inner}
    doubled = {word[:i] + word[i] + word[i:] for i in range(1, len(word))}
    return swapped | dropped | doubled


KNOWN_TYPOS = frozenset(
    slip
    for word in COMMON_WORDS
    if len(word) >= 4
    for slip in _slips(word)
    if slip not in COMMON_WORDS | _REAL_SLIPS
)

_LISTED_WORDS = CASUAL_WORDS | KNOWN_TYPOS | FORMAL_WORDS | FIRST_PERSON | NO_APOSTROPHE


# Drafts reuse the same few hundred phrase words, so each is judged once.
@functools.lru_cache(maxsize=16_384)
def revealing(word: str) -> bool:
    """Whether a lowercase word would tell a robot from a human player."""
    return word in REVEALING_WORDS or any(stem in word for stem in _REVEALING_STEMS)


def reveals(text: str, persona_name: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a text names a revealing word (outside ``allowed``) or the persona."""
    words = _LETTERS.findall(text.lower())
    joined = " ".join(words)
    # The same test as revealing() on each word, done as set and substring
    # checks: a stem has no space, so it is in the joined words exactly when
    # it is inside one of them. The allowed words are only gathered when
    # something revealing turned up.
    if not REVEALING_WORDS.isdisjoint(words) or any(
        map(joined.__contains__, _REVEALING_STEMS)
    ):
        spared = frozenset(allowed)
        if any(revealing(word) and word not in spared for word in words):
            return True
    name = persona_name.split("_")
    # Without the name's first word there is no need to look for the rest.
    if name[0] not in words:
        return False
    return f" {' '.join(name)} " in f" {joined} "


def add_typo(word: str, rng: random.Random) -> str:
    """The word with one slip: two inner letters swapped, one dropped or doubled."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    slip = rng.choice(("swap", "drop", "double"))
    if slip == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if slip == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def sprinkle_typos(text: str, rate: float, rng: random.Random) -> str:
    """The text with each word slipped with probability ``rate``."""
    draw = rng.random
    words: list[str] | None = None
    # One draw per word whatever happens, so the draws stay in step. Most
    # texts get no slip, so they are only split when one does.
    for i in range(text.count(" ") + 1):
        if draw() < rate:
            if words is None:
                words = text.split(" ")
            word = words[i]
            core = word.rstrip(",.?!")
            words[i] = add_typo(core, rng) + word[len(core) :]
    return text if words is None else " ".join(words)


def apply_case(text: str, case: Case) -> str:
    """The text in lowercase, or with sentences and a lone "i" capitalised."""
    if case == "lower":
        return text.lower()
    text = _LONE_I.sub("I", text)
    # The first letter is capitalised directly, and the regex with its
    # per-match callback runs only when a later sentence can start.
    if "a" <= text[:1] <= "z":
        text = text[0].upper() + text[1:]
    if "." in text or "!" in text or "?" in text:
        text = _LATER_SENTENCE_START.sub(_capitalise_match, text)
    return text


def _capitalise_match(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2).upper()


def apply_punctuation(text: str, punctuation: Punctuation) -> str:
    """The text with no punctuation, no final full stop, or a closing mark."""
    text = text.rstrip(_TRAILING)
    if punctuation == "none":
        return " ".join(_MARKS.sub("", text).split())
    if punctuation == "light":
        return text.rstrip(".")
    return text if text.endswith((".", "!", "?")) else text + "."


def whole_words(text: str, max_chars: int) -> str:
    """The longest run of whole leading words within ``max_chars``, maybe empty."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1].rfind(" ")
    return text[:cut].rstrip(_TRAILING) if cut > 0 else ""


def trim_to(text: str, max_chars: int) -> str:
    """The text cut at a word boundary to at most ``max_chars`` characters.

    A first word longer than the limit is cut inside, so something is left.
    """
    return whole_words(text, max_chars) or text[:max_chars].rstrip()


def _signals(text: str) -> tuple[float, int]:
    """Humanness of a stripped text and how many words it holds.

    Both come from one tokenisation, and the word checks run as set
    operations, so a ballot costs one scan per answer.
    """
    lowered = text.lower()
    tokens = _TOKEN.findall(lowered)
    length = len(tokens)
    # Few tokens are in any word list; the counts below look only at those.
    listed = list(filter(_LISTED_WORDS.__contains__, tokens))
    w = HUMAN_WEIGHTS
    human = w["starts_lower"] * text[:1].islower()
    human += w["open_ending"] * (text[-1:].isalnum() or text.endswith(".."))
    human += w["casual_word"] * min(2, sum(map(CASUAL_WORDS.__contains__, listed)))
    human += w["typo"] * min(2, sum(map(KNOWN_TYPOS.__contains__, listed)))
    human += w["lone_i"] * (_LONE_I.search(text) is not None)
    human += w["first_person"] * (not FIRST_PERSON.isdisjoint(listed))
    # A token holds an apostrophe only if the text does, so most texts skip
    # the per-token look.
    contraction = not NO_APOSTROPHE.isdisjoint(listed) or (
        "'" in lowered and any("'" in token for token in tokens)
    )
    human += w["contraction"] * contraction
    stretched = any(map(lowered.__contains__, _DOUBLED_MARKS)) or (
        _STRETCHED_LETTERS.search(lowered) is not None
    )
    human += w["stretched"] * stretched
    human += w["very_short"] * (length <= 4)
    r = ROBOT_WEIGHTS
    polished = text[:1].isupper() and text.endswith((".", "!"))
    robot = r["polished"] * (polished and not text.endswith(".."))
    robot += r["formal_word"] * min(3, sum(map(FORMAL_WORDS.__contains__, listed)))
    robot += r["stock_phrase"] * sum(map(lowered.__contains__, ROBOT_PHRASES))
    robot += r["semicolon_or_dash"] * (";" in text or "\u2014" in text)
    robot += r["many_commas"] * (text.count(",") >= 2)
    robot += r["long"] * (length > 12)
    robot += r["very_long"] * (length > 18)
    return human - robot, length


def humanness(text: str) -> float:
    """How human an answer looks on its own: human signals minus robot signals."""
    return _signals(text.strip())[0]


def ballot_scores(texts: Sequence[str]) -> list[float]:
    """Humanness of each answer, plus a bonus for a length unlike the others."""
    signals = [_signals(text.strip()) for text in texts]
    lengths = [length for _, length in signals]
    scores = []
    for i, (score, length) in enumerate(signals):
        others = lengths[:i] + lengths[i + 1 :]
        typical = statistics.median(others) if others else length
        spread = abs(length - typical) / max(typical, 1)
        scores.append(score + OUTLIER_WEIGHT * min(1.0, spread))
    return scores


class Draft(NamedTuple):
    """An answer's parts, before they are joined and fitted to the limits.

    A named tuple: immutable like a frozen dataclass, and several times
    cheaper to build, which matters as every attempt at an answer builds one.
    """

    core: str
    opener: str
    closer: str
    extra: str
    emoji: str
    included: frozenset[str]
    opener_join: str
    closer_join: str
    case: Case

    def words(self) -> int:
        """How many words the included parts hold."""
        # Spelled out: it runs for every draft, and a loop over parts() with
        # getattr costs about twice as much.
        included = self.included
        words = len(self.core.split())
        if "opener" in included:
            words += len(self.opener.split())
        if "extra" in included:
            words += len(self.extra.split())
        if "closer" in included:
            words += len(self.closer.split())
        return words

    def word_counts(self) -> dict[str, int]:
        """How many words each text part holds, included or not."""
        return {
            "core": len(self.core.split()),
            "opener": len(self.opener.split()),
            "extra": len(self.extra.split()),
            "closer": len(self.closer.split()),
        }

    def parts(self) -> tuple[str, ...]:
        """The included text parts, core first."""
        kinds = ("opener", "extra", "closer")
        return ("core", *(kind for kind in kinds if kind in self.included))

    def with_parts(self, included: Set[str], core: str | None = None) -> Draft:
        """The same draft with other parts included (and maybe another core)."""
        # Spelled out: _replace costs several times as much.
        return Draft(
            core=self.core if core is None else core,
            opener=self.opener,
            closer=self.closer,
            extra=self.extra,
            emoji=self.emoji,
            included=frozenset(included),
            opener_join=self.opener_join,
            closer_join=self.closer_join,
            case=self.case,
        )

    def render(self, habits: Habits) -> str:
        """The included parts joined, cased and punctuated."""
        return self.render_parts(self.included, habits)

    def render_parts(self, included: Set[str], habits: Habits) -> str:
        """The given parts joined, cased and punctuated."""
        text = self.core
        if "extra" in included:
            text = f"{text} {self.extra}"
        if "opener" in included:
            text = f"{self.opener}{self.opener_join}{text}"
        if "closer" in included:
            text = f"{text}{self.closer_join}{self.closer}"
        text = apply_punctuation(apply_case(text, self.case), habits.punctuation)
        return f"{text} {self.emoji}" if "emoji" in included else text


def fit_words(draft: Draft, habits: Habits) -> Draft:
    """The draft with parts added or dropped to fit the word limits."""
    words = draft.words()
    if habits.min_words <= words <= habits.max_words:
        # Most drafts fit as drawn: keep them rather than build a copy.
        return draft
    counts = draft.word_counts()
    included = set(draft.included)
    for kind in _LENGTHEN_ORDER:
        if words >= habits.min_words:
            break
        if kind not in included:
            included.add(kind)
            words += counts[kind]
    for kind in _SHORTEN_ORDER[1:]:
        if words <= habits.max_words:
            break
        if kind in included:
            included.discard(kind)
            words -= counts[kind]
    core = draft.core
    if words > habits.max_words:
        core = " ".join(core.split()[: habits.max_words])
    return draft.with_parts(included, core)


def fit_chars(draft: Draft, habits: Habits, max_chars: int) -> str:
    """The rendered draft, parts dropped and then trimmed to ``max_chars``."""
    included = draft.included
    for kind in _SHORTEN_ORDER:
        text = draft.render_parts(included, habits)
        if len(text) <= max_chars:
            return text
        included -= {kind}
    return trim_to(draft.render_parts(included, habits), max_chars)
