"""Smart journal routing of data writes.

Data writes (insert, upsert, delete) of a collection go to the tenant's data
partition recorded in the collection's schema, as one entry per request, with
the sorted unique shards of the ids so the journal knows which replicas must
acknowledge. Transactions - writes to several collections that must apply together - are
one entry too: every collection of a tenant lives in the tenant's data partition, so a
transaction (one tenant) is one entry of that partition and applies all-or-nothing, in
that partition's order with every other write of its collections (docs/journal.md,
"Order across partitions"). DDL is not appended here: the meta
manager orders it through the ``system`` partition (see
:mod:`vecraft.services.api_gateway.gateway`).

Idempotency: the request id (per tenant) is the journal's deduplication key,
so a retry with the same id is answered with the original position and never
appended twice. Ids the client leaves out are derived from the request id, so a retry
also reports the same ids as the original.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from vecraft.services.api_gateway.downstream import Downstream
from vecraft.services.api_gateway.journal_router.payloads import (
    delete_mutation,
    encode_payload,
    touched_shards,
    write_mutation,
)
from vecraft.services.api_gateway.journal_router.sessions import (
    encode_session,
    merge_sessions,
    new_session_id,
)
from vecraft.services.api_gateway.models import RequestContext, WriteOutcome
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.common.metrics import counter, latency_histogram, timed
from vecraft.shared.model.records import RecordBatch
from vecraft.shared.model.schema import CollectionSchema

_APPEND_SECONDS = latency_histogram("gateway", "journal_append", "journal append latency by kind",
                                    ["kind"])
_ROWS = counter("gateway", "written_rows", "rows written through the journal by kind", ["kind"])

# Fixed namespace: ids generated for a request id are the same in every gateway process.
_ID_NAMESPACE = uuid.UUID("6f1c2d1e-9a57-4c55-a0c6-0d6c1f2b8e41")


def generated_ids(request_id: str, n: int) -> list[str]:
    """``n`` record ids derived from ``request_id`` (32 hex characters each)."""
    return [uuid.uuid5(_ID_NAMESPACE, f"{request_id}/{i}").hex for i in range(n)]


class WriteRouter:
    """Appends data writes to the journal and turns the answer into a :class:`WriteOutcome`."""

    def __init__(self, downstream: Downstream) -> None:
        self._downstream = downstream
        # Highest HLC this gateway has seen; passed on every append so a client's
        # later write is ordered after its earlier ones even across partitions.
        self._max_hlc = 0

    async def write(self, schema: CollectionSchema, batch: RecordBatch, *, upsert: bool, ack: int,
                    ctx: RequestContext) -> WriteOutcome:
        """Append an insert/upsert of ``batch`` (validated against ``schema``) as one entry."""
        kind = "upsert" if upsert else "insert"
        payload = encode_payload([write_mutation(schema, batch, upsert=upsert)])
        outcome = await self._append(schema.partition, payload, batch.ids,
                                     touched_shards(batch.ids, schema.shards), ack, ctx, kind)
        _ROWS.labels(kind).inc(len(batch))
        return outcome

    async def delete(self, schema: CollectionSchema, ids: Sequence[str], *, ack: int,
                     ctx: RequestContext) -> WriteOutcome:
        """Append a delete of ``ids`` as one entry."""
        payload = encode_payload([delete_mutation(schema, ids)])
        outcome = await self._append(schema.partition, payload, ids, touched_shards(ids, schema.shards),
                                     ack, ctx, "delete")
        _ROWS.labels("delete").inc(len(ids))
        return outcome

    async def transact(self, steps: Sequence[TxnStep], *, ack: int, ctx: RequestContext) -> WriteOutcome:
        """Append writes to several collections as one entry of their data partition.

        Storage replicas apply the entry's mutations together, so either every
        collection sees the transaction or none does.

        Raises:
            InvalidRequest: the steps' collections live in more than one data partition
                (a tenant's collections share one, so only a catalog changed under the
                request can cause it).
        """
        partitions = sorted({st.schema.partition for st in steps})
        if len(partitions) != 1:
            raise InvalidRequest(f"a transaction's collections must share one journal partition; "
                                 f"these live in {', '.join(partitions)}",
                                 details={"partitions": partitions})
        mutations = [write_mutation(st.schema, st.records, upsert=st.upsert) if st.records is not None
                     else delete_mutation(st.schema, st.ids) for st in steps]
        ids = [i for st in steps for i in st.ids]
        shards = sorted({s for st in steps for s in touched_shards(st.ids, st.schema.shards)})
        outcome = await self._append(partitions[0], encode_payload(mutations), ids, shards, ack, ctx, "txn")
        _ROWS.labels("txn").inc(len(ids))
        return outcome

    async def _append(self, partition: str, payload: bytes, ids: Sequence[str], shards: list[int], ack: int,
                      ctx: RequestContext, kind: str) -> WriteOutcome:
        with timed(_APPEND_SECONDS.labels(kind)):
            answer = await self._downstream.append(partition, payload, request_id=ctx.journal_request_id,
                                                   shards=shards, ack=ack, client_hlc=self._max_hlc)
        self._max_hlc = max(self._max_hlc, answer.hlc)
        return WriteOutcome(
            ids=list(ids), partition=answer.partition, offset=answer.offset, hlc=answer.hlc,
            request_id=ctx.request_id, replicas_acked=answer.replicas_acked,
            replicas_expected=answer.replicas_expected,
            session_token=encode_session(merge_sessions(ctx.session, {answer.partition: answer.offset}),
                                         ctx.session_id or new_session_id()),
            duplicate=answer.duplicate)


@dataclass(frozen=True, slots=True)
class TxnStep:
    """One validated operation of a transaction: a write (``records``) or a delete (``ids`` only)."""

    schema: CollectionSchema
    ids: tuple[str, ...]
    records: RecordBatch | None = None
    upsert: bool = False
