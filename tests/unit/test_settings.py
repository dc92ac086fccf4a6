"""Settings: YAML files, environment overrides and clear failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from botocore.credentials import CredentialProvider, Credentials

from configs import load_settings
from events import BrokerError, ConfigError
from events.client_config import consumer_config, producer_config
from events.msk_auth import msk_token_callback


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
        pytest.param("engine: {engines: 99}", "engines", id="too-many-engines"),
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


def test_settings_msk_config_builds_an_oauth_client() -> None:
    settings = load_settings("configs/msk.yaml")

    config = producer_config(settings.kafka, "boot:9098")

    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanisms"] == "OAUTHBEARER"
    assert callable(config["oauth_cb"])
    assert config["enable.idempotence"] is True and config["acks"] == "all"


def test_settings_consumer_stores_offsets_only_after_work() -> None:
    settings = load_settings("configs/local.yaml")

    config = consumer_config(settings.kafka, "127.0.0.1:1", "group")

    assert config["enable.auto.offset.store"] is False
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["session.timeout.ms"] == 6000


class StaticCredentials(CredentialProvider):
    METHOD = "static-test"

    def load(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "secret-example", "session-token")


def test_msk_token_callback_signs_with_given_credentials() -> None:
    callback = msk_token_callback("eu-west-1", StaticCredentials())

    token, expires_at = callback(None)

    assert isinstance(token, str) and len(token) > 100
    assert "AKIDEXAMPLE" not in token  # base64 of a presigned URL, not raw keys
    assert time.time() < expires_at < time.time() + 3600


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
