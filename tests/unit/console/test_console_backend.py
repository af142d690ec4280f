"""The web console's backend: the overview JSON from hand-made snapshots, the metrics summary, the
query processors' metrics parsing, GET /v1/cluster/overview over an in-memory cluster, and the
static files the gateway serves at /console."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.console import STATIC_DIR
from vecraft.services.api_gateway.console.metrics_summary import quantile, summarize
from vecraft.services.api_gateway.console.overview import PartitionHead, overview_json
from vecraft.services.api_gateway.console.probe import (
    CachePartition,
    ClusterProbe,
    ClusterSnapshot,
    NodeStatus,
    QueryStatus,
    parse_query_metrics,
)
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.console_routes import NO_PROBE
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.metrics import counter, latency_histogram
from vecraft.shared.hlc import pack
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.v1 import journal_pb2, meta_pb2, storage_pb2

pytestmark = pytest.mark.unit

NOW_MS = 1_800_000_000_000
REPO = Path(__file__).resolve().parents[3]


# --- metrics summary ---------------------------------------------------------------------------------
def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    buckets = {0.001: 0.0, 0.01: 10.0, 0.1: 20.0, float("inf"): 20.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.25, buckets) == pytest.approx(0.001 + (0.01 - 0.001) * 0.5)
    assert quantile(0.75, buckets) == pytest.approx(0.01 + (0.1 - 0.01) * 0.5)
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    # A rank in the +Inf bucket: the highest finite bound.
    assert quantile(0.99, {0.1: 1.0, float("inf"): 10.0}) == pytest.approx(0.1)


def test_summary_counts_levels_shares_and_latency() -> None:
    registry = CollectorRegistry()
    searches = latency_histogram("gateway", "search", "search latency", ["level"], registry=registry)
    for _ in range(3):
        searches.labels("strong").observe(0.004)
    searches.labels("eventual").observe(0.0004)
    appends = latency_histogram("gateway", "journal_append", "append latency", ["kind"], registry=registry)
    appends.labels("insert").observe(0.02)
    requests = counter("gateway", "http_requests", "requests", ["route", "method", "status"],
                       registry=registry)
    requests.labels("/v1/vectors", "POST", "201").inc(4)
    requests.labels("/v1/vectors/search", "POST", "200").inc(2)
    requests.labels("/v1/vectors/search", "POST", "400").inc()
    failures = counter("gateway", "shard_failures", "failures", ["error"], registry=registry)
    failures.labels("unavailable").inc(2)

    out = summarize(registry)

    assert out["searches"]["total"] == 4
    rows = {r["level"]: r for r in out["searches"]["rows"]}
    assert rows["strong"]["count"] == 3 and rows["strong"]["share"] == 0.75
    assert rows["strong"]["mean_ms"] == pytest.approx(4.0)
    assert 2.5 <= rows["strong"]["p50_ms"] <= 5.0 and rows["strong"]["p99_ms"] <= 5.0
    assert rows["eventual"]["share"] == 0.25 and rows["eventual"]["p95_ms"] <= 0.5
    assert out["writes"]["rows"][0]["kind"] == "insert" and out["writes"]["total"] == 1
    assert out["http_requests"] == {"2xx": 6, "4xx": 1}
    assert out["shard_failures"] == {"unavailable": 2}


def test_summary_of_a_gateway_that_served_nothing_is_empty() -> None:
    out = summarize(CollectorRegistry())
    assert out == {"searches": {"total": 0, "rows": []}, "writes": {"total": 0, "rows": []},
                   "http_requests": {}, "shard_failures": {}}


# --- query processor metrics -------------------------------------------------------------------------
QUERY_METRICS = """\
# HELP vecraft_query_applied_offset_ops Offset the cache has applied
# TYPE vecraft_query_applied_offset_ops gauge
vecraft_query_applied_offset_ops{partition="data-0"} 40.0
vecraft_query_applied_offset_ops{partition="data-1"} 7.0
# TYPE vecraft_query_head_offset_ops gauge
vecraft_query_head_offset_ops{partition="data-0"} 42.0
# TYPE vecraft_query_cache_staleness_ms gauge
vecraft_query_cache_staleness_ms{partition="data-0"} 350.0
# TYPE vecraft_query_cache_hits_total counter
vecraft_query_cache_hits_total{level="eventual"} 5.0
vecraft_query_cache_hits_total{level="strong"} 2.0
vecraft_query_cache_hits_created{level="strong"} 1.7e+09
# TYPE vecraft_query_sync_pulls_total counter
vecraft_query_sync_pulls_total{partition="data-0"} 3.0
"""


def test_query_processor_metrics_give_cache_progress_per_partition() -> None:
    status = parse_query_metrics("query-0", QUERY_METRICS)
    assert status == QueryStatus("query-0", partitions=[
        CachePartition("data-0", applied_offset=40, head_offset=42, staleness_ms=350),
        CachePartition("data-1", applied_offset=7, head_offset=0, staleness_ms=0)],
        cache_hits=7, sync_pulls=3)


# --- overview JSON -----------------------------------------------------------------------------------
def _node(node_id: str, role: str, shards: list[int], replica: int = 0,
          state: str = "up") -> meta_pb2.NodeInfo:
    return meta_pb2.NodeInfo(node_id=node_id, role=role, shards=shards, replica=replica, state=state,
                             address=f"127.0.0.1:{7000 + len(node_id)}", http_address="127.0.0.1:8001",
                             last_heartbeat_unix_ms=NOW_MS - 1500)


def _status(node_id: str, shard: int, applied: int, live: int, applied_hlc: int) -> NodeStatus:
    return NodeStatus(node_id, status=storage_pb2.NodeStatusResponse(
        node_id=node_id, shard=shard, ready=True,
        partitions=[storage_pb2.PartitionProgress(partition="data-0", applied_offset=applied,
                                                  applied_hlc=applied_hlc, head_offset=12, staleness_ms=30)],
        collections=[storage_pb2.CollectionStats(collection="default/docs", live_records=live,
                                                 deleted_records=1)]))


def _snapshot() -> ClusterSnapshot:
    head_hlc = pack(NOW_MS - 2000, 3)
    stats = journal_pb2.StatsResponse(
        partitions=[journal_pb2.PartitionStats(partition="data-0", head_offset=12, head_hlc=head_hlc,
                                               bytes=4096, segments=1),
                    journal_pb2.PartitionStats(partition="system", head_offset=2,
                                               head_hlc=pack(NOW_MS + 250, 0))],
        replicas=[journal_pb2.ReplicaLag(replica_id="storage-0-r1", partition="data-0", shards=[0],
                                         applied_offset=9, lag_ops=3, lag_ms=800, live=True, lagging=True,
                                         role="replica"),
                  journal_pb2.ReplicaLag(replica_id="storage-0-r0", partition="data-0", shards=[0],
                                         applied_offset=12, live=True, role="replica"),
                  journal_pb2.ReplicaLag(replica_id="query-0-7001", partition="data-0", shards=[0],
                                         lag_ops=12, live=True, role="cache")])
    return ClusterSnapshot(
        journal=stats,
        nodes=[_node("storage-0-r1", "storage", [0], 1), _node("meta", "meta", []),
               _node("storage-0-r0", "storage", [0]), _node("storage-1-r0", "storage", [1], state="down"),
               _node("query-0", "query", [0, 1])],
        statuses=[_status("storage-0-r0", 0, 12, live=5, applied_hlc=head_hlc),
                  _status("storage-0-r1", 0, 9, live=4, applied_hlc=pack(NOW_MS - 2800, 0)),
                  NodeStatus("storage-1-r0", error="storage node storage-1-r0: unavailable")],
        queries=[QueryStatus("query-0", partitions=[CachePartition("data-0", 10, 12, 400)], cache_hits=9)])


def _schema(name: str) -> CollectionSchema:
    return CollectionSchema(name=name, dim=4, partition="data-0", collection_id=f"id-{name}")


def test_overview_of_a_cluster_snapshot() -> None:
    out = overview_json(snapshot=_snapshot(), reason=None, collections=[_schema("docs"), _schema("empty")],
                        heads=[], metrics={}, tenant="default", now_ms=NOW_MS)

    assert out["cluster"] == {"available": True, "reason": None,
                              "errors": ["storage node storage-1-r0: unavailable"], "back_pressure": False,
                              "back_pressure_reason": None, "nodes_up": 4, "nodes_down": 1}
    assert [(n["role"], n["node_id"]) for n in out["nodes"]] == [
        ("meta", "meta"), ("query", "query-0"), ("storage", "storage-0-r0"), ("storage", "storage-0-r1"),
        ("storage", "storage-1-r0")]
    assert out["nodes"][0]["heartbeat_age_ms"] == 1500 and out["nodes"][0]["replica"] is None

    data, system = out["partitions"]
    assert (data["partition"], data["head_offset"], data["bytes"]) == ("data-0", 12, 4096)
    assert data["head_hlc_text"].endswith("Z+3") and data["head_age_ms"] == 2000 and data["hlc_ahead_ms"] == 0
    # An HLC stamped ahead of the gateway's clock is drift, not age.
    assert system["hlc_ahead_ms"] == 250 and system["head_age_ms"] == 0

    # Storage replicas only: the journal's lag of a query cache is where its stream started.
    assert [(r["replica_id"], r["lag_ops"], r["lagging"]) for r in out["replicas"]] == [
        ("storage-0-r0", 0, False), ("storage-0-r1", 3, True)]
    assert out["replicas"][1]["hlc_behind_head_ms"] == 800
    assert out["query_caches"] == [{"node_id": "query-0", "shards": [0, 1], "cache_hits": 9, "sync_pulls": 0,
                                    "error": None, "partition": "data-0", "applied_offset": 10, "lag_ops": 2,
                                    "staleness_ms": 400}]

    shard0, shard1 = out["shards"]
    assert [r["node_id"] for r in shard0["storage"]] == ["storage-0-r0", "storage-0-r1"]
    assert shard0["storage"][1]["partitions"][0]["hlc_behind_head_ms"] == 800
    assert shard1["storage"][0] == {"node_id": "storage-1-r0", "replica": 0, "state": "down", "ready": None,
                                    "partitions": [], "error": "storage node storage-1-r0: unavailable"}
    assert [q["node_id"] for q in shard0["query"]] == [q["node_id"] for q in shard1["query"]] == ["query-0"]

    # Per shard the replica furthest along (5 live), summed over shards; unknown collections count 0.
    counts = {c["name"]: (c["live_records"], c["deleted_records"]) for c in out["collections"]}
    assert counts == {"docs": (5, 1), "empty": (0, 0)}


def test_overview_without_a_probe_shows_the_heads_the_gateway_read() -> None:
    out = overview_json(snapshot=None, reason=NO_PROBE, collections=[_schema("docs")],
                        heads=[PartitionHead("data-0", 7, pack(NOW_MS - 100, 1)),
                               PartitionHead("system", 0, 0)],
                        metrics={"searches": {}}, tenant="acme", now_ms=NOW_MS)
    assert out["cluster"]["available"] is False and out["cluster"]["reason"] == NO_PROBE
    assert out["nodes"] == out["shards"] == out["replicas"] == out["query_caches"] == []
    assert [(p["partition"], p["head_offset"], p["head_age_ms"]) for p in out["partitions"]] == [
        ("data-0", 7, 100), ("system", 0, None)]
    assert out["collections"][0]["live_records"] is None
    assert out["tenant"] == "acme" and out["metrics"] == {"searches": {}}


# --- the route ---------------------------------------------------------------------------------------
class _FixedProbe(ClusterProbe):
    async def snapshot(self, timeout_s: float = 2.0) -> ClusterSnapshot:
        return _snapshot()


@pytest.fixture
def fake() -> FakeDownstream:
    return FakeDownstream()


@pytest.fixture
def client(fake: FakeDownstream) -> Iterator[TestClient]:
    with TestClient(create_app(Gateway(fake, SchemaCache(fake))), raise_server_exceptions=False) as c:
        yield c


def test_overview_route_without_a_probe_reads_heads_through_the_journal(client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "docs", "dim": 2}).status_code == 201
    assert client.post("/v1/vectors", json={"collection": "docs", "vector": [1, 0]}).status_code == 201

    out = client.get("/v1/cluster/overview").json()

    assert out["cluster"]["available"] is False and out["cluster"]["reason"] == NO_PROBE
    partition = out["collections"][0]["partition"]
    heads = {p["partition"]: p for p in out["partitions"]}
    assert set(heads) == {partition, "system"}
    assert heads[partition]["head_offset"] >= 1 and heads[partition]["head_hlc_text"]
    assert [c["name"] for c in out["collections"]] == ["docs"]
    assert {"searches", "writes", "http_requests", "shard_failures"} <= set(out["metrics"])


def test_overview_route_with_a_probe_and_its_refusals(fake: FakeDownstream) -> None:
    with TestClient(create_app(Gateway(fake, SchemaCache(fake)), cluster_probe=_FixedProbe())) as client:
        out = client.get("/v1/cluster/overview", headers={"X-Tenant": "acme"}).json()
        assert out["cluster"]["available"] is True and out["tenant"] == "acme"
        assert len(out["nodes"]) == 5 and out["partitions"][0]["bytes"] == 4096
        assert client.get("/v1/cluster/overview?verbose=1").status_code == 400
        assert client.get("/v1/cluster/overview", headers={"X-Tenant": "bad tenant!"}).status_code == 400
        assert "/v1/cluster/overview" in client.get("/openapi.json").json()["paths"]


# --- static files ------------------------------------------------------------------------------------
def test_console_is_served_with_its_modules(client: TestClient) -> None:
    page = client.get("/console/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="js/app.js">' in page.text
    redirect = client.get("/console", follow_redirects=False)
    assert redirect.status_code in (301, 307) and redirect.headers["location"].endswith("/console/")
    script = client.get("/console/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/console/console.css").headers["content-type"].startswith("text/css")
    assert client.get("/console/js/missing.js").status_code == 404


def test_every_file_the_console_loads_is_shipped() -> None:
    """Each module import and each page reference names a file in static/, and the package data
    globs in pyproject.toml cover every file there (so a wheel carries the whole console)."""
    files = {p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()}
    html = (STATIC_DIR / "index.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="((?:js/)?[\w.-]+\.(?:js|css))"', html))
    for module in (STATIC_DIR / "js").glob("*.js"):
        for name in re.findall(r'from "\./([\w.-]+\.js)"', module.read_text()):
            wanted.add(f"js/{name}")
    assert wanted and wanted <= files, wanted - files
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "vecraft.services.api_gateway.console"]
    assert all(any(Path(f).match(g.removeprefix("static/")) and f.count("/") == g.count("/") - 1
                   for g in globs) for f in files), files
