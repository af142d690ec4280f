"""LangChain vector store backed by a Vecraft collection.

>>> from vecraft_client.integrations.langchain import VecraftVectorStore
>>> store = VecraftVectorStore(embedding=embeddings, collection="docs",
...                            endpoint="http://127.0.0.1:8000", consistency_level="read_your_writes")
>>> store.add_texts(["hello"], metadatas=[{"lang": "en"}])
>>> store.similarity_search("hello", k=4, filter={"lang": {"$in": ["en", "de"]}})

Records: the text is the record's ``document``, the LangChain metadata its
``metadata``, the document id its id. Filters are Vecraft's filter grammar
(``docs/data-model.md#filters``). ``consistency_level="read_your_writes"``
sends every call through one SDK session, so a search sees the store's own
earlier writes (sync and async methods share the session).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft_client._calls import new_request_id
from vecraft_client._client import AsyncVecraftClient, VecraftClient
from vecraft_client._models import SearchResult, VectorRecord
from vecraft_client.integrations import _common
from vecraft_client.integrations._common import ReadOptions

__all__ = ["VecraftVectorStore"]


def _document(record_id: str, text: str | None, metadata: Mapping[str, Any] | None) -> Document:
    return Document(id=record_id, page_content=text or "", metadata=dict(metadata or {}))


def _hit(hit: SearchResult) -> tuple[Document, float]:
    return _document(hit.id, hit.document, hit.metadata), hit.score


def _from_record(record: VectorRecord) -> Document:
    return _document(record.id, record.document, record.metadata)


class VecraftVectorStore(VectorStore):
    """A Vecraft collection as a LangChain ``VectorStore``.

    Args:
        embedding: the LangChain embeddings used for texts and queries.
        collection: collection name; created on the first write with the embedding's
            dimension and ``metric`` if it does not exist.
        client: a :class:`VecraftClient` (built from ``endpoint`` when omitted).
        async_client: an :class:`AsyncVecraftClient` for the ``a*`` methods (built from
            ``endpoint`` when omitted).
        endpoint: gateway address for the clients this store builds.
        metric: ``cosine`` (default), ``l2`` or ``ip``, for a collection this store creates.
            An existing collection's own metric decides the relevance scores.
        consistency_level: level of searches and reads by id; ``read_your_writes``
            routes every call through one session so reads see the store's writes.
        max_staleness_ms: bound of ``bounded`` searches (alone it means ``bounded``).
        ack: when writes are answered (``journal``, ``one``, ``all``; server default all).
    """

    def __init__(self, embedding: Embeddings, collection: str = "langchain", *,
                 client: VecraftClient | None = None, async_client: AsyncVecraftClient | None = None,
                 endpoint: str | None = None, metric: str = "cosine",
                 consistency_level: ConsistencyLevel | str | None = None,
                 max_staleness_ms: int | None = None, ack: str | None = None) -> None:
        if client is None and async_client is None:
            endpoint = endpoint or "http://127.0.0.1:8000"
        if client is None and endpoint is not None:
            client = VecraftClient(endpoint=endpoint)
        if async_client is None and endpoint is not None:
            async_client = AsyncVecraftClient(endpoint=endpoint)
        self._embedding = embedding
        self.collection = collection
        self._metric = metric
        self._ack = ack
        self._options = ReadOptions.of(consistency_level, max_staleness_ms)
        self._sync, self._async = _common.sessions(client, async_client, self._options)

    # ---- plumbing ------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def client(self) -> _common.Sync:
        if self._sync is None:
            raise RuntimeError("this VecraftVectorStore has no synchronous client; pass client= or endpoint=")
        return self._sync

    @property
    def async_client(self) -> _common.Async:
        if self._async is None:
            raise RuntimeError("this VecraftVectorStore has no asyncio client; pass async_client= or "
                               "endpoint=")
        return self._async

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        metric = self._metric
        if self._sync is not None:
            try:
                metric = self._sync.get_collection(self.collection).metric
            except Exception:  # noqa: BLE001 - not created yet: the metric it will be created with
                metric = self._metric
        return _common.relevance_fn(metric)

    @staticmethod
    def _ids(n: int, ids: Sequence[str | None] | None) -> list[str]:
        if ids is not None and len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} texts; give one per text")
        return [i if i else new_request_id() for i in (ids or [None] * n)]

    # ---- writes --------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, *,
                  ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """Embed and upsert ``texts``; an existing id is replaced. Returns the ids."""
        texts = list(texts)
        if not texts:
            return []
        ids = self._ids(len(texts), ids)
        vectors = self._embedding.embed_documents(texts)
        _common.ensure_collection(self.client, self.collection, len(vectors[0]), self._metric)
        self.client.upsert_vectors(vectors, ids=ids, metadatas=metadatas, documents=texts,
                                   collection=self.collection, ack=kwargs.get("ack", self._ack))
        return ids

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, *,
                         ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        texts = list(texts)
        if not texts:
            return []
        ids = self._ids(len(texts), ids)
        vectors = await self._embedding.aembed_documents(texts)
        await _common.aensure_collection(self.async_client, self.collection, len(vectors[0]), self._metric)
        await self.async_client.upsert_vectors(vectors, ids=ids, metadatas=metadatas, documents=texts,
                                               collection=self.collection, ack=kwargs.get("ack", self._ack))
        return ids

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        if "ids" not in kwargs:
            kwargs["ids"] = [d.id for d in documents]
        return self.add_texts([d.page_content for d in documents], [d.metadata for d in documents], **kwargs)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        if "ids" not in kwargs:
            kwargs["ids"] = [d.id for d in documents]
        return await self.aadd_texts([d.page_content for d in documents], [d.metadata for d in documents],
                                     **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete ``ids`` (missing ones are no error). Returns True."""
        if not ids:
            return True
        if _common._collection_exists(self.client, self.collection):
            self.client.delete_vectors(ids, collection=self.collection, ack=kwargs.get("ack", self._ack))
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if not ids:
            return True
        # A collection never created has nothing to delete.
        with contextlib.suppress(_common.NotFound):
            await self.async_client.delete_vectors(ids, collection=self.collection,
                                                   ack=kwargs.get("ack", self._ack))
        return True

    # ---- reads ---------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents of ``ids`` that exist, in the order asked."""
        return [_from_record(r) for r in _common.get_many(self.client, ids, self.collection, self._options)]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        records = await _common.aget_many(self.async_client, ids, self.collection, self._options)
        return [_from_record(r) for r in records]

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4,
                                               filter: dict[str, Any] | None = None,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        """Top-``k`` documents and Vecraft scores (higher is better); ``filter`` in Vecraft's grammar."""
        hits = _common.search(self.client, embedding, k, self._options, filter, self.collection)
        return [_hit(h) for h in hits]

    async def asimilarity_search_with_score_by_vector(
            self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None,
            **kwargs: Any) -> list[tuple[Document, float]]:
        hits = await _common.asearch(self.async_client, embedding, k, self._options, filter, self.collection)
        return [_hit(h) for h in hits]

    def similarity_search_with_score(self, query: str, k: int = 4,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, **kwargs)

    async def asimilarity_search_with_score(self, query: str, k: int = 4,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        vector = await self._embedding.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(vector, k, **kwargs)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)]

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                           **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score_by_vector(embedding, k, **kwargs)]

    def _similarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                 **kwargs: Any) -> list[tuple[Document, float]]:
        fn = self._select_relevance_score_fn()
        return [(d, fn(s)) for d, s in self.similarity_search_with_score(query, k, **kwargs)]

    # ---- maximal marginal relevance ------------------------------------------------
    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5,
                                                filter: dict[str, Any] | None = None,
                                                **kwargs: Any) -> list[Document]:
        """``fetch_k`` nearest candidates re-ranked by MMR down to ``k`` (their vectors read by id)."""
        hits = _common.search(self.client, embedding, fetch_k, self._options, filter, self.collection)
        records = _common.get_many(self.client, [h.id for h in hits], self.collection, self._options,
                                   include_vector=True)
        return self._pick(embedding, records, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
            self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
            filter: dict[str, Any] | None = None, **kwargs: Any) -> list[Document]:
        hits = await _common.asearch(self.async_client, embedding, fetch_k, self._options, filter,
                                     self.collection)
        records = await _common.aget_many(self.async_client, [h.id for h in hits], self.collection,
                                          self._options, include_vector=True)
        return self._pick(embedding, records, k, lambda_mult)

    @staticmethod
    def _pick(query: list[float], records: list[VectorRecord], k: int, lambda_mult: float) -> list[Document]:
        records = [r for r in records if r.vector is not None]
        order = _common.mmr(query, [r.vector or [] for r in records], k, lambda_mult)
        return [_from_record(records[i]) for i in order]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(self._embedding.embed_query(query), k, fetch_k,
                                                            lambda_mult, **kwargs)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        vector = await self._embedding.aembed_query(query)
        return await self.amax_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult, **kwargs)

    # ---- constructors --------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: list[dict[str, Any]] | None = None, *, ids: list[str] | None = None,
                   **kwargs: Any) -> VecraftVectorStore:
        """A store over ``kwargs`` (collection, endpoint, client, ...) with ``texts`` added."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings,
                          metadatas: list[dict[str, Any]] | None = None, *, ids: list[str] | None = None,
                          **kwargs: Any) -> VecraftVectorStore:
        store = cls(embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store
