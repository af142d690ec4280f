"""``GET /v1/cluster/overview``: the web console's read-only view of the cluster (docs/console.md).

One answer with what no other endpoint gives in one place: the registered
nodes, each shard's storage replicas and query processors, the journal's
partitions (head offset and HLC) and every replica's lag, record counts per
collection, and the gateway's own metrics (searches by consistency level with
their latency). The cluster part comes from a
:class:`~vecraft.services.api_gateway.console.probe.ClusterProbe`; a gateway
built without one answers ``cluster.available: false`` with the reason, the
partition heads it reads through the journal read, its collections and its
metrics.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from vecraft.services.api_gateway.console.metrics_summary import summarize
from vecraft.services.api_gateway.console.overview import PartitionHead, overview_json
from vecraft.services.api_gateway.console.probe import ClusterProbe
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers import http_codec as codec
from vecraft.services.api_gateway.handlers.http_routes import refuse_unknown_query_params
from vecraft.services.api_gateway.responses import JSONResponse
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.hlc import wall_clock_ms
from vecraft.shared.model.routing import SYSTEM_PARTITION
from vecraft.shared.model.schema import CollectionSchema

NO_PROBE = "this gateway was started without a cluster probe: nodes, replicas and lag are not available"

TenantHeader = Annotated[str | None, Header(alias="X-Tenant", description="tenant (default `default`)")]


def build_console_router(gateway: Gateway, probe: ClusterProbe | None) -> APIRouter:
    """The console's route, bound to ``gateway`` and ``probe`` (None: no cluster view)."""
    router = APIRouter(prefix="/v1", dependencies=[Depends(refuse_unknown_query_params)])

    @router.get("/cluster/overview", tags=["cluster"],
                summary="Nodes, shards, journal partitions, replica lag, counts and metrics (read-only)")
    async def cluster_overview(request: Request, x_tenant: TenantHeader = None) -> JSONResponse:
        ctx = codec.request_context(request)
        ctx.principal.require_all_tenants("the cluster overview")
        snapshot_task = asyncio.ensure_future(probe.snapshot()) if probe is not None else None
        collections = await gateway.list_collections(ctx)
        snapshot = await snapshot_task if snapshot_task is not None else None
        heads: list[PartitionHead] = []
        if snapshot is None or snapshot.journal is None:
            heads = await _read_heads(gateway, collections)
        return JSONResponse(overview_json(
            snapshot=snapshot, reason=None if probe is not None else NO_PROBE, collections=collections,
            heads=heads, metrics=summarize(), tenant=ctx.tenant, now_ms=wall_clock_ms()))

    return router


async def _read_heads(gateway: Gateway, collections: list[CollectionSchema]) -> list[PartitionHead]:
    """Heads of the system partition and the tenant's data partitions, through the journal read."""
    names = [*sorted({c.partition for c in collections if c.partition}), SYSTEM_PARTITION]
    heads = await asyncio.gather(*(_read_head(gateway, name) for name in names))
    return [h for h in heads if h is not None]


async def _read_head(gateway: Gateway, partition: str) -> PartitionHead | None:
    try:
        latest = (await gateway.read_journal(partition, 1, 1)).latest_offset
        if not latest:
            return PartitionHead(partition, 0, 0)
        entries = (await gateway.read_journal(partition, latest, 1)).entries
    except VecraftError:
        return None
    return PartitionHead(partition, latest, entries[0].hlc if entries else 0)

