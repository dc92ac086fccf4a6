"""Settings: YAML files, environment overrides and clear failures."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.credentials import CredentialProvider, Credentials

from configs import load_settings
from events import BrokerError, ConfigError
from events.client_config import consumer_config, producer_config
from events.msk_auth import msk_token_callback
from events.settings import KafkaSettings
from game import Timings

MSK_BOOTSTRAP = "boot-abcd.c1.kafka-serverless.us-east-1.amazonaws.com:9098"


def test_settings_local_config_uses_the_embedded_broker() -> None:
    settings = load_settings("configs/local.yaml")

    assert settings.kafka.embedded
    assert settings.kafka.session_timeout_ms == 6000
    assert [t.name for t in settings.kafka.topics.all()] == [
        "match-events",
        "robot-events",
        "pool-events",
        "dead-letters",
    ]


def test_settings_environment_overrides_nested_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RO_KAFKA__BOOTSTRAP_SERVERS", "broker-1:9092")
    monkeypatch.setenv("RO_ENGINE__ENGINES", "3")

    settings = load_settings("configs/local.yaml")

    assert settings.kafka.bootstrap_servers == "broker-1:9092"
    assert not settings.kafka.embedded
    assert settings.engine.engines == 3
    assert settings.kafka.topics.match_events.partitions == 6


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        pytest.param("kafka: {linger_ms: -1}", "linger_ms", id="negative-linger"),
        pytest.param("kafka: {nope: 1}", "nope", id="unknown-key"),
        pytest.param(
            "kafka: {session_timeout_ms: 3000, heartbeat_interval_ms: 1500}",
            "a third of session_timeout_ms",
            id="heartbeat-too-slow",
        ),
        pytest.param(
            "kafka: {security_protocol: SASL_SSL, sasl_mechanism: OAUTHBEARER}",
            "needs aws_region",
            id="msk-without-region",
        ),
        pytest.param(
            "kafka: {sasl_mechanism: SCRAM-SHA-512, sasl_username: u, "
            "sasl_password: p}",
            "needs security_protocol",
            id="sasl-on-plaintext",
        ),
        pytest.param(
            "kafka: {security_protocol: SASL_SSL, sasl_mechanism: OAUTHBEARER, "
            "aws_region: eu-west-1}",
            "security_protocol SASL_SSL needs bootstrap_servers",
            id="sasl-without-bootstrap",
        ),
        pytest.param(
            "kafka: {security_protocol: SSL, bootstrap_servers: '  '}",
            "RO_KAFKA__BOOTSTRAP_SERVERS=host:port",
            id="ssl-with-blank-bootstrap",
        ),
        pytest.param("engine: {engines: 99}", "engines", id="too-many-engines"),
        pytest.param(
            "game: {timings: {answer_timout_s: 10}}",
            "unknown key(s) ['answer_timout_s'] in game.timings; expected some of "
            "['answer_timeout_s',",
            id="misspelled-timing",
        ),
        pytest.param(
            "game: {timings: {rounds: 0}}",
            "invalid game.timings: rounds=0.0: Input should be greater than or "
            "equal to 1",
            id="zero-rounds",
        ),
        pytest.param(
            "game: {timings: {rounds: 2.5}}",
            "rounds=2.5: Input should be a valid integer",
            id="fractional-rounds",
        ),
        pytest.param("- a list", "must hold a mapping", id="not-a-mapping"),
    ],
)
def test_settings_invalid_file_fails_with_its_name(
    tmp_path: Path, yaml_text: str, fragment: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert fragment in str(caught.value)
    assert "bad.yaml" in str(caught.value)


@pytest.mark.parametrize(
    "config_file",
    [
        pytest.param("configs/msk.yaml", id="msk"),
        pytest.param("configs/scram.yaml", id="scram"),
    ],
)
def test_settings_secured_config_without_bootstrap_fails_fast(
    monkeypatch: pytest.MonkeyPatch, config_file: str
) -> None:
    monkeypatch.delenv("RO_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("RO_KAFKA__SASL_PASSWORD", "from-the-environment")

    with pytest.raises(ConfigError) as caught:
        load_settings(config_file)

    message = str(caught.value)
    assert "SASL_SSL needs bootstrap_servers, got ''" in message
    assert "embedded broker, which speaks PLAINTEXT only" in message
    assert "RO_KAFKA__BOOTSTRAP_SERVERS=host:port" in message


def test_settings_scram_config_reports_every_problem_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RO_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("RO_KAFKA__SASL_PASSWORD", raising=False)

    with pytest.raises(ConfigError) as caught:
        load_settings("configs/scram.yaml")

    assert "RO_KAFKA__SASL_PASSWORD" in str(caught.value)
    assert "RO_KAFKA__BOOTSTRAP_SERVERS" in str(caught.value)


def test_settings_plaintext_without_bootstrap_is_the_embedded_broker() -> None:
    assert KafkaSettings(security_protocol="PLAINTEXT").embedded


def test_settings_game_timings_accept_every_timings_key(tmp_path: Path) -> None:
    overrides = {name: 2 for name in Timings.model_fields}
    path = tmp_path / "timings.yaml"
    path.write_text(f"game: {{timings: {overrides}}}")

    settings = load_settings(path)

    assert settings.game.timings == overrides


def test_settings_load_config_keeps_its_timing_overrides() -> None:
    settings = load_settings("configs/load.yaml")

    assert settings.game.timings["intermission_s"] == 0


def _stub_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSTUBFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-from-env")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda kafka: producer_config(kafka, MSK_BOOTSTRAP), id="producer"
        ),
        pytest.param(
            lambda kafka: consumer_config(kafka, MSK_BOOTSTRAP, "group"), id="consumer"
        ),
    ],
)
def test_settings_msk_config_builds_an_oauth_client(
    monkeypatch: pytest.MonkeyPatch,
    build: Callable[[KafkaSettings], dict[str, Any]],
) -> None:
    monkeypatch.setenv("RO_KAFKA__BOOTSTRAP_SERVERS", MSK_BOOTSTRAP)
    _stub_aws_environment(monkeypatch)
    settings = load_settings("configs/msk.yaml")

    config = build(settings.kafka)
    token, _ = config["oauth_cb"](None)

    assert config["bootstrap.servers"] == MSK_BOOTSTRAP
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanisms"] == "OAUTHBEARER"
    url, query = _signed_url(token)
    assert url.hostname == "kafka.us-east-1.amazonaws.com"
    assert query["X-Amz-Credential"].startswith("AKIDSTUBFROMENV/")
    assert query["X-Amz-Security-Token"] == "token-from-env"


def test_settings_producer_config_is_idempotent() -> None:
    settings = load_settings("configs/local.yaml")

    config = producer_config(settings.kafka, "127.0.0.1:1")

    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert "oauth_cb" not in config


def test_settings_consumer_stores_offsets_only_after_work() -> None:
    settings = load_settings("configs/local.yaml")

    config = consumer_config(settings.kafka, "127.0.0.1:1", "group")

    assert config["enable.auto.offset.store"] is False
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["session.timeout.ms"] == 6000


class StaticCredentials(CredentialProvider):
    METHOD = "static-test"

    def __init__(self, session_token: str | None) -> None:
        super().__init__()
        self.session_token = session_token

    def load(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "secret-example", self.session_token)


def _signed_url(token: str) -> tuple[Any, dict[str, str]]:
    """Undo the token: a presigned URL in unpadded base64url."""
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parts = urlsplit(url)
    return parts, dict(parse_qsl(parts.query, strict_parsing=True))


@pytest.mark.parametrize(
    "session_token",
    [
        pytest.param("session-token", id="with-session-token"),
        pytest.param(None, id="without"),
    ],
)
def test_msk_token_callback_signs_with_given_credentials(
    session_token: str | None,
) -> None:
    callback = msk_token_callback("eu-west-1", StaticCredentials(session_token))

    token, expires_at = callback(None)

    url, query = _signed_url(token)
    assert (url.scheme, url.hostname, url.path) == (
        "https",
        "kafka.eu-west-1.amazonaws.com",
        "/",
    )
    assert query["Action"] == "kafka-cluster:Connect"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    assert query["X-Amz-Credential"] == (
        f"AKIDEXAMPLE/{signed_at:%Y%m%d}/eu-west-1/kafka-cluster/aws4_request"
    )
    assert query.get("X-Amz-Security-Token") == session_token
    assert len(query["X-Amz-Signature"]) == 64
    assert "secret-example" not in url.geturl()
    assert expires_at == signed_at.replace(tzinfo=UTC).timestamp() + int(
        query["X-Amz-Expires"]
    )


def test_msk_token_callback_without_credentials_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    callback = msk_token_callback("eu-west-1")

    with pytest.raises(BrokerError, match="no AWS credentials"):
        callback(None)
