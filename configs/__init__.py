"""Application settings: a YAML file from this folder plus ``RO_*`` overrides.

``RO_CONFIG`` names the file (default ``configs/local.yaml``). Any setting can
be overridden from the environment with ``RO_`` and ``__`` between levels,
for example ``RO_KAFKA__BOOTSTRAP_SERVERS=broker:9092``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from events.errors import ConfigError
from events.settings import KafkaSettings
from game.templates import Timings

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = CONFIG_DIR / "local.yaml"


class EngineSettings(BaseModel):
    """How many engine actors own the matches, and their deadlines' pace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engines: Annotated[int, Field(ge=1, le=64)] = 2
    tick_interval_s: Annotated[float, Field(gt=0, le=5)] = 0.05
    ended_retention_s: Annotated[float, Field(ge=0)] = 600.0


class PoolSettings(BaseModel):
    """How the orchestrator runs the robot pool (bounds live per persona)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    orchestrators: Annotated[int, Field(ge=1, le=16)] = 1
    think_time_scale: Annotated[float, Field(ge=0)] = 1.0
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 400
    scale_interval_s: Annotated[float, Field(gt=0)] = 1.0
    upscale_delay_s: Annotated[float, Field(ge=0)] = 0.0
    downscale_delay_s: Annotated[float, Field(ge=0)] = 15.0
    health_interval_s: Annotated[float, Field(gt=0)] = 5.0
    health_timeout_s: Annotated[float, Field(gt=0)] = 3.0
    # A new worker is a new process (about 0.3 s idle, far more on a loaded
    # machine); until it answers its first ping only this bound replaces it.
    worker_start_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    worker_num_cpus: Annotated[float, Field(ge=0)] = 0.0
    worker_resources: dict[str, float] = Field(default_factory=dict)
    # Workers that ask Ray for nothing all land on the machines already
    # there; a pool then grows no further than its share of their CPUs
    # (see PersonaPool). False lets bounds alone decide.
    cap_workers_to_cpus: bool = True
    memory_matches: Annotated[int, Field(ge=10)] = 2000
    seed: int = 0


class GameSettings(BaseModel):
    """Overrides of the templates' timings for every match (tests, load runs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timings: dict[str, float] = Field(default_factory=dict)

    @field_validator("timings")
    @classmethod
    def _check_timings(cls, timings: dict[str, float]) -> dict[str, float]:
        # The engine applies these over each template's timings; checking
        # them against the same model here fails at start-up, not at the
        # first match created.
        known = sorted(Timings.model_fields)
        unknown = sorted(set(timings) - set(known))
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} in game.timings; expected some of "
                f"{known}; fix the spelling or remove the key"
            )
        try:
            Timings.model_validate(timings)
        except ValidationError as exc:
            wrong = "; ".join(
                f"{'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ValueError(f"invalid game.timings: {wrong}") from exc
        return timings


class ServeSettings(BaseModel):
    """The gateway: sockets per replica, frame limits and allowed origins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    replicas: Annotated[int, Field(ge=1, le=64)] = 1
    max_sockets_per_replica: Annotated[int, Field(ge=1)] = 1000
    allowed_origins: tuple[str, ...] = ()
    max_frame_bytes: Annotated[int, Field(ge=256, le=1 << 20)] = 4096
    frames_per_s: Annotated[float, Field(gt=0)] = 10.0
    frame_burst: Annotated[int, Field(ge=1)] = 20
    flood_close_after: Annotated[int, Field(ge=1)] = 100
    history_page_size: Annotated[int, Field(ge=1, le=200)] = 20


class AppSettings(BaseSettings):
    """Every setting of robot-orchestra, validated at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="RO_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    engine: EngineSettings = EngineSettings()
    pool: PoolSettings = PoolSettings()
    game: GameSettings = GameSettings()
    serve: ServeSettings = ServeSettings()
    personas_file: Path = CONFIG_DIR / "personas.yaml"
    templates_file: Path = CONFIG_DIR / "templates.yaml"
    prompts_file: Path = CONFIG_DIR / "prompts.yaml"

    @model_validator(mode="after")
    def _check_engines(self) -> Self:
        partitions = self.kafka.topics.match_events.partitions
        if self.engine.engines > partitions:
            raise ValueError(
                f"engine.engines ({self.engine.engines}) cannot exceed the "
                f"match_events partitions ({partitions}): an engine owns partitions"
            )
        return self

    def persona_names(self) -> tuple[str, ...]:
        """The names of the configured robot personas."""
        data = yaml.safe_load(self.personas_file.read_text()) or {}
        names = tuple(p["name"] for p in data.get("personas", []))
        if not names:
            raise ConfigError(f"no personas in {self.personas_file}")
        return names

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the YAML file passed as init arguments.
        return (env_settings, init_settings)


def load_settings(path: str | Path | None = None, **overrides: Any) -> AppSettings:
    """Load and validate the settings; fail fast with the file's name.

    Raises:
        ConfigError: the file is missing or a setting is invalid.
    """
    chosen = Path(path or os.environ.get("RO_CONFIG") or DEFAULT_CONFIG)
    if not chosen.is_absolute() and not chosen.exists():
        chosen = CONFIG_DIR / chosen.name
    try:
        data = yaml.safe_load(chosen.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {chosen}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {chosen} must hold a mapping")
    data.update(overrides)
    try:
        return AppSettings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings in {chosen}:\n{exc}") from exc


__all__ = [
    "AppSettings",
    "EngineSettings",
    "GameSettings",
    "PoolSettings",
    "ServeSettings",
    "load_settings",
]
