"""Robot personas: voice, writing habits, think time, brain and pool bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from events.errors import ConfigError

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Voice(_Frozen):
    """How a persona sounds."""

    style: str
    system_prompt: str
    openers: tuple[str, ...] = Field(min_length=3)
    closers: tuple[str, ...] = Field(min_length=3)
    markers: tuple[str, ...] = Field(min_length=3)


class Habits(_Frozen):
    """Human-like imperfections in how a persona writes."""

    case: Literal["lower", "sentence", "mixed"] = "sentence"
    punctuation: Literal["none", "light", "full"] = "light"
    typo_rate: Annotated[float, Field(ge=0.0, le=0.3)] = 0.02
    min_words: Annotated[int, Field(ge=1)] = 4
    max_words: Annotated[int, Field(ge=1)] = 18
    emoji_rate: Probability = 0.0

    @model_validator(mode="after")
    def _check_lengths(self) -> Self:
        if self.min_words > self.max_words:
            raise ValueError(
                f"min_words ({self.min_words}) exceeds max_words ({self.max_words})"
            )
        return self


class ThinkTime(_Frozen):
    """How long a human would take, in seconds, before the result is sent."""

    answer_mean_s: Annotated[float, Field(ge=0)] = 8.0
    vote_mean_s: Annotated[float, Field(ge=0)] = 4.0
    spread: Annotated[float, Field(ge=0, le=1)] = 0.5


class BrainSettings(_Frozen):
    """Which brain answers for a persona, and its knobs."""

    kind: Literal["offline", "bedrock"] = "offline"
    model_id: str | None = None
    region: str | None = None
    max_tokens: Annotated[int, Field(ge=16, le=4096)] = 200
    temperature: Annotated[float, Field(ge=0, le=1.5)] = 0.9
    requests_per_s: Annotated[float, Field(gt=0)] = 5.0
    burst: Annotated[int, Field(ge=1)] = 5
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 5
    base_backoff_s: Annotated[float, Field(gt=0)] = 0.25
    # The offline brain answers in microseconds; a load test that should
    # feel like a hosted model sets a latency for it to wait per generation.
    simulated_latency_s: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _check_bedrock(self) -> Self:
        if self.kind == "bedrock" and not self.model_id:
            raise ValueError("a bedrock brain needs model_id")
        return self


class PoolBounds(_Frozen):
    """How far a persona's pool may scale."""

    min_workers: Annotated[int, Field(ge=0)] = 1
    max_workers: Annotated[int, Field(ge=1)] = 8
    target_in_flight: Annotated[int, Field(ge=1)] = 50
    max_concurrency: Annotated[int, Field(ge=1)] = 500

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if self.min_workers > self.max_workers:
            raise ValueError(
                f"min_workers ({self.min_workers}) exceeds max_workers "
                f"({self.max_workers})"
            )
        return self


class Persona(_Frozen):
    """One kind of robot player."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    description: str
    voice: Voice
    habits: Habits = Habits()
    think_time: ThinkTime = ThinkTime()
    brain: BrainSettings = BrainSettings()
    pool: PoolBounds = PoolBounds()


class PersonaBook(_Frozen):
    """Every configured persona."""

    personas: tuple[Persona, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_unique(self) -> Self:
        names = [p.name for p in self.personas]
        if len(set(names)) != len(names):
            raise ValueError(f"persona names must be unique, got {names}")
        return self

    @classmethod
    def load(cls, path: Path) -> PersonaBook:
        """Read and validate a personas file.

        Raises:
            ConfigError: the file is missing or a persona is invalid.
        """
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"invalid personas file {path}:\n{exc}") from exc

    def get(self, name: str) -> Persona:
        """A persona by name."""
        for persona in self.personas:
            if persona.name == name:
                return persona
        known = ", ".join(p.name for p in self.personas)
        raise ConfigError(f"unknown persona {name!r}; expected one of {known}")

    @property
    def names(self) -> tuple[str, ...]:
        """Persona names in file order."""
        return tuple(p.name for p in self.personas)
