"""deployment/helm/vecraft: the Helm chart.

Without a renderer, the chart's files are checked for what can be known without one: the
metadata, every ``.Values`` path a template uses exists in values.yaml, every ``include``
names a defined template, and the template actions nest. With Helm (the ``helm`` program,
or Helm's Go SDK through the ``helm-python-sdk`` package), the chart is rendered: with its
defaults it must produce the kustomize base's objects with the same containers, and with
other counts objects that are valid Kubernetes and whose flags the services accept.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.deployment.manifests import (
    CHART,
    K8S_VERSION,
    ROOT,
    base_objects,
    by_kind,
    containers,
    find,
    helm_renderer,
    parse_service_args,
    placement_module,
    pod_argv,
    pod_names,
    render_helm,
    selects,
    workloads,
)

pytestmark = pytest.mark.unit

TEMPLATES = sorted((CHART / "templates").glob("*"))
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
needs_helm = pytest.mark.skipif(
    helm_renderer() is None,
    reason="no Helm renderer: neither the helm program nor the helm-python-sdk package is installed "
           "(the chart's files are still checked; deployment/k8s is the tested path)")


def test_chart_metadata_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "vecraft"
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None and chart["appVersion"] == version.group(1)
    assert {p.name for p in TEMPLATES} >= {"_helpers.tpl", "NOTES.txt", "storage.yaml", "gateway.yaml"}


def _has_path(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_values_path_a_template_uses_exists() -> None:
    used = {m for path in TEMPLATES for m in re.findall(r"\.Values\.([\w.]+)", path.read_text())}
    assert used
    missing = sorted(p for p in used if not _has_path(VALUES, p))
    assert not missing, missing


def test_every_include_is_defined_and_actions_nest() -> None:
    defined = {m for path in TEMPLATES for m in re.findall(r'define "([\w.]+)"', path.read_text())}
    for path in TEMPLATES:
        text = path.read_text()
        for name in re.findall(r'(?:include|template) "([\w.]+)"', text):
            assert name in defined, f"{path.name}: {name}"
        depth = 0
        for action in re.findall(r"{{-?\s*(/\*.*?\*/|[^}]*?)\s*-?}}", text, re.S):
            word = action.split(" ", 1)[0]
            if word in {"if", "range", "with", "define", "block"}:
                depth += 1
            elif word == "end":
                depth -= 1
            assert depth >= 0, f"{path.name}: an end without its block"
        assert depth == 0, f"{path.name}: {depth} blocks not closed"


# ---- rendered --------------------------------------------------------------------------------
#: Container fields the chart's defaults must render exactly as deployment/k8s has them.
SAME_FIELDS = ("command", "args", "env", "ports", "readinessProbe", "livenessProbe", "startupProbe",
               "resources", "securityContext")


@needs_helm
def test_defaults_render_the_kustomize_base() -> None:
    base, helm = base_objects(), render_helm({})
    assert sorted((o["kind"], o["metadata"]["name"]) for o in helm) == \
        sorted((o["kind"], o["metadata"]["name"]) for o in base)
    ours = {c.id: c for c in containers(helm)}
    for container in containers(base):
        rendered = ours[container.id]
        for field in SAME_FIELDS:
            assert rendered.spec.get(field) == container.spec.get(field), (container.id, field)
        for field in ("replicas", "serviceName", "podManagementPolicy", "minReadySeconds", "strategy"):
            assert rendered.workload["spec"].get(field) == container.workload["spec"].get(field)
    for configmap in by_kind(base, "ConfigMap"):
        assert find(helm, "ConfigMap", configmap["metadata"]["name"])["data"] == configmap["data"]


BIGGER = {"shards": 6, "dataPartitions": 2, "storage": {"nodes": 5, "replicasPerShard": 3},
          "query": {"nodes": 3}, "journal": {"instances": 3}, "etcd": {"members": 5},
          "nats": {"servers": 5}, "tls": {"enabled": True}}


@needs_helm
def test_other_counts_render_valid_consistent_objects(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render_helm(BIGGER, release="prod")
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for workload in workloads(objects):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        budgets = [b for b in by_kind(objects, "PodDisruptionBudget")
                   if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(budgets) == (1 if workload["spec"]["replicas"] > 1 else 0), workload["metadata"]["name"]
    storage = find(objects, "StatefulSet", "prod-storage")
    assert storage["spec"]["replicas"] == 5
    expected = placement_module().placement_files(6, 5, 3, 12)
    assert find(objects, "ConfigMap", "prod-storage-placement")["data"] == \
        {k.replace("vecraft-", "prod-"): v for k, v in expected.items()}
    for container in containers(objects):
        if container.module is None:
            continue
        for pod in pod_names(container.workload):
            settings = parse_service_args(container.module, pod_argv(objects, container, pod, tmp_path,
                                                                     monkeypatch))
            if "data_partitions" in type(settings).model_fields:
                assert settings.data_partitions == 2
            if container.module.endswith("query_processor"):
                assert settings.shard == list(range(6))
            if container.module.endswith("failover_manager"):
                assert (settings.storage_replicas, settings.query_replicas) == (3, 3)
            if container.module.endswith("journal_service"):
                assert settings.nats_url.count("nats://prod-nats-") == 5
            if "journal_address" in type(settings).model_fields:
                assert settings.journal_address.count("prod-journal-") == 3
    gateway = next(c for c in containers(objects) if c.id.endswith("gateway"))
    assert {"name": "tls", "mountPath": "/etc/vecraft/tls", "readOnly": True} in gateway.spec["volumeMounts"]
    # tls.enabled: the gateway serves HTTPS and gRPC TLS with the Secret's files, probed over HTTPS.
    assert gateway.spec["args"][-4:] == ["--tls-cert", "/etc/vecraft/tls/tls.crt",
                                         "--tls-key", "/etc/vecraft/tls/tls.key"]
    assert all(gateway.spec[probe]["httpGet"]["scheme"] == "HTTPS"
               for probe in ("startupProbe", "livenessProbe", "readinessProbe"))
    assert {"name": "VECRAFT_ENDPOINT", "value": "https://127.0.0.1:8000"} in gateway.spec["env"]


@needs_helm
def test_more_replicas_than_storage_nodes_is_refused() -> None:
    with pytest.raises(Exception, match="replicasPerShard"):
        render_helm({"storage": {"nodes": 2, "replicasPerShard": 3}})


def _compactor(objects: list[dict[str, Any]]) -> Any:
    return next(c for c in containers(objects) if c.module == "vecraft.services.compactor")


@needs_helm
def test_compactor_enabled_false_renders_everything_else_unchanged() -> None:
    on, off = render_helm({}), render_helm({"compactor": {"enabled": False}})
    assert [o for o in on if o["metadata"]["name"] != "vecraft-compactor"] == off
    assert len(on) == len(off) + 1
    assert not any(c.module == "vecraft.services.compactor" for c in containers(off))


@needs_helm
@pytest.mark.parametrize(("values", "target", "without_backup"), [
    ({"backupTarget": "s3://backups/vecraft"}, "s3://backups/vecraft", False),
    ({"trimWithoutBackup": True}, "", True),
], ids=["backup-target", "trim-without-backup"])
def test_compactor_values_reach_its_settings(values: dict[str, Any], target: str, without_backup: bool,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compactor_values = {"gcIntervalS": 5, "replicaRetentionS": 3600, **values}
    objects = render_helm({"journal": {"instances": 3}, "compactor": compactor_values}, release="prod")
    compactor = _compactor(objects)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    settings = parse_service_args("vecraft.services.compactor",
                                  pod_argv(objects, compactor, pod_names(compactor.workload)[0], tmp_path,
                                           monkeypatch))
    journal = find(objects, "StatefulSet", "prod-journal")
    assert settings.journal_address.split(",") == \
        [f"prod-journal-{i}.prod-journal:7100" for i in range(journal["spec"]["replicas"])]
    assert (settings.backup_target, settings.trim_without_backup) == (target, without_backup)
    assert (settings.gc_interval_s, settings.replica_retention_s) == (5.0, 3600.0)


@needs_helm
def test_compactor_with_both_a_target_and_trim_without_backup_is_refused() -> None:
    with pytest.raises(Exception, match="trimWithoutBackup"):
        render_helm({"compactor": {"backupTarget": "s3://b/v", "trimWithoutBackup": True}})
