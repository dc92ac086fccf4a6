"""The curated prompt bank."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from game.errors import GameError

PROMPTS_FILE = Path(__file__).resolve().parent.parent / "configs" / "prompts.yaml"


class Prompt(BaseModel):
    """One creative prompt and the words that keep an answer on its topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str
    topic: tuple[str, ...] = Field(min_length=1)


class PromptBank(BaseModel):
    """Every prompt a match can draw from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompts: tuple[Prompt, ...] = Field(min_length=1)

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
