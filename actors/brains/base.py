"""The interface every brain implements, and a robot's memory of a match."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from actors.personas import Persona
from events.robot_events import GenerateAnswer, GenerateVote


@dataclass(frozen=True)
class Generation:
    """What a brain produced for one command."""

    brain: str
    text: str | None = None
    target: str | None = None
    fallback: bool = False
    detail: str = ""


@dataclass
class MatchMemory:
    """What one robot said in one match, so it never repeats itself."""

    said: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)

    def remember(self, text: str, *keys: str) -> None:
        """Record an answer and the phrase keys it used."""
        self.said.append(text)
        self.used.update(keys)

    def has_said(self, text: str) -> bool:
        """Whether this exact answer (ignoring case and spacing) was given."""
        wanted = " ".join(text.lower().split())
        return any(" ".join(s.lower().split()) == wanted for s in self.said)


class MemoryBook:
    """Short per-match memories of many robots, oldest dropped first."""

    def __init__(self, max_matches: int = 2000) -> None:
        self._max = max_matches
        self._memories: OrderedDict[tuple[str, str], MatchMemory] = OrderedDict()

    def get(self, match_id: str, robot_id: str) -> MatchMemory:
        """The memory of a robot in a match, created when first asked for."""
        key = (match_id, robot_id)
        memory = self._memories.pop(key, None) or MatchMemory()
        self._memories[key] = memory
        while len(self._memories) > self._max:
            self._memories.popitem(last=False)
        return memory

    def __len__(self) -> int:
        return len(self._memories)


class Brain(Protocol):
    """Generates a robot's answers and votes.

    A brain never sees who is human; it gets only the anonymous context a
    human player would see. Another provider is one module implementing this.
    """

    name: str

    async def answer(
        self, command: GenerateAnswer, persona: Persona, memory: MatchMemory
    ) -> Generation:
        """An answer to ``command.prompt`` in the persona's voice, at most
        ``command.max_chars`` characters, not repeating ``memory``."""
        ...

    async def vote(
        self, command: GenerateVote, persona: Persona, memory: MatchMemory
    ) -> Generation:
        """The seat (other than ``command.seat``) that looks most human."""
        ...
