"""Record listing: one page of a collection's records in id order, merged over its shards.

Every shard is asked for the records after the cursor in id order
(``StorageNodeService.Scan``); each answers a sorted run and how far it looked
(``scanned_to``), or that it has nothing more (``exhausted``). The page is the
merge of the runs cut at the *frontier* -- the smallest ``scanned_to`` of the
shards that are not exhausted -- because beyond it a shard may hold ids it has
not returned yet. So every id up to the returned cursor has been seen on every
shard: paging on with ``after=next_cursor`` never skips nor repeats a record.

A page holds ``limit`` records unless the listing ends, or a shard stopped
early (a filter that matched little within its scan budget, or a page's byte
budget); then it holds fewer, and ``next_cursor`` still says where to go on.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from vecraft.services.api_gateway.models import RecordView
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.routing import DEFAULT_COLLECTION
from vecraft.shared.rpc.v1 import storage_pb2

#: Records per page when the request gives no limit, and the most it may ask for.
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000


@dataclass(slots=True)
class ListQuery:
    """One page of ``GET /v1/collections/{name}/records`` (or gRPC ``ListRecords``)."""

    collection: str = DEFAULT_COLLECTION
    #: Records with an id after this one; "" = from the first.
    after: str = ""
    limit: int = DEFAULT_LIST_LIMIT
    include_vectors: bool = False
    include_metadata: bool = True
    include_documents: bool = True
    #: The filter as the edge validated it (``convert.filter_to_json``), forwarded as is; "" for none.
    filter_json: str = ""
    #: EVENTUAL, READ_YOUR_WRITES or STRONG, as for reads by id.
    level: ConsistencyLevel = ConsistencyLevel.EVENTUAL
    min_required_offset: int = 0


@dataclass(frozen=True, slots=True)
class RecordPage:
    records: list[RecordView]
    #: The ``after`` of the next page; None when the listing is complete.
    next_cursor: str | None
    #: Smallest applied offset of the collection's partition over the shards read.
    index_version: int
    partition: str


def merge_scans(answers: Sequence[storage_pb2.ShardScanResponse], limit: int
                ) -> tuple[list[storage_pb2.StoredRecord], str | None]:
    """The first ``limit`` records of the shards' sorted runs, and the next page's cursor.

    Contract: ``answers`` hold disjoint ids (a record lives on one shard), each
    run in ascending id order. The cursor is None only when every shard is
    exhausted and nothing past ``limit`` is left.
    """
    frontier: str | None = None
    for answer in answers:
        if not answer.exhausted and (frontier is None or answer.scanned_to < frontier):
            frontier = answer.scanned_to
    merged = heapq.merge(*(answer.records for answer in answers), key=lambda rec: rec.id)
    page: list[storage_pb2.StoredRecord] = []
    for rec in merged:
        if frontier is not None and rec.id > frontier:
            break
        if len(page) == limit:
            return page, page[-1].id
        page.append(rec)
    return page, frontier
