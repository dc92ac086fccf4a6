"""Match templates: how many humans and robots, and the match's timings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from game.errors import TemplateError

MIN_SEATS = 3
MAX_SEATS = 8
TEMPLATES_FILE = Path(__file__).resolve().parent.parent / "configs" / "templates.yaml"


class Timings(BaseModel):
    """Rounds, deadlines and limits shared by every template."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: Annotated[int, Field(ge=1, le=20)] = 5
    answer_timeout_s: Annotated[float, Field(gt=0)] = 45.0
    vote_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    intermission_s: Annotated[float, Field(ge=0)] = 5.0
    max_answer_chars: Annotated[int, Field(ge=1, le=2000)] = 280
    invite_ttl_s: Annotated[float, Field(gt=0)] = 900.0


class MatchTemplate(BaseModel):
    """A resolved template: seat counts plus timings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    humans: Annotated[int, Field(ge=1)]
    robots: Annotated[int, Field(ge=0)]
    timings: Timings

    @property
    def seats(self) -> int:
        """How many seats the match has."""
        return self.humans + self.robots


class TemplateBook(BaseModel):
    """The templates of ``configs/templates.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: Timings = Timings()
    templates: dict[str, dict[str, int]]

    @classmethod
    def load(cls, path: Path = TEMPLATES_FILE) -> TemplateBook:
        """Read and validate a templates file."""
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (OSError, ValidationError) as exc:
            raise TemplateError(f"cannot load templates from {path}: {exc}") from exc

    def resolve(
        self,
        name: str,
        *,
        humans: int | None = None,
        robots: int | None = None,
        **timing_overrides: Any,
    ) -> MatchTemplate:
        """Build a template by name; ``custom`` takes its own seat counts.

        Raises:
            TemplateError: unknown name, or seat counts outside 3 to 8 seats.
        """
        if name == "custom":
            if humans is None or robots is None:
                raise TemplateError("a custom match needs both humans and robots")
            counts = {"humans": humans, "robots": robots}
        elif name in self.templates:
            counts = self.templates[name]
            given = {"humans": humans, "robots": robots}
            for key, value in given.items():
                if value is not None and value != counts[key]:
                    raise TemplateError(
                        f"template {name!r} has {counts[key]} {key}, got {value}; "
                        "use the custom template for other counts"
                    )
        else:
            known = ", ".join([*sorted(self.templates), "custom"])
            raise TemplateError(f"unknown template {name!r}; expected one of {known}")
        _check_seats(counts["humans"], counts["robots"])
        unknown = set(timing_overrides) - set(Timings.model_fields)
        if unknown:
            raise TemplateError(
                f"unknown timing setting(s) {sorted(unknown)}; expected some of "
                f"{sorted(Timings.model_fields)}"
            )
        try:
            timings = self.defaults.model_copy(update=timing_overrides)
            timings = Timings.model_validate(timings.model_dump())
        except ValidationError as exc:
            raise TemplateError(f"invalid timing override: {exc}") from exc
        return MatchTemplate(name=name, timings=timings, **counts)


def _check_seats(humans: int, robots: int) -> None:
    if humans < 1:
        raise TemplateError(f"a match needs at least 1 human, got {humans}")
    if robots < 0:
        raise TemplateError(f"robots cannot be negative, got {robots}")
    if not MIN_SEATS <= humans + robots <= MAX_SEATS:
        raise TemplateError(
            f"a match has {MIN_SEATS} to {MAX_SEATS} seats, got "
            f"{humans} humans + {robots} robots = {humans + robots}"
        )
