"""Quotas and rate limits at a real gateway without --auth (docs/quotas.md).

One cluster of real processes (journal, meta manager, one storage node, one query processor,
gateway) for the module. A quota set through the gateway is stored by the meta manager; a
tenant over it gets 429 with Retry-After (HTTP) or RESOURCE_EXHAUSTED with retry-after-ms
(gRPC) and its refused writes are not applied, while another tenant keeps working;
``max_vectors`` is checked against what the storage node reports.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.integration.gateway.cluster import Cluster, run_cluster
from vecraft.cli import main as cli_main
from vecraft.shared.common.errors import RateLimited
from vecraft.shared.common.grpc_errors import from_rpc_error
from vecraft.shared.rpc.v1 import gateway_pb2, gateway_pb2_grpc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RATE = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root: Path = tmp_path_factory.mktemp("quota-cluster")
    with run_cluster(root, shards=1, data_partitions=1) as c:
        yield c


def http(cluster: Cluster, tenant: str) -> httpx.Client:
    return httpx.Client(base_url=cluster.url, timeout=60, headers={"X-Tenant": tenant})


def records(c: httpx.Client, collection: str = "docs") -> set[str]:
    r = c.get(f"/v1/collections/{collection}/records", params={"consistency_level": "strong", "limit": 1000})
    assert r.status_code == 200, r.text
    return {rec["id"] for rec in r.json()["records"]}


def test_a_throttled_tenant_changes_nothing_while_another_keeps_working(cluster: Cluster) -> None:
    with http(cluster, "ta") as a, http(cluster, "tb") as b, cluster.client() as admin:
        for c in (a, b):
            assert c.post("/v1/collections", json={"name": "docs", "dim": 2}).status_code == 201
        r = admin.put("/v1/quotas/ta", json={"write_requests_per_s": RATE})
        assert r.status_code == 200, r.text
        accepted, refused = set(), 0
        started = time.monotonic()
        for n in range(20):
            r = a.post("/v1/vectors", params={"collection": "docs"}, json={"vector": [1, n], "id": f"a{n}"})
            if r.status_code == 201:
                accepted.add(f"a{n}")
                continue
            assert r.status_code == 429, r.text
            assert int(r.headers["Retry-After"]) >= 1
            error = r.json()["error"]
            assert error["code"] == "rate_limited" and error["details"]["limit"] == "write_requests_per_s"
            assert "tenant 'ta'" in error["message"] and "write_requests_per_s" in error["message"]
            refused += 1
        elapsed = time.monotonic() - started
        # A bucket of RATE tokens refilling at RATE per second.
        assert refused >= 1 and len(accepted) <= RATE + RATE * elapsed + 1
        # Tenant b is not limited by a's quota, meanwhile and after.
        for n in range(10):
            assert b.post("/v1/vectors", params={"collection": "docs"},
                          json={"vector": [n, 1], "id": f"b{n}"}).status_code == 201
        # Refused writes were not applied.
        assert records(a) == accepted
        assert records(b) == {f"b{n}" for n in range(10)}
        metrics = admin.get("/metrics").text
        assert 'vecraft_gateway_throttled_total{limit="write_requests_per_s",tenant="ta"}' in metrics
        assert admin.delete("/v1/quotas/ta").status_code == 200


def test_grpc_gets_resource_exhausted_with_retry_info(cluster: Cluster) -> None:
    with http(cluster, "tg") as c:
        assert c.post("/v1/collections", json={"name": "docs", "dim": 2}).status_code == 201
        assert c.put("/v1/quotas/tg", json={"write_requests_per_s": 1}).status_code == 200
    with grpc.insecure_channel(cluster.grpc_address) as channel:
        stub = gateway_pb2_grpc.VectorServiceStub(channel)
        codes = []
        for n in range(5):
            request = gateway_pb2.WriteVectorsRequest(collection="docs", tenant="tg", ids=[f"g{n}"], dim=2,
                                                      vectors=struct.pack("<2f", 1.0, float(n)))
            try:
                stub.Insert(request, timeout=30)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
                err = from_rpc_error(exc)
                assert isinstance(err, RateLimited) and err.retry_after_ms and err.retry_after_ms > 0
                assert "write_requests_per_s" in err.message
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and codes[0] == grpc.StatusCode.OK


def test_max_vectors_and_max_collections(cluster: Cluster) -> None:
    with http(cluster, "tv") as c, cluster.client() as admin:
        assert admin.put("/v1/quotas/tv", json={"max_vectors": 5, "max_collections": 1}).status_code == 200
        assert admin.get("/v1/quotas/tv").json()["max_vectors"] == 5
        assert c.post("/v1/collections", json={"name": "docs", "dim": 2}).status_code == 201
        r = c.post("/v1/collections", json={"name": "more", "dim": 2})
        assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
        assert c.post("/v1/vectors/batch", params={"collection": "docs"},
                      json={"vectors": [[1, n] for n in range(4)], "ids": [f"v{n}" for n in range(4)]}
                      ).status_code == 201
        r = c.post("/v1/vectors/batch", params={"collection": "docs"},
                   json={"vectors": [[2, n] for n in range(2)], "ids": ["w0", "w1"]})
        assert r.status_code == 429 and r.json()["error"]["details"]["limit"] == "max_vectors"
        assert records(c) == {f"v{n}" for n in range(4)}
        assert c.post("/v1/vectors", params={"collection": "docs"},
                      json={"vector": [3, 3], "id": "last"}).status_code == 201
        assert len(records(c)) == 5  # a strong read: the storage node applied all five
        r = c.post("/v1/vectors", params={"collection": "docs"}, json={"vector": [3, 4], "id": "over"})
        assert r.status_code == 429 and r.json()["error"]["details"]["have"] >= 5
        assert "over" not in records(c)
        assert admin.delete("/v1/quotas/tv").status_code == 200
        assert admin.get("/v1/quotas/tv").status_code == 404


def test_the_quotas_cli(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = ["--endpoint", cluster.url]
    assert cli_main(["quotas", "set", "tc", "--write-vectors-per-s", "100", "--max-collections", "3",
                     *endpoint]) == 0
    assert "tenant tc: write_vectors_per_s=100, max_collections=3" in capsys.readouterr().out
    assert cli_main(["quotas", "set", "tc", "--key-id", "0123456789ab", "--read-requests-per-s", "7",
                     *endpoint]) == 0
    capsys.readouterr()
    assert cli_main(["quotas", "get", "tc", "--json", *endpoint]) == 0
    assert json.loads(capsys.readouterr().out)["max_collections"] == 3
    assert cli_main(["quotas", "list", "--tenant", "tc", *endpoint]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "tenant tc: write_vectors_per_s=100, max_collections=3",
        "key 0123456789ab of tenant tc: read_requests_per_s=7"]
    assert cli_main(["quotas", "clear", "tc", *endpoint]) == 0
    assert cli_main(["quotas", "clear", "tc", "--key-id", "0123456789ab", *endpoint]) == 0
    capsys.readouterr()
    assert cli_main(["quotas", "get", "tc", *endpoint]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert cli_main(["quotas", "set", "tc", "--max-vectors", "-1", *endpoint]) == 1
    assert "HTTP 400" in capsys.readouterr().err
