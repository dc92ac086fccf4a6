"""The curated prompt bank."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from game.errors import GameError

PROMPTS_FILE = Path(__file__).resolve().parent.parent / "configs" / "prompts.yaml"
# A match draws up to 20 prompts (Timings.rounds) without repeats; three
# times that keeps matches played back to back from feeling the same.
MIN_PROMPTS = 60


class Prompt(BaseModel):
    """One creative prompt and the words that keep an answer on its topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str
    topic: tuple[str, ...] = Field(min_length=1)


class PromptBank(BaseModel):
    """Every prompt a match can draw from: at least ``MIN_PROMPTS``, all unique."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompts: tuple[Prompt, ...]

    @model_validator(mode="after")
    def _check_bank(self) -> Self:
        problems = [*_size_problems(self.prompts), *_duplicate_problems(self.prompts)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def load(cls, path: Path = PROMPTS_FILE) -> PromptBank:
        """Read and validate a prompt bank file."""
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (OSError, ValidationError) as exc:
            raise GameError(f"cannot load prompts from {path}: {exc}") from exc

    def get(self, prompt_id: str) -> Prompt:
        """Look a prompt up by id."""
        for prompt in self.prompts:
            if prompt.id == prompt_id:
                return prompt
        raise GameError(f"unknown prompt id {prompt_id!r}")

    def draw(self, used: Iterable[str], rng: random.Random) -> Prompt:
        """Pick a prompt that the match has not used yet."""
        taken = set(used)
        fresh = [p for p in self.prompts if p.id not in taken]
        if not fresh:
            raise GameError(
                f"the prompt bank has only {len(self.prompts)} prompts and the "
                "match used them all; add prompts or lower the round count"
            )
        return rng.choice(fresh)


def _size_problems(prompts: Sequence[Prompt]) -> list[str]:
    if len(prompts) >= MIN_PROMPTS:
        return []
    return [
        f"the bank has {len(prompts)} prompts, expected at least {MIN_PROMPTS}; "
        "add prompts to the file"
    ]


def _duplicate_problems(prompts: Sequence[Prompt]) -> list[str]:
    problems = []
    ids = Counter(p.id for p in prompts)
    if repeated := sorted(k for k, n in ids.items() if n > 1):
        problems.append(
            f"prompt ids {repeated} appear more than once, expected unique ids; "
            "give each prompt an id of its own"
        )
    # Texts compare ignoring case and spacing: those alone do not make a
    # prompt new to a player.
    texts = Counter(" ".join(p.text.casefold().split()) for p in prompts)
    if repeated := sorted(k for k, n in texts.items() if n > 1):
        problems.append(
            f"prompt texts {repeated} appear more than once, expected unique "
            "texts; remove or reword the copies"
        )
    return problems
