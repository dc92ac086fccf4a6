"""Kafka settings: where the broker is, how to authenticate, which topics."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class TopicSettings(BaseModel):
    """One topic's name and partition count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]
    partitions: Annotated[int, Field(ge=1, le=1000)] = 6


class Topics(BaseModel):
    """Every topic the system reads and writes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    match_events: TopicSettings = TopicSettings(name="match-events")
    # The name prefix and partition count of the per-persona command topics.
    robot_commands: TopicSettings = TopicSettings(name="robot-commands")
    robot_events: TopicSettings = TopicSettings(name="robot-events")
    pool_events: TopicSettings = TopicSettings(name="pool-events", partitions=3)
    dead_letters: TopicSettings = TopicSettings(name="dead-letters", partitions=1)

    @model_validator(mode="after")
    def _check_partitions(self) -> Self:
        counts = (self.match_events.partitions, self.robot_events.partitions)
        if counts[0] != counts[1]:
            raise ValueError(
                "match_events and robot_events need the same partition count "
                f"(an engine owns the same partitions of both), got {counts}"
            )
        return self

    def persona_commands(self, persona: str) -> TopicSettings:
        """The command topic of one persona's pool: ``robot-commands.<persona>``.

        Each persona has a topic of its own so its consumer group's lag is
        exactly that persona's backlog and one slow persona never holds up
        the partitions of another.
        """
        base = self.robot_commands
        return TopicSettings(name=f"{base.name}.{persona}", partitions=base.partitions)

    def all(self) -> list[TopicSettings]:
        """Every topic but the per-persona command topics, in a stable order."""
        return [
            self.match_events,
            self.robot_events,
            self.pool_events,
            self.dead_letters,
        ]


class KafkaSettings(BaseModel):
    """How to reach Kafka. No bootstrap servers means the embedded broker.

    The embedded broker speaks PLAINTEXT only, so SSL or SASL settings need
    ``bootstrap_servers``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = ""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    sasl_mechanism: Literal["OAUTHBEARER", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = (
        None
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    aws_region: str | None = None
    client_id: str = "robot-orchestra"
    replication_factor: int = Field(default=1, ge=-1)
    session_timeout_ms: Annotated[int, Field(ge=1000)] = 6000
    heartbeat_interval_ms: Annotated[int, Field(ge=100)] = 1500
    max_poll_interval_ms: Annotated[int, Field(ge=1000)] = 300_000
    linger_ms: Annotated[int, Field(ge=0)] = 1
    # The embedded broker holds an empty fetch for about fetch.wait.max.ms
    # even when records arrive meanwhile (librdkafka's 500 ms default gave
    # a 200 ms produce-to-consume hop; 10 ms gave 3 ms). Each idle consumer
    # then sends about 1000 / fetch_wait_max_ms fetches a second.
    fetch_wait_max_ms: Annotated[int, Field(ge=1, le=5000)] = 25
    request_timeout_ms: Annotated[int, Field(ge=1000)] = 30_000
    topics: Topics = Topics()

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        # Every problem at once: a file fixed one error at a time takes as
        # many deploys as it has errors.
        problems = [*self._heartbeat_problems(), *self._auth_problems()]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _heartbeat_problems(self) -> list[str]:
        if self.heartbeat_interval_ms * 3 <= self.session_timeout_ms:
            return []
        return [
            f"heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be at "
            f"most a third of session_timeout_ms ({self.session_timeout_ms})"
        ]

    def _auth_problems(self) -> list[str]:
        problems = []
        if self.sasl_mechanism == "OAUTHBEARER" and not self.aws_region:
            problems.append("OAUTHBEARER (MSK IAM) needs aws_region")
        scram = (self.sasl_mechanism or "").startswith("SCRAM")
        if scram and not (self.sasl_username and self.sasl_password):
            problems.append(
                f"{self.sasl_mechanism} needs sasl_username and sasl_password; "
                "give the password with RO_KAFKA__SASL_PASSWORD"
            )
        if self.sasl_mechanism and not self.security_protocol.startswith("SASL"):
            problems.append(
                f"sasl_mechanism {self.sasl_mechanism} needs security_protocol "
                f"SASL_SSL or SASL_PLAINTEXT, got {self.security_protocol}"
            )
        if self.embedded and self.security_protocol != "PLAINTEXT":
            # Otherwise the embedded broker starts instead, and clients fail
            # to authenticate with it only when their timeouts run out.
            problems.append(
                f"security_protocol {self.security_protocol} needs "
                f"bootstrap_servers, got {self.bootstrap_servers!r}: an empty "
                "value means the embedded broker, which speaks PLAINTEXT only; "
                "set kafka.bootstrap_servers in the config file or "
                "RO_KAFKA__BOOTSTRAP_SERVERS=host:port[,host:port]"
            )
        return problems

    @property
    def embedded(self) -> bool:
        """True when no bootstrap servers are configured."""
        return not self.bootstrap_servers.strip()
