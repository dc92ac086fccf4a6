"""The cluster definition and the Serve config, checked by Ray's own validators.

``cluster/cluster.yaml`` goes through ``prepare_config`` then ``validate_config``
from ``ray.autoscaler._private.util``, the same steps ``ray up`` takes first.
Both run offline for the AWS provider: ``prepare_config`` only merges the
provider's ``defaults.yaml`` and fills in worker bounds, and ``validate_config``
checks ``ray-schema.json``; EC2 is first called later in ``ray up`` (to read
the instance types' CPUs). So the full pair runs here, with no AWS access.

Serve's ``ServeDeploySchema`` ignores keys it does not know, on purpose (so an
older Serve accepts a newer config); a misspelt option would then be dropped
without a word, so unknown keys are looked for against the schema's fields.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import BaseModel, ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

from configs import load_settings

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster" / "cluster.yaml"
SERVE_YAML = ROOT / "configs" / "serve.yaml"
SERVE_CLUSTER_YAML = ROOT / "configs" / "serve-cluster.yaml"
SERVE_CONFIGS = [
    pytest.param(SERVE_YAML, id="serve"),
    pytest.param(SERVE_CLUSTER_YAML, id="serve-cluster"),
]


def cluster() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CLUSTER_YAML.read_text())
    return data


def serve_config(path: Path = SERVE_YAML) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def exports(command: str) -> dict[str, str]:
    """The variables the ``export`` statements of a shell command line set."""
    found: dict[str, str] = {}
    for statement in command.split(";"):
        words = shlex.split(statement)
        if words[:1] != ["export"]:
            continue
        for word in words[1:]:
            name, _, value = word.partition("=")
            found[name] = value
    return found


def start_command(kind: str) -> str:
    """The ``ray start`` line of the head's or the workers' start commands."""
    commands: list[str] = cluster()[f"{kind}_start_ray_commands"]
    return next(c for c in commands if "ray start" in c)


def unknown_keys(model: type[BaseModel], data: Any, path: str = "") -> list[str]:
    """Paths of keys in ``data`` that no field of ``model`` (or below) names."""
    if not isinstance(data, dict):
        return []
    fields = {}
    for name, field in model.model_fields.items():
        fields[name] = field
        if field.alias:
            fields[field.alias] = field
    found: list[str] = []
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            found.append(where)
            continue
        models = _models_in(fields[key].annotation)
        if not models:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            place = f"{where}[{index}]" if isinstance(value, list) else where
            unknown = [set(unknown_keys(m, item, place)) for m in models]
            found.extend(sorted(set.intersection(*unknown)))
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def test_cluster_config_passes_ray_validation() -> None:
    prepared = prepare_config(cluster())

    validate_config(prepared)

    assert prepared["head_node_type"] == "head"
    assert prepared["available_node_types"]["head"]["max_workers"] == 0


@pytest.mark.parametrize(
    "where",
    [
        pytest.param((), id="top-level"),
        pytest.param(("available_node_types", "robots"), id="node-type"),
        pytest.param(("auth",), id="auth"),
    ],
)
def test_cluster_config_unknown_key_is_refused(where: tuple[str, ...]) -> None:
    config = cluster()
    target = config
    for key in where:
        target = target[key]
    target["robot_count"] = 8

    with pytest.raises(jsonschema.ValidationError, match="robot_count"):
        validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_config_only_robot_nodes_carry_the_robot_resource() -> None:
    types = cluster()["available_node_types"]

    robots, gateway, head = types["robots"], types["gateway"], types["head"]

    assert robots["resources"]["robot"] >= 1
    assert "robot" not in gateway["resources"] and "robot" not in head["resources"]
    assert gateway["resources"]["gateway"] == 1
    assert (robots["min_workers"], robots["max_workers"]) == (1, 20)
    assert (gateway["min_workers"], gateway["max_workers"]) == (1, 4)


def test_cluster_config_start_commands_export_the_same_settings() -> None:
    head, worker = exports(start_command("head")), exports(start_command("worker"))

    assert head == worker
    assert head["RAY_AUTH_MODE"] == "token"
    assert head["RO_CONFIG"] == "configs/msk.yaml"
    assert {"RO_KAFKA__BOOTSTRAP_SERVERS", "RO_KAFKA__AWS_REGION"} <= set(head)
    assert json.loads(head["RO_POOL__WORKER_RESOURCES"]) == {"robot": 1}


def test_cluster_config_exports_load_as_msk_settings_that_place_robots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in exports(start_command("worker")).items():
        if name.startswith("RO_"):
            monkeypatch.setenv(name, value)
    robots = cluster()["available_node_types"]["robots"]["resources"]

    settings = load_settings()

    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_mechanism == "OAUTHBEARER"
    assert settings.kafka.replication_factor == -1
    assert settings.pool.worker_resources == {"robot": 1.0}
    assert all(
        robots[name] >= need for name, need in settings.pool.worker_resources.items()
    )


@pytest.mark.parametrize("path", SERVE_CONFIGS)
def test_serve_config_passes_serve_schema(path: Path) -> None:
    data = serve_config(path)

    schema = ServeDeploySchema.model_validate(data)

    assert unknown_keys(ServeDeploySchema, data) == []
    assert [app.import_path for app in schema.applications] == ["serve_app:app"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param((), "proxy_locaton", id="top-level"),
        pytest.param(("applications", 0), "applications[0].proxy_locaton", id="app"),
        pytest.param(
            ("applications", 0, "deployments", 0),
            "applications[0].deployments[0].proxy_locaton",
            id="deployment",
        ),
    ],
)
def test_serve_config_unknown_key_is_found(
    where: tuple[str | int, ...], expected: str
) -> None:
    data = serve_config()
    target: Any = data
    for key in where:
        target = target[key]
    target["proxy_locaton"] = "HeadOnly"

    ServeDeploySchema.model_validate(data)  # Serve itself lets it through
    found = unknown_keys(ServeDeploySchema, data)

    assert found == [expected]


def test_serve_cluster_config_keeps_the_nodes_settings_and_gateway_nodes() -> None:
    app = serve_config(SERVE_CLUSTER_YAML)["applications"][0]
    gateway_nodes = [
        node
        for node in cluster()["available_node_types"].values()
        if "gateway" in node["resources"]
    ]

    env_vars = app.get("runtime_env", {}).get("env_vars", {})
    assert not [name for name in env_vars if name.startswith("RO_")]
    options = app["deployments"][0]["ray_actor_options"]
    assert set(options["resources"]) == {"gateway"}
    assert gateway_nodes
    assert all(
        node["resources"]["gateway"] >= options["resources"]["gateway"]
        for node in gateway_nodes
    )


def test_serve_config_bad_value_is_refused_by_serve() -> None:
    data = serve_config()
    data["applications"][0]["deployments"][0]["max_ongoing_requests"] = 0

    with pytest.raises(ValidationError, match="max_ongoing_requests"):
        ServeDeploySchema.model_validate(data)


def test_serve_config_import_path_loads_without_starting_ray() -> None:
    # A fresh interpreter: in this one serve_app may be imported already, and
    # the unit guard would hide a ray.init() behind its own error.
    import_path = serve_config()["applications"][0]["import_path"]
    script = (
        "import json, ray\n"
        "from ray._common.utils import import_attr\n"
        "from ray.serve import Application\n"
        f"app = import_attr({import_path!r})\n"
        "print(json.dumps({'application': isinstance(app, Application),"
        " 'ray_initialized': ray.is_initialized()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RO_"))}

    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"application": True, "ray_initialized": False}
