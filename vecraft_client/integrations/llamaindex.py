"""LlamaIndex vector store backed by a Vecraft collection.

>>> from llama_index.core import VectorStoreIndex
>>> from vecraft_client.integrations.llamaindex import VecraftVectorStore
>>> store = VecraftVectorStore(collection="docs", endpoint="http://127.0.0.1:8000",
...                            consistency_level="read_your_writes")
>>> index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)

Each node is one record: its id, its embedding, its text as the record's
``document`` and LlamaIndex's metadata dictionary (the node's own metadata at
the top level, so filters reach it, plus ``_node_content``, ``ref_doc_id``...)
as the record's metadata. ``MetadataFilters`` become Vecraft filters
(:func:`to_vecraft_filter`); operators the grammar cannot express raise
``ValueError`` naming them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.filters import matches, parse_filter
from vecraft.shared.model.limits import MAX_K
from vecraft_client._client import AsyncVecraftClient, VecraftClient
from vecraft_client._errors import NotFound
from vecraft_client._models import SearchResult, VectorRecord
from vecraft_client.integrations import _common
from vecraft_client.integrations._common import ReadOptions

__all__ = ["VecraftVectorStore", "to_vecraft_filter"]

_RANGE = {FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
          FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
          FilterOperator.IN: "$in", FilterOperator.NIN: "$nin",
          # A list-valued field matches $in when any element does, $eq when one element equals.
          FilterOperator.ANY: "$in", FilterOperator.CONTAINS: "$eq"}
_UNSUPPORTED = (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE, FilterOperator.IS_EMPTY)
#: Searches that walk every match of a filter (delete by ref_doc_id, filtered deletes) read pages this big.
_PAGE = MAX_K
_STRONG = ReadOptions(ConsistencyLevel.STRONG)


def _one(f: MetadataFilter) -> dict[str, Any]:
    op = FilterOperator(f.operator)
    if op in _UNSUPPORTED:
        supported = ", ".join(o.value for o in (*_RANGE, FilterOperator.ALL))
        raise ValueError(f"Vecraft filters cannot express the LlamaIndex operator {op.value!r} (on key "
                         f"{f.key!r}); supported: {supported}")
    if op is FilterOperator.ALL:
        values = f.value if isinstance(f.value, list) else [f.value]
        return {"$and": [{f.key: {"$eq": v}} for v in values]}
    return {f.key: {_RANGE[op]: f.value}}


def to_vecraft_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """LlamaIndex ``MetadataFilters`` as a Vecraft filter (``docs/data-model.md#filters``).

    EQ NE GT GTE LT LTE IN NIN map to the operators of the same name; ANY to
    ``$in`` and CONTAINS to ``$eq`` (a list-valued field matches when one
    element does); ALL to ``$and`` of ``$eq`` per value; conditions AND, OR,
    NOT to ``$and``, ``$or``, ``$not``. TEXT_MATCH, TEXT_MATCH_INSENSITIVE and
    IS_EMPTY raise ValueError.
    """
    if filters is None or not filters.filters:
        return None
    clauses = [to_vecraft_filter(f) if isinstance(f, MetadataFilters) else _one(f) for f in filters.filters]
    parts = [c for c in clauses if c]
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    if condition is FilterCondition.OR:
        return {"$or": parts}
    joined = parts[0] if len(parts) == 1 else {"$and": parts}
    return {"$not": joined} if condition is FilterCondition.NOT else joined


def _and(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    parts = [f for f in filters if f]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _match(where: dict[str, Any] | None, metadata: dict[str, Any] | None) -> bool:
    """The server's own filter semantics, applied here to records read by id."""
    return where is None or matches(parse_filter(where), metadata)


def _node(record_id: str, text: str | None, metadata: dict[str, Any] | None) -> BaseNode:
    meta = dict(metadata or {})
    if "_node_content" in meta:
        return metadata_dict_to_node(meta, text=text)
    return TextNode(id_=record_id, text=text or "", metadata=meta)  # written by something else


def _scores(metric: str, query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Vecraft's score (higher is better) of each row against ``query``."""
    if metric == "l2":
        return -((vectors - query) ** 2).sum(axis=1)
    if metric == "ip":
        return vectors @ query
    norms = np.maximum(np.linalg.norm(vectors, axis=1) * np.linalg.norm(query), 1e-12)
    return (vectors @ query) / norms


class VecraftVectorStore(BasePydanticVectorStore):
    """A Vecraft collection as a LlamaIndex vector store.

    Args:
        collection: collection name; created on the first ``add`` with the embedding's dimension.
        endpoint / client / async_client: as for the LangChain adapter; clients are built from
            ``endpoint`` when not given.
        metric: metric of a collection this store creates.
        consistency_level / max_staleness_ms: how ``query`` and ``get_nodes`` read;
            ``read_your_writes`` sends every call through one session.

    Deleting by ``ref_doc_id`` or by filters finds the records with strong searches, a
    page of up to 1,024 at a time, until none is left (there is no listing API).
    ``get_nodes(filters=...)`` without ids returns at most 1,024 nodes for the same reason.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection: str = "llama_index"
    metric: str = "cosine"
    consistency_level: str | None = None
    max_staleness_ms: int | None = None
    ack: str | None = None

    _sync: Any = PrivateAttr(default=None)
    _async: Any = PrivateAttr(default=None)
    _options: ReadOptions = PrivateAttr(default_factory=ReadOptions)

    def __init__(self, collection: str = "llama_index", *, endpoint: str | None = None,
                 client: VecraftClient | None = None, async_client: AsyncVecraftClient | None = None,
                 metric: str = "cosine", consistency_level: ConsistencyLevel | str | None = None,
                 max_staleness_ms: int | None = None, ack: str | None = None) -> None:
        level = str(ConsistencyLevel.parse(consistency_level)) if consistency_level is not None else None
        super().__init__(collection=collection, metric=metric,  # type: ignore[call-arg]
                         consistency_level=level, max_staleness_ms=max_staleness_ms, ack=ack)
        if client is None and async_client is None:
            endpoint = endpoint or "http://127.0.0.1:8000"
        if client is None and endpoint is not None:
            client = VecraftClient(endpoint=endpoint)
        if async_client is None and endpoint is not None:
            async_client = AsyncVecraftClient(endpoint=endpoint)
        self._options = ReadOptions.of(consistency_level, max_staleness_ms)
        self._sync, self._async = _common.sessions(client, async_client, self._options)

    @classmethod
    def class_name(cls) -> str:
        return "VecraftVectorStore"

    @property
    def client(self) -> Any:
        """The SDK client (a session with ``read_your_writes``)."""
        return self._sync

    @property
    def aclient(self) -> Any:
        return self._async

    # ---- records <-> nodes ---------------------------------------------------------
    def _rows(self, nodes: Sequence[BaseNode]) -> tuple[list[str], list[list[float]], list[dict[str, Any]],
                                                        list[str]]:
        ids = [n.node_id for n in nodes]
        vectors = [n.get_embedding() for n in nodes]
        metas = [node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata) for n in nodes]
        texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        return ids, vectors, metas, texts

    @staticmethod
    def _result(hits: Sequence[SearchResult]) -> VectorStoreQueryResult:
        return VectorStoreQueryResult(nodes=[_node(h.id, h.document, h.metadata) for h in hits],
                                      similarities=[h.score for h in hits], ids=[h.id for h in hits])

    def _local(self, query: VectorStoreQuery, records: list[VectorRecord],
               filters: dict[str, Any] | None) -> VectorStoreQueryResult:
        """``query`` restricted to ``node_ids``: the records read by id, filtered and ranked here."""
        records = [r for r in records if r.vector is not None and _match(filters, r.metadata)]
        if not records or query.query_embedding is None:
            return self._result([])
        scores = _scores(self.metric, np.asarray(query.query_embedding, dtype=np.float64),
                         np.asarray([r.vector for r in records], dtype=np.float64))
        order = np.argsort(-scores, kind="stable")[: query.similarity_top_k]
        return self._result([SearchResult(id=records[i].id, score=float(scores[i]),
                                          metadata=records[i].metadata, document=records[i].document)
                             for i in order])

    def _query_plan(self, query: VectorStoreQuery) -> tuple[dict[str, Any] | None, int]:
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise ValueError(f"Vecraft supports the query modes 'default' and 'mmr', not "
                             f"{query.mode.value!r}")
        if query.query_embedding is None:
            raise ValueError("Vecraft queries need query_embedding")
        doc_filter = {"ref_doc_id": {"$in": list(query.doc_ids)}} if query.doc_ids else None
        filters = _and(to_vecraft_filter(query.filters), doc_filter)
        k = query.similarity_top_k
        fetch = min(MAX_K, max(k, 4 * k)) if query.mode == VectorStoreQueryMode.MMR else k
        return filters, fetch

    @staticmethod
    def _mmr(query: VectorStoreQuery, hits: list[SearchResult],
             records: list[VectorRecord]) -> list[SearchResult]:
        by_id = {h.id: h for h in hits}
        records = [r for r in records if r.vector is not None and r.id in by_id]
        lambda_mult = query.mmr_threshold if query.mmr_threshold is not None else 0.5
        order = _common.mmr(query.query_embedding or [], [r.vector or [] for r in records],
                            query.similarity_top_k, lambda_mult)
        return [by_id[records[i].id] for i in order]

    # ---- sync ----------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Upsert the nodes (with their embeddings); returns their ids."""
        if not nodes:
            return []
        ids, vectors, metas, texts = self._rows(nodes)
        _common.ensure_collection(self._sync, self.collection, len(vectors[0]), self.metric)
        self._sync.upsert_vectors(vectors, ids=ids, metadatas=metas, documents=texts,
                                  collection=self.collection, ack=self.ack)
        return ids

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top ``similarity_top_k`` nodes; MMR re-ranks ``4 x k`` candidates (``mmr_threshold``: lambda)."""
        filters, fetch = self._query_plan(query)
        if query.node_ids:
            records = _common.get_many(self._sync, query.node_ids, self.collection, self._options, True)
            return self._local(query, records, filters)
        hits = _common.search(self._sync, query.query_embedding or [], fetch, self._options, filters,
                              self.collection)
        if query.mode == VectorStoreQueryMode.MMR:
            records = _common.get_many(self._sync, [h.id for h in hits], self.collection, self._options, True)
            hits = self._mmr(query, hits, records)
        return self._result(hits)

    def _matching(self, filters: dict[str, Any], options: ReadOptions = _STRONG) -> list[SearchResult]:
        try:
            dim = self._sync.get_collection(self.collection).dim
        except NotFound:
            return []
        probe = [1.0] + [0.0] * (dim - 1)
        return list(self._sync.vector_search(probe, k=_PAGE, consistency_level=options.consistency_level,
                                             filters=filters, collection=self.collection).results)

    def _delete_matching(self, filters: dict[str, Any]) -> None:
        while hits := self._matching(filters):
            self._sync.delete_vectors([h.id for h in hits], collection=self.collection, ack=self.ack)
            if len(hits) < _PAGE:
                return

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        self._delete_matching({"ref_doc_id": ref_doc_id})

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        """Delete ``node_ids`` (those matching ``filters`` if both given), or all matches of ``filters``."""
        where = to_vecraft_filter(filters)
        if node_ids and where is not None:
            records = _common.get_many(self._sync, node_ids, self.collection, _STRONG)
            node_ids = [r.id for r in records if _match(where, r.metadata)]
        if node_ids:
            with contextlib.suppress(NotFound):
                self._sync.delete_vectors(node_ids, collection=self.collection, ack=self.ack)
        elif where is not None and node_ids is None:
            self._delete_matching(where)

    def get_nodes(self, node_ids: list[str] | None = None,
                  filters: MetadataFilters | None = None) -> list[BaseNode]:
        where = to_vecraft_filter(filters)
        if node_ids is not None:
            records = _common.get_many(self._sync, node_ids, self.collection, self._options)
            return [_node(r.id, r.document, r.metadata) for r in records
                    if where is None or _match(where, r.metadata)]
        if where is None:
            raise ValueError("get_nodes needs node_ids or filters")
        hits = self._matching(where, self._options)
        records = _common.get_many(self._sync, [h.id for h in hits], self.collection, self._options)
        return [_node(r.id, r.document, r.metadata) for r in records]

    def clear(self) -> None:
        """Drop the collection; the next ``add`` creates it again."""
        with contextlib.suppress(NotFound):
            self._sync.drop_collection(self.collection)

    # ---- asyncio -------------------------------------------------------------------
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        if not nodes:
            return []
        ids, vectors, metas, texts = self._rows(nodes)
        await _common.aensure_collection(self._async, self.collection, len(vectors[0]), self.metric)
        await self._async.upsert_vectors(vectors, ids=ids, metadatas=metas, documents=texts,
                                         collection=self.collection, ack=self.ack)
        return ids

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        filters, fetch = self._query_plan(query)
        if query.node_ids:
            records = await _common.aget_many(self._async, query.node_ids, self.collection, self._options,
                                              True)
            return self._local(query, records, filters)
        hits = await _common.asearch(self._async, query.query_embedding or [], fetch, self._options, filters,
                                     self.collection)
        if query.mode == VectorStoreQueryMode.MMR:
            records = await _common.aget_many(self._async, [h.id for h in hits], self.collection,
                                              self._options, True)
            hits = self._mmr(query, hits, records)
        return self._result(hits)

    async def _amatching(self, filters: dict[str, Any], options: ReadOptions = _STRONG) -> list[SearchResult]:
        try:
            dim = (await self._async.get_collection(self.collection)).dim
        except NotFound:
            return []
        probe = [1.0] + [0.0] * (dim - 1)
        response = await self._async.vector_search(probe, k=_PAGE,
                                                   consistency_level=options.consistency_level,
                                                   filters=filters, collection=self.collection)
        return list(response.results)

    async def _adelete_matching(self, filters: dict[str, Any]) -> None:
        while hits := await self._amatching(filters):
            await self._async.delete_vectors([h.id for h in hits], collection=self.collection, ack=self.ack)
            if len(hits) < _PAGE:
                return

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await self._adelete_matching({"ref_doc_id": ref_doc_id})

    async def adelete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                            **delete_kwargs: Any) -> None:
        where = to_vecraft_filter(filters)
        if node_ids and where is not None:
            records = await _common.aget_many(self._async, node_ids, self.collection, _STRONG)
            node_ids = [r.id for r in records if _match(where, r.metadata)]
        if node_ids:
            with contextlib.suppress(NotFound):
                await self._async.delete_vectors(node_ids, collection=self.collection, ack=self.ack)
        elif where is not None and node_ids is None:
            await self._adelete_matching(where)

    async def aget_nodes(self, node_ids: list[str] | None = None,
                         filters: MetadataFilters | None = None) -> list[BaseNode]:
        where = to_vecraft_filter(filters)
        if node_ids is not None:
            records = await _common.aget_many(self._async, node_ids, self.collection, self._options)
            return [_node(r.id, r.document, r.metadata) for r in records
                    if where is None or _match(where, r.metadata)]
        if where is None:
            raise ValueError("get_nodes needs node_ids or filters")
        hits = await self._amatching(where, self._options)
        records = await _common.aget_many(self._async, [h.id for h in hits], self.collection, self._options)
        return [_node(r.id, r.document, r.metadata) for r in records]

    async def aclear(self) -> None:
        with contextlib.suppress(NotFound):
            await self._async.drop_collection(self.collection)
