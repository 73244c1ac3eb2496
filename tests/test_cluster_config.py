"""cluster.yaml (AWS) and cluster-local.yaml (on-premises) pass Ray's own launcher validation, offline.

Ray validates a cluster config in two steps, in this order: ``prepare_config`` merges the provider's
defaults (and, for ``type: local``, builds the single node type from ``head_ip``/``worker_ips``), then
``validate_config`` checks the merged dict against Ray's JSON schema and cross-field rules. Run the
other way round, a valid local file fails (no ``available_node_types`` or ``cluster_synced_files`` yet).

Neither step touches the cloud: everything that calls AWS (IAM profile, key pair, subnets, AMI) lives
in the provider's ``bootstrap_config``, which only ``ray up`` runs. The ``offline`` fixture makes that
a checked fact rather than an assumption: any socket connection during these tests raises.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("cluster.yaml", "cluster-local.yaml")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"cluster config validation tried to reach the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def prepared(name: str) -> dict[str, Any]:
    config = prepare_config(load(name))
    validate_config(config)
    return config


def commands(config: dict[str, Any], key: str) -> str:
    return "\n".join(config[key])


def constrained_version(package: str) -> str:
    text = (ROOT / "constraints.txt").read_text()
    match = re.search(rf"^{package}==(\S+)$", text, re.MULTILINE)
    assert match, f"constraints.txt pins no {package} version"
    return match.group(1)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_passes_ray_validation(name: str) -> None:
    config = prepared(name)
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("name", CONFIGS)
def test_validation_order_matters(name: str) -> None:
    raw = load(name)
    raw.pop("cluster_synced_files", None)
    with pytest.raises(RuntimeError, match="cluster_synced_files"):
        validate_config(raw)  # before prepare_config: the defaults are not merged in yet
    validate_config(prepare_config(raw))


@pytest.mark.parametrize("name", CONFIGS)
def test_validation_rejects_a_misspelt_key(name: str) -> None:
    config = prepare_config(load(name))
    config["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validate_config(config)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_node_installs_this_checkout_with_the_pinned_versions(name: str) -> None:
    config = prepared(name)
    assert config["file_mounts"]["~/auxtune"] == "."  # `ray up` runs from the repository root
    setup = commands(config, "setup_commands")
    assert "-c ~/auxtune/constraints.txt ~/auxtune 'ray[default]'" in setup  # + job server
    for key in ("head_setup_commands", "worker_setup_commands"):  # prepare_config merged them
        assert config["setup_commands"][0] in config[key]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_node_shares_the_ray_auth_token(name: str) -> None:
    config = prepared(name)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert "RAY_AUTH_MODE=token" in commands(config, key)


@pytest.mark.parametrize("name", CONFIGS)
def test_head_runs_a_shared_mlflow_server_and_keeps_trials_off(name: str) -> None:
    config = prepared(name)
    head = commands(config, "head_start_ray_commands")
    assert "mlflow server --host 0.0.0.0 --port 5000" in head
    assert "--backend-store-uri sqlite:///" in head
    assert "--artifacts-destination " in head
    head_type = config["available_node_types"][config["head_node_type"]]
    assert head_type["resources"].get("CPU") == 0 or "--num-cpus=0" in head


def test_aws_workers_are_gpu_nodes_within_the_global_limit() -> None:
    config = prepared("cluster.yaml")
    assert config["provider"]["type"] == "aws"
    workers = {
        name: node
        for name, node in config["available_node_types"].items()
        if name != config["head_node_type"]
    }
    assert workers
    for node in workers.values():
        assert node["resources"]["GPU"] >= 1
        assert 0 <= node["min_workers"] <= node["max_workers"] <= config["max_workers"]
        assert node["node_config"]["InstanceType"].startswith(("g4dn", "g5", "g6", "p3", "p4"))


def test_aws_container_images_match_the_pinned_ray() -> None:
    docker = prepared("cluster.yaml")["docker"]
    ray_version = constrained_version("ray")
    for key in ("head_image", "worker_image"):
        assert docker[key].startswith(f"rayproject/ray:{ray_version}-py311"), docker[key]
    assert docker["worker_image"].endswith("-gpu")


def test_local_cluster_uses_every_listed_worker() -> None:
    raw = load("cluster-local.yaml")
    config = prepared("cluster-local.yaml")
    (node_type,) = config["available_node_types"].values()
    workers = len(raw["provider"]["worker_ips"])
    assert raw["provider"]["head_ip"] not in raw["provider"]["worker_ips"]
    assert node_type["min_workers"] == node_type["max_workers"] == workers
