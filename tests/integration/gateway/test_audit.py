"""The audit log of admin actions at a real gateway with --auth (docs/audit.md).

One cluster of real processes for the module. Admin actions over HTTP and gRPC appear in
GET /v1/audit in order with their actor; a tenant's admin sees its tenant's entries only;
non-admins get 403; the meta manager keeps materializing DDL past audit entries; and the
entries survive a restart of the journal and the gateway.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from tests.integration.gateway.cluster import Cluster, run_cluster
from vecraft.cli import main as cli_main
from vecraft.shared.rpc.v1 import collection_pb2, gateway_pb2_grpc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    root: Path = tmp_path_factory.mktemp("audit-cluster")
    key_file = root / "admin.key"
    with run_cluster(root, shards=1, data_partitions=1,
                     gateway_args=["--auth", "--bootstrap-admin-key-file", str(key_file)]) as c:
        yield c, key_file.read_text().strip()


def http(cluster: Cluster, key: str | None, tenant: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if tenant:
        headers["X-Tenant"] = tenant
    return httpx.Client(base_url=cluster.url, timeout=60, headers=headers)


def audit(c: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = c.get("/v1/audit", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["entries"])


def brief(entries: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    return [(e["action"], e["actor"]["key_id"], e["tenant"], e["target"], e["outcome"]) for e in entries]


def test_admin_actions_are_recorded_in_order_with_their_actor(auth_cluster: tuple[Cluster, str]) -> None:
    cluster, star = auth_cluster
    started_ms = int(time.time() * 1000)
    with http(cluster, star) as root:
        star_id = star.split("_")[1]
        created = root.post("/v1/keys", json={"role": "admin", "tenant": "acme", "name": "acme-admin"}).json()
        acme_admin, acme_id = created["key"], created["info"]["id"]
        other = root.post("/v1/keys", json={"role": "admin", "tenant": "globex", "name": "g"}).json()
        reader = root.post("/v1/keys", json={"role": "read", "tenant": "acme", "name": "r"}).json()
        assert root.put("/v1/quotas/acme", json={"max_collections": 5}).status_code == 200
    with http(cluster, acme_admin) as acme:
        assert acme.post("/v1/collections", json={"name": "docs", "dim": 2}).status_code == 201
        assert acme.post("/v1/collections", json={"name": "docs", "dim": 2}).status_code == 409
        assert acme.patch("/v1/collections/docs", json={"hnsw": {"ef_search": 90}}).status_code == 200
    with grpc.insecure_channel(cluster.grpc_address) as channel:
        stub = gateway_pb2_grpc.CollectionServiceStub(channel)
        stub.CreateCollection(collection_pb2.CreateCollectionRequest(name="viagrpc", dim=2),
                              metadata=[("authorization", f"Bearer {acme_admin}")], timeout=30)
    with http(cluster, other["key"]) as globex:
        assert globex.post("/v1/collections", json={"name": "theirs", "dim": 2}).status_code == 201
    with http(cluster, star, "acme") as root:
        assert root.delete("/v1/collections/docs").status_code == 200
        assert root.delete(f"/v1/keys/{reader['info']['id']}").status_code == 200
        assert root.delete("/v1/quotas/acme").status_code == 200
        entries = audit(root)
    mine = [e for e in entries if e["unix_ms"] >= started_ms - 5000]
    assert brief(mine) == [
        ("key.create", star_id, "acme", acme_id, "ok"),
        ("key.create", star_id, "globex", other["info"]["id"], "ok"),
        ("key.create", star_id, "acme", reader["info"]["id"], "ok"),
        ("quota.set", star_id, "acme", "", "ok"),
        ("collection.create", acme_id, "acme", "docs", "ok"),
        # The second create was refused (409): a refused request changes nothing, no entry.
        ("collection.alter", acme_id, "acme", "docs", "ok"),
        ("collection.create", acme_id, "acme", "viagrpc", "ok"),
        ("collection.create", other["info"]["id"], "globex", "theirs", "ok"),
        ("collection.drop", star_id, "acme", "docs", "ok"),
        ("key.revoke", star_id, "acme", reader["info"]["id"], "ok"),
        ("quota.clear", star_id, "acme", "", "ok"),
    ]
    assert mine[0]["actor"]["key_name"] == "bootstrap-admin" and mine[4]["actor"]["key_name"] == "acme-admin"
    assert mine[0]["details"] == {"role": "admin", "collections": [], "name": "acme-admin"}
    assert mine[3]["details"]["max_collections"] == 5
    offsets = [e["offset"] for e in mine]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert all(a["hlc"] < b["hlc"] for a, b in itertools.pairwise(mine))
    # No key ever appears in the log.
    with http(cluster, star) as root:
        text = root.get("/v1/audit", params={"limit": 1000}).text + root.get(
            "/v1/journal/system", params={"limit": 1000}).text
    assert acme_admin not in text and star not in text and other["key"] not in text

    # The meta manager went on materializing DDL past the audit entries (the collections exist).
    with http(cluster, acme_admin) as acme:
        names = {c["name"] for c in acme.get("/v1/collections").json()["collections"]}
        assert names == {"viagrpc"}
        # A tenant's admin sees its tenant's entries only.
        seen = audit(acme)
        assert seen and {e["tenant"] for e in seen} == {"acme"}
        assert "theirs" not in str(seen)
        assert acme.get("/v1/audit", params={"tenant": "globex"}).json()["entries"] == []
    # Non-admins: 403; no key: 401.
    with http(cluster, reader["key"]) as c:
        assert c.get("/v1/audit").status_code == 401  # revoked above
    with http(cluster, star) as root:
        writer = root.post("/v1/keys", json={"role": "write", "tenant": "acme"}).json()["key"]
    with http(cluster, writer) as c:
        r = c.get("/v1/audit")
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    with http(cluster, None) as c:
        assert c.get("/v1/audit").status_code == 401


def test_paging_and_filters(auth_cluster: tuple[Cluster, str]) -> None:
    cluster, star = auth_cluster
    with http(cluster, star) as root:
        for n in range(3):
            assert root.put(f"/v1/quotas/page{n}", json={"read_requests_per_s": n + 1}).status_code == 200
        everything = audit(root)
        pages, cursor = [], 1
        for _ in range(100):
            r = root.get("/v1/audit", params={"limit": 2, "cursor": cursor}).json()
            pages += r["entries"]
            cursor = r["next_cursor"]
            if not r["more"]:
                break
        assert [e["offset"] for e in pages] == [e["offset"] for e in everything]
        quotas = audit(root, action="quota.set")
        assert quotas and {e["action"] for e in quotas} == {"quota.set"}
        assert {e["action"].split(".")[0] for e in audit(root, action="key")} == {"key"}
        last = everything[-1]
        assert [e["offset"] for e in audit(root, since_ms=last["unix_ms"])][-1] == last["offset"]
        first_ms = everything[0]["unix_ms"]
        assert all(e["unix_ms"] <= first_ms for e in audit(root, until_ms=first_ms))
        assert root.get("/v1/audit", params={"action": "drop_everything"}).status_code == 400
        assert root.get("/v1/audit", params={"limit": 0}).status_code == 400


def test_the_audit_cli(auth_cluster: tuple[Cluster, str], capsys: pytest.CaptureFixture[str]) -> None:
    cluster, star = auth_cluster
    assert cli_main(["audit", "--endpoint", cluster.url, "--api-key", star, "--action", "quota",
                     "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(" quota." in line and " ok " in line for line in lines)
    assert cli_main(["audit", "--endpoint", cluster.url, "--api-key", star, "--since", "nonsense"]) == 1


def test_a_restart_keeps_the_entries(auth_cluster: tuple[Cluster, str]) -> None:
    cluster, star = auth_cluster
    with http(cluster, star) as root:
        before = audit(root)
    assert before
    cluster.gateway.stop(timeout=10)
    cluster.journal.restart()
    cluster.gateway.start()
    with http(cluster, star) as root:
        assert audit(root) == before
        # And new actions keep being recorded after it.
        assert root.put("/v1/quotas/afterrestart", json={"max_vectors": 10}).status_code == 200
        assert audit(root)[-1]["target"] == "" and audit(root)[-1]["tenant"] == "afterrestart"
