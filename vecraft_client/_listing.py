"""Record listing: the ``list_records`` call and the pager behind ``iter_records`` and export.

A listing is a sequence of pages in id order, each after the previous page's
``next_cursor``. :class:`Pager` builds the call of each next page, so the sync
and async clients share it and differ only in how they run the calls. Each
page after the first is read at least at the journal offset the page before
it was read at (``min_required_offset`` = its ``index_version``): a listing
never goes back in time, even when its pages are served by other replicas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.rpc.v1 import gateway_pb2, storage_pb2
from vecraft_client._calls import Call, _drop_none, _level_proto, _meta_obj, _record, dumps, path_segment
from vecraft_client._models import RecordPage, VectorRecord

#: Records per page by default, and the most one page may hold (the gateway's limit).
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def _bool(value: bool) -> str:
    return "true" if value else "false"


def list_records(collection: str | None, *, after: str | None, limit: int | None, include_vectors: bool,
                 include_metadata: bool, include_documents: bool, filters: Mapping[str, Any] | None,
                 consistency_level: ConsistencyLevel | str | None, min_required_offset: int | None,
                 session_token: str | None) -> Call[RecordPage]:
    """One page of ``GET /v1/collections/{name}/records`` / gRPC ``VectorService/ListRecords``."""
    level = ConsistencyLevel.parse(consistency_level) if consistency_level is not None else None
    filter_json = dumps(dict(filters), "filters").decode() if filters else None
    name = collection or "default"
    params = _drop_none({
        "after": after or None, "limit": limit, "include_vectors": _bool(include_vectors),
        "include_metadata": _bool(include_metadata), "include_documents": _bool(include_documents),
        "filter": filter_json, "consistency_level": level.wire_name if level is not None else None,
        "min_required_offset": min_required_offset or None,
    })
    headers = {"X-Session-Token": session_token} if session_token else {}
    request = gateway_pb2.ListRecordsRequest(
        collection=name, after=after or "", limit=limit or 0, include_vectors=include_vectors,
        include_metadata=include_metadata, include_documents=include_documents, filter_json=filter_json or "",
        consistency_level=_level_proto(level), session_token=session_token or "",
        min_required_offset=min_required_offset or 0)

    def parse_http(obj: dict[str, Any]) -> RecordPage:
        return RecordPage(records=[_record(r) for r in obj.get("records", [])],
                          next_cursor=obj.get("next_cursor"),
                          index_version=int(obj.get("index_version") or 0),
                          partition=obj.get("partition", ""))

    def parse_grpc(msg: gateway_pb2.ListRecordsResponse) -> RecordPage:
        return RecordPage(records=[_stored(r) for r in msg.records], next_cursor=msg.next_cursor or None,
                          index_version=msg.index_version, partition=msg.partition)

    return Call("GET", f"/v1/collections/{path_segment(name)}/records", parse_http, params=params,
                headers=headers, grpc_method="/vecraft.v1.VectorService/ListRecords", grpc_request=request,
                grpc_response=gateway_pb2.ListRecordsResponse, parse_grpc=parse_grpc)


def _stored(rec: storage_pb2.StoredRecord) -> VectorRecord:
    vector = np.frombuffer(rec.vector, dtype="<f4").tolist() if rec.vector else None
    return VectorRecord(id=rec.id, vector=vector, metadata=_meta_obj(rec.metadata_json),
                        document=rec.document or None, offset=rec.offset, hlc=rec.hlc)


@dataclass
class Pager:
    """The calls of a listing's pages, one after the other (see the module doc)."""

    collection: str | None
    page_size: int = DEFAULT_PAGE_SIZE
    after: str | None = None
    include_vectors: bool = False
    include_metadata: bool = True
    include_documents: bool = True
    filters: Mapping[str, Any] | None = None
    consistency_level: ConsistencyLevel | str | None = None
    min_required_offset: int | None = None
    session_token: str | None = None
    #: The listing is complete.
    done: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {self.page_size}")

    def next_call(self) -> Call[RecordPage] | None:
        """The call of the next page; None once the listing is complete."""
        if self.done:
            return None
        return list_records(self.collection, after=self.after, limit=self.page_size,
                            include_vectors=self.include_vectors, include_metadata=self.include_metadata,
                            include_documents=self.include_documents, filters=self.filters,
                            consistency_level=self.consistency_level,
                            min_required_offset=self.min_required_offset, session_token=self.session_token)

    def advance(self, page: RecordPage) -> None:
        """Record ``page``: the next call starts after it, at least at its offset."""
        self.after = page.next_cursor
        self.done = page.next_cursor is None
        if page.index_version > (self.min_required_offset or 0):
            self.min_required_offset = page.index_version
