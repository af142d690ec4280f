"""deployment/: the Kubernetes manifests (kustomize base) and the container image.

Every object is validated against the Kubernetes schemas (``kubernetes_validate``, strict:
unknown fields fail), both as written and as ``kubectl kustomize`` renders it (when kubectl
is on PATH). Then what matters for running Vecraft: probes on each service's /healthz and
/readyz, resources, non-root, headless Services and volume claims for StatefulSets, a
PodDisruptionBudget per workload, and the services' flags parsed by the services' own
settings parsers, so the manifests cannot drift from the code.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.deployment.manifests import (
    DEPLOYMENT,
    K8S,
    K8S_VERSION,
    ROOT,
    Container,
    base_objects,
    by_kind,
    containers,
    find,
    kubectl,
    kustomization,
    load_yaml_documents,
    parse_service_args,
    pod_argv,
    pod_names,
    raw_objects,
    render_kustomize,
    selects,
    workloads,
)
from vecraft.local.nats import MAX_PAYLOAD_BYTES, SYNC_INTERVAL
from vecraft.local.topology import place_shards

pytestmark = pytest.mark.unit

BASE = base_objects()
CONTAINERS = containers(BASE)
SERVICE_CONTAINERS = [c for c in CONTAINERS if c.module is not None]
#: The programs of the cluster extra that the image also runs (etcd, NATS).
PROGRAM_CONTAINERS = [c for c in CONTAINERS if c.module is None]


def _ids(items: list[Container]) -> list[str]:
    return [c.id for c in items]


def _validate(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.caught.message} "
                    f"at {'/'.join(map(str, exc.caught.absolute_path))}")


# ---- the files --------------------------------------------------------------------------------
def test_every_raw_object_is_valid_kubernetes() -> None:
    objects = raw_objects()
    assert len(objects) >= 20
    for obj in objects:
        _validate(obj)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert set(kustomization()["resources"]) == files
    # The example Secrets are placeholders with nothing in them: applying them over real ones
    # would wipe the keys, so they are never part of the base.
    example = load_yaml_documents(K8S / "secrets.example.yaml")
    assert {o["metadata"]["name"] for o in example} == {"vecraft-api-key", "vecraft-tls"}
    for secret in example:
        assert all(v == "" for v in secret.get("stringData", {}).values()), secret["metadata"]["name"]
        assert "data" not in secret
    assert not by_kind(BASE, "Secret")


@pytest.mark.skipif(kubectl() is None, reason="kubectl is not on PATH: the kustomize rendering is not "
                                              "checked (the raw manifests still are)")
def test_kustomize_renders_the_same_objects_valid_and_tagged() -> None:
    rendered = render_kustomize()
    assert sorted((o["kind"], o["metadata"]["name"]) for o in rendered) == \
        sorted((o["kind"], o["metadata"]["name"]) for o in BASE)
    tag = kustomization()["images"][0]["newTag"]
    for obj in rendered:
        _validate(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "vecraft"
    for container in containers(rendered):
        assert container.spec["image"] == f"vecraft:{tag}", container.id


@pytest.mark.skipif(kubectl() is None, reason="kubectl is not on PATH: the TLS overlay is not rendered")
def test_the_tls_overlay_of_the_docs_turns_tls_on_at_the_gateway(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/deployment.md's overlay, applied to the base as written there."""
    docs = (ROOT / "docs" / "deployment.md").read_text()
    block = re.search(r"```yaml\n( *# kustomization.yaml of your overlay\n.*?) *```", docs, re.S)
    assert block is not None, "the TLS overlay is no longer in docs/deployment.md"
    overlay = yaml.safe_load(textwrap.dedent(block.group(1)))
    overlay["resources"] = [os.path.relpath(K8S, tmp_path)]  # kustomize refuses absolute roots
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    exe = kubectl()
    assert exe is not None
    done = subprocess.run([exe, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    gateway = next(c for c in containers(rendered) if c.id.endswith("gateway"))
    for obj in rendered:
        _validate(obj)
    assert gateway.flag("tls-cert") == ["/etc/vecraft/tls/tls.crt"]
    assert gateway.flag("tls-key") == ["/etc/vecraft/tls/tls.key"]
    assert all(gateway.spec[probe]["httpGet"]["scheme"] == "HTTPS"
               for probe in ("startupProbe", "livenessProbe", "readinessProbe"))
    pod = pod_names(gateway.workload)[0]
    argv = pod_argv(rendered, gateway, pod, tmp_path, monkeypatch)
    settings = parse_service_args(gateway.module or "", argv)
    assert (settings.tls_cert, settings.tls_key) == ("/etc/vecraft/tls/tls.crt", "/etc/vecraft/tls/tls.key")


# ---- what every container needs -------------------------------------------------------------
@pytest.mark.parametrize("container", SERVICE_CONTAINERS, ids=_ids(SERVICE_CONTAINERS))
def test_service_probes_healthz_and_readyz_on_its_http_port(container: Container) -> None:
    http_port = int(container.flag("http-port")[0])
    probes = {kind: container.spec.get(kind) for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind, probe in probes.items():
        if probe is not None:
            assert container.port(probe["httpGet"]["port"]) == http_port, (container.id, kind)
    if probes["startupProbe"] is not None:
        assert probes["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("container", PROGRAM_CONTAINERS, ids=_ids(PROGRAM_CONTAINERS))
def test_etcd_and_nats_have_their_own_probes(container: Container) -> None:
    ready = container.spec["readinessProbe"]["httpGet"]
    expected = {"etcd": ("/health", 2381), "nats-server": ("/healthz", 8222)}[container.command[0]]
    assert (ready["path"], container.port(ready["port"])) == expected
    assert container.spec["livenessProbe"]


@pytest.mark.parametrize("container", CONTAINERS, ids=_ids(CONTAINERS))
def test_container_has_resources_and_runs_as_non_root(container: Container) -> None:
    resources = container.spec["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), (container.id, section)
    pod_security = container.pod["securityContext"]
    own = container.spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"]["drop"] == ["ALL"]
    if own.get("readOnlyRootFilesystem") and container.module is not None:
        # Python writes its temporary files under /tmp.
        assert "/tmp" in {m["mountPath"] for m in container.spec["volumeMounts"]}
    assert container.pod["automountServiceAccountToken"] is False


def test_statefulsets_have_a_headless_service_and_volume_claims() -> None:
    statefulsets = by_kind(BASE, "StatefulSet")
    assert {s["metadata"]["name"] for s in statefulsets} == \
        {"vecraft-etcd", "vecraft-nats", "vecraft-journal", "vecraft-storage"}
    for sts in statefulsets:
        service = find(BASE, "Service", sts["spec"]["serviceName"])
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["clusterIP"] == "None"
        assert selects(service["spec"]["selector"], labels)
        assert selects(sts["spec"]["selector"]["matchLabels"], labels)
        claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
        assert claims, sts["metadata"]["name"]
        for c in sts["spec"]["template"]["spec"]["containers"]:
            assert claims <= {m["name"] for m in c["volumeMounts"]}, sts["metadata"]["name"]


def test_every_workload_of_several_pods_has_exactly_one_disruption_budget() -> None:
    budgets = by_kind(BASE, "PodDisruptionBudget")
    for workload in workloads(BASE):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        # A budget over one pod protects nothing (the compactor, one per cluster, has none).
        assert len(matching) == (1 if workload["spec"]["replicas"] > 1 else 0), workload["metadata"]["name"]
    assert all(any(selects(b["spec"]["selector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"])
                   for w in workloads(BASE)) for b in budgets)


# ---- the flags, parsed by the services themselves -------------------------------------------
@pytest.mark.parametrize("container", SERVICE_CONTAINERS, ids=_ids(SERVICE_CONTAINERS))
def test_service_flags_are_accepted_by_the_service(container: Container, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert container.module is not None and importlib.util.find_spec(container.module) is not None
    for pod_name in pod_names(container.workload):
        argv = pod_argv(BASE, container, pod_name, tmp_path, monkeypatch)
        try:
            settings = parse_service_args(container.module, argv)
        except SystemExit:
            pytest.fail(f"{container.id}: {container.module} refuses {argv}: {capsys.readouterr().err}")
        assert settings.node_id == pod_name
        assert settings.data_dir == Path("/data")
        assert {m["mountPath"] for m in container.spec["volumeMounts"]} >= {"/data"}
        assert {settings.grpc_port, settings.http_port} == \
            {int(p["containerPort"]) for p in container.spec["ports"]}
        if container.module.endswith("api_gateway"):
            from vecraft.services.api_gateway.auth.bootstrap import check_bind
            check_bind(settings.host, auth=settings.auth, insecure=settings.insecure)  # raises if refused
            assert settings.auth, "the gateway is reachable from other pods: API keys on"
        else:
            # Registered in the meta manager as host:port: the pod's address, not 0.0.0.0.
            assert settings.host == "10.0.0.7", container.id


def test_storage_pods_declare_the_shards_vecraft_up_would_give_them(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    storage = next(c for c in SERVICE_CONTAINERS if c.module == "vecraft.services.storage_node")
    shards, replicas = _shape()
    sts = storage.workload
    planned = {p.node: p for p in place_shards(shards, sts["spec"]["replicas"], replicas)}
    assert len(planned) == sts["spec"]["replicas"], "a storage pod would host nothing"
    configmap = find(BASE, "ConfigMap", "vecraft-storage-placement")
    for n in range(len(configmap["data"])):
        name = f"{sts['metadata']['name']}-{n}"
        argv = pod_argv(BASE, storage, name, tmp_path, monkeypatch)
        settings = parse_service_args(storage.module or "", argv)
        if n in planned:
            assert (settings.shards, settings.replica) == (list(planned[n].shards), planned[n].replica)
    # The committed ConfigMap is what the generator prints for the manifests' counts.
    generated = subprocess.run(
        [sys.executable, str(K8S / "placement.py"), "--shards", str(shards), "--storage-nodes",
         str(sts["spec"]["replicas"]), "--replicas", str(replicas),
         "--max-nodes", str(len(configmap["data"]))],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=60)
    assert generated.stdout == (K8S / "storage-placement.yaml").read_text()


# ---- the cluster's wiring agrees with itself ------------------------------------------------
def _container(component: str) -> Container:
    return next(c for c in CONTAINERS
                if c.workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
                == component)


def _shape() -> tuple[int, int]:
    """(shards, storage replicas per shard) as the meta manager and the fail-over manager have them."""
    meta, failover = _container("meta"), _container("failover")
    replicas = int(failover.flag("storage-replicas")[0])
    assert int(meta.flag("default-replicas")[0]) == replicas
    return int(meta.flag("default-shards")[0]), replicas


#: Services without --meta-address: the meta manager itself, and the compactor, which reads the
#: journal's Stats only (as under `vecraft up`).
NO_META_ADDRESS = {"vecraft.services.meta_manager", "vecraft.services.compactor"}


def _pod_addresses(component: str) -> list[str]:
    """``<pod>.<headless service>:<gRPC port>`` of every pod of a StatefulSet."""
    c = _container(component)
    service = c.workload["spec"]["serviceName"]
    return [f"{pod}.{service}:{c.flag('grpc-port')[0]}" for pod in pod_names(c.workload)]


def test_addresses_name_every_instance_and_the_right_ports() -> None:
    journals = ",".join(_pod_addresses("journal"))
    meta = _container("meta")
    meta_service = find(BASE, "Service", "vecraft-meta")
    meta_address = f"vecraft-meta:{meta.flag('grpc-port')[0]}"
    assert int(meta.flag("grpc-port")[0]) in {p["port"] for p in meta_service["spec"]["ports"]}
    partitions = {c.flag("data-partitions")[0] for c in SERVICE_CONTAINERS
                  if "--data-partitions" in c.args}
    assert len(partitions) == 1, "every service must agree on the journal's data partitions"
    for c in SERVICE_CONTAINERS:
        if "--journal-address" in c.args:
            assert c.flag("journal-address") == [journals], c.id
        if c.module not in NO_META_ADDRESS:
            assert c.flag("meta-address") == [meta_address], c.id
    # Services find each other through the meta manager's registry: no address lists between them.
    for c in SERVICE_CONTAINERS:
        assert not any(a in ("--storage-addresses", "--query-addresses") for a in c.args), c.id
    etcd_client = find(BASE, "Service", "vecraft-etcd-client")
    assert meta.flag("etcd-endpoints") == [f"vecraft-etcd-client:{etcd_client['spec']['ports'][0]['port']}"]


def test_each_component_has_ports_of_its_own() -> None:
    """Ports are per pod, but one pair per component keeps addresses, docs and probes unambiguous."""
    owner: dict[int, str] = {}
    for c in CONTAINERS:
        component = c.workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for port in c.spec["ports"]:
            number = int(port["containerPort"])
            assert owner.setdefault(number, component) == component, (number, owner[number], component)
    assert owner[7600] == owner[7601] == "compactor"


def test_one_compactor_with_the_journal_instances_trimming_nothing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    compactor = _container("compactor")
    workload = compactor.workload
    # One per cluster, and never two at once, not even during a rollout.
    assert (workload["kind"], workload["spec"]["replicas"]) == ("Deployment", 1)
    assert workload["spec"]["strategy"] == {"type": "Recreate"}
    assert compactor.module == "vecraft.services.compactor"
    settings = parse_service_args(compactor.module, pod_argv(BASE, compactor, pod_names(workload)[0],
                                                             tmp_path, monkeypatch))
    assert settings.journal_address.split(",") == _pod_addresses("journal")
    # The base has no backup target: the journal stays whole until the operator picks how to trim.
    assert (settings.backup_target, settings.trim_without_backup) == ("", False)
    assert (settings.gc_interval_s, settings.replica_retention_s) == (30.0, 86_400.0)


def test_the_docs_list_every_workload_with_its_pods_and_ports() -> None:
    docs = (ROOT / "docs" / "deployment.md").read_text()
    section = docs.split("## What runs", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in section.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = re.search(r"`(vecraft-[\w-]+)`", cells[1])
        assert name is not None, line
        ports = {int(p) for p in re.findall(r"\b\d{4,5}\b", cells[3])}
        rows[name.group(1)] = (int(cells[2].split()[0]), ports)
    assert set(rows) == {w["metadata"]["name"] for w in workloads(BASE)}
    for c in CONTAINERS:
        pods, ports = rows[c.workload["metadata"]["name"]]
        assert pods == c.workload["spec"]["replicas"], c.id
        assert ports == {int(p["containerPort"]) for p in c.spec["ports"]}, c.id


def test_replica_counts_agree() -> None:
    shards, replicas = _shape()
    query, failover = _container("query"), _container("failover")
    assert int(failover.flag("query-replicas")[0]) == query.workload["spec"]["replicas"]
    assert query.flag("shard") == [str(s) for s in range(shards)]
    assert replicas <= _container("storage").workload["spec"]["replicas"]
    nats_pods = pod_names(_container("nats").workload)
    assert int(_container("journal").flag("nats-replicas")[0]) == len(nats_pods)


def test_etcd_members_name_each_other() -> None:
    etcd = _container("etcd")
    pods = pod_names(etcd.workload)
    service = etcd.workload["spec"]["serviceName"]
    peer = etcd.port("peer")
    assert etcd.flag("initial-cluster") == [",".join(f"{p}=http://{p}.{service}:{peer}" for p in pods)]
    assert etcd.flag("name") == ["$(POD_NAME)"]


def test_nats_configuration_is_the_tested_one_and_names_every_server() -> None:
    nats = _container("nats")
    text = find(BASE, "ConfigMap", "vecraft-nats-config")["data"]["nats.conf"]
    assert re.search(rf"sync_interval:\s*{SYNC_INTERVAL}\b", text)
    assert re.search(rf"max_payload:\s*{MAX_PAYLOAD_BYTES}\b", text)
    service = nats.workload["spec"]["serviceName"]
    routes = re.findall(r"nats-route://([\w.-]+:\d+)", text)
    assert routes == [f"{p}.{service}:{nats.port('cluster')}" for p in pod_names(nats.workload)]
    urls = _container("journal").flag("nats-url")[0].split(",")
    assert urls == [f"nats://{p}.{service}:{nats.port('client')}" for p in pod_names(nats.workload)]


def _program(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


@pytest.mark.skipif(_program("etcd") is None, reason="etcd is not installed (the cluster extra)")
def test_etcd_accepts_the_flags() -> None:
    help_text = subprocess.run([_program("etcd") or "", "--help"], capture_output=True, text=True,
                               timeout=30, check=False)
    known = set(re.findall(r"--[a-z][a-z0-9-]+", help_text.stdout + help_text.stderr))
    flags = {a.split("=", 1)[0] for a in _container("etcd").args if a.startswith("--")}
    assert flags and flags <= known, flags - known


@pytest.mark.skipif(_program("nats-server") is None,
                    reason="nats-server is not installed (the cluster extra)")
def test_nats_server_accepts_the_configuration(tmp_path: Path) -> None:
    nats = _container("nats")
    text = find(BASE, "ConfigMap", "vecraft-nats-config")["data"]["nats.conf"]
    conf = tmp_path / "nats.conf"
    conf.write_text(text.replace("/data/", f"{tmp_path}/"))
    assert nats.args == ["--config", "/etc/nats/nats.conf"]
    checked = subprocess.run([_program("nats-server") or "", "-t", "-c", str(conf)], capture_output=True,
                             text=True, timeout=30, check=False, env={"POD_NAME": "vecraft-nats-0"})
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ---- the image --------------------------------------------------------------------------------
def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, rest) with continuation lines joined."""
    text = (DEPLOYMENT / "docker" / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        elif not stages:
            continue  # ARG before the first FROM
        stages[-1].append((instruction.upper(), rest.strip()))
    return stages


def test_dockerfile_is_multi_stage_non_root_with_the_vecraft_entrypoint() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert any(i == "RUN" and "pip install" in r for i, r in builder)
    # The runtime stage takes the built virtualenv and installs nothing itself.
    assert any(i == "COPY" and "--from=builder" in r and "/opt/venv" in r for i, r in runtime)
    assert not any(i == "RUN" and "pip" in r for i, r in runtime)
    users = [r for i, r in runtime if i == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    entry = [r for i, r in runtime if i == "ENTRYPOINT"]
    assert entry == ['["vecraft"]']
    text = (DEPLOYMENT / "docker" / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^vecraft = "vecraft\.cli:main"$', pyproject, re.M)


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copies = [r.split() for stage in _dockerfile_stages() for i, r in stage
              if i == "COPY" and not r.startswith("--from")]
    sources = {s.rstrip("/") for parts in copies for s in parts[:-1]}
    assert sources == allowed
    assert all((ROOT / s).exists() for s in sources)
