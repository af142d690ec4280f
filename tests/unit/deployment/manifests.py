"""Reading the deployment/ manifests for the tests: objects, pod templates, containers, flags."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from vecraft.shared.common.config import load_settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOYMENT = ROOT / "deployment"
K8S = DEPLOYMENT / "k8s"
CHART = DEPLOYMENT / "helm" / "vecraft"
#: Oldest Kubernetes release the manifests are written for (policy/v1 PDBs, StatefulSet PVCs).
K8S_VERSION = "1.30.0"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
SERVICE_MODULE = re.compile(r"^vecraft\.services\.(\w+)$")
_VAR = re.compile(r"\$\((\w+)\)")


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def raw_objects() -> list[dict[str, Any]]:
    """Every object of every manifest file under deployment/k8s (not the kustomization)."""
    objects: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            objects += load_yaml_documents(path)
    return objects


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def base_objects() -> list[dict[str, Any]]:
    """The objects of the files the kustomization lists (no images or labels applied)."""
    out: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        out += load_yaml_documents(K8S / name)
    return out


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render_kustomize() -> list[dict[str, Any]]:
    """``kubectl kustomize deployment/k8s`` parsed (the caller checks that kubectl exists)."""
    exe = kubectl()
    assert exe is not None
    done = subprocess.run([exe, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name}")


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class Container:
    """One container of a workload's pod template."""

    workload: dict[str, Any]
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}/{self.spec['name']}"

    @property
    def pod(self) -> dict[str, Any]:
        return dict(self.workload["spec"]["template"]["spec"])

    @property
    def command(self) -> list[str]:
        return list(self.spec.get("command", []))

    @property
    def args(self) -> list[str]:
        return [str(a) for a in self.spec.get("args", [])]

    @property
    def module(self) -> str | None:
        """``vecraft.services.<name>`` for a container run as ``python -m`` that module."""
        cmd = self.command
        if len(cmd) == 3 and cmd[0] == "python" and cmd[1] == "-m" and SERVICE_MODULE.match(cmd[2]):
            return cmd[2]
        return None

    def port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        for port in self.spec.get("ports", []):
            if port.get("name") == name_or_number:
                return int(port["containerPort"])
        raise KeyError(f"{self.id}: no port named {name_or_number}")

    def flag(self, name: str) -> list[str]:
        """Values after ``--name`` (up to the next flag), or of ``--name=value``."""
        args = self.args
        for i, arg in enumerate(args):
            if arg.startswith(f"--{name}="):
                return [arg.split("=", 1)[1]]
            if arg == f"--{name}":
                out = []
                for value in args[i + 1:]:
                    if value.startswith("--"):
                        break
                    out.append(value)
                return out
        raise KeyError(f"{self.id}: no --{name}")

    def env(self, pod_name: str, pod_ip: str = "10.0.0.7") -> dict[str, str]:
        """The container's environment as the kubelet would set it (fieldRefs and literals;
        Secret references are optional and left out)."""
        fields = {"metadata.name": pod_name, "status.podIP": pod_ip}
        out: dict[str, str] = {}
        for var in self.spec.get("env", []):
            if "value" in var:
                out[var["name"]] = str(var["value"])
            elif "fieldRef" in var.get("valueFrom", {}):
                out[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
        return out

    def expanded_args(self, env: dict[str, str]) -> list[str]:
        """Args with ``$(VAR)`` replaced as Kubernetes does (an unknown name stays as it is)."""
        return [_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), a) for a in self.args]

    def mounted_configmaps(self) -> Iterator[tuple[str, str]]:
        """(mount path, ConfigMap name) of every ConfigMap volume this container mounts."""
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        for mount in self.spec.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            if "configMap" in volume:
                yield mount["mountPath"], volume["configMap"]["name"]


def containers(objects: list[dict[str, Any]]) -> list[Container]:
    return [Container(w, c) for w in workloads(objects) for c in w["spec"]["template"]["spec"]["containers"]]


def pod_names(workload: dict[str, Any]) -> list[str]:
    """The names of a workload's pods: ``<name>-<ordinal>`` for a StatefulSet, one made-up
    name for a Deployment."""
    name, replicas = workload["metadata"]["name"], int(workload["spec"].get("replicas", 1))
    if workload["kind"] == "StatefulSet":
        return [f"{name}-{i}" for i in range(replicas)]
    return [f"{name}-7d9c5b6f4-x2x8q"]


# ---- the services' own parsers -----------------------------------------------------------------
def parse_service_args(module: str, argv: list[str]) -> Any:
    """The settings ``python -m module argv`` would run with (SystemExit on a bad flag)."""
    name = module.rsplit(".", 1)[1]
    if name == "storage_node":
        from vecraft.services.storage_node.main import parse_settings as storage_settings
        return storage_settings(argv)
    if name == "query_processor":
        from vecraft.services.query_processor.main import parse_settings as query_settings
        return query_settings(argv)
    from vecraft.services.api_gateway.settings import GatewaySettings
    from vecraft.services.compactor.main import CompactorSettings
    from vecraft.services.failover_manager.main import FailoverSettings
    from vecraft.services.journal_service.settings import JournalSettings
    from vecraft.services.meta_manager.main import MetaSettings
    cls, section = {"journal_service": (JournalSettings, "journal"), "meta_manager": (MetaSettings, "meta"),
                    "failover_manager": (FailoverSettings, "failover"),
                    "compactor": (CompactorSettings, "compactor"),
                    "api_gateway": (GatewaySettings, "gateway")}[name]
    return load_settings(cls, argv, section=section)


def pod_argv(objects: list[dict[str, Any]], container: Container, pod_name: str, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The container's args as the pod would get them: $(VAR)s expanded, the environment set,
    mounted ConfigMaps (from ``objects``) written under ``tmp_path`` and their paths moved there."""
    for key in [k for k in os.environ if k.startswith("VECRAFT_")]:
        monkeypatch.delenv(key)
    env = container.env(pod_name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    argv = container.expanded_args(env)
    for mount_path, name in container.mounted_configmaps():
        local = tmp_path / mount_path.strip("/")
        local.mkdir(parents=True, exist_ok=True)
        for key, text in find(objects, "ConfigMap", name)["data"].items():
            (local / key).write_text(text)
        argv = [a.replace(mount_path, str(local)) for a in argv]
    return argv


# ---- the Helm chart ------------------------------------------------------------------------------
def helm_renderer() -> str | None:
    """"helm" (the program on PATH), "helm_python" (Helm's Go SDK through the helm-python-sdk
    package), or None when neither is there."""
    if shutil.which("helm"):
        return "helm"
    try:
        import helm_python  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return None
    return "helm_python"


def render_helm(values: dict[str, Any], release: str = "vecraft") -> list[dict[str, Any]]:
    """The chart's objects for ``values`` (the caller checks :func:`helm_renderer`)."""
    how = helm_renderer()
    if how == "helm":
        done = subprocess.run(["helm", "template", release, str(CHART), "--values", "-"],
                              input=json.dumps(values), capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr
        text = done.stdout
    else:
        assert how == "helm_python"
        from helm_python.chart import Chart
        rendered = Chart.load(CHART).render(values, name=release, namespace="default", is_install=True)
        text = "\n---\n".join(v for k, v in sorted(rendered.items()) if not k.endswith("NOTES.txt"))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def placement_module() -> Any:
    """deployment/k8s/placement.py, imported."""
    sys.path.insert(0, str(K8S))
    try:
        import placement  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(K8S))
    return placement
