"""The LangChain adapter against a real `vecraft up`: langchain-tests' standard suite, plus
filters, scores, MMR and read-your-writes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from tests.support.cluster import LocalCluster
from vecraft_client import AsyncVecraftClient, NotFound, VecraftClient
from vecraft_client.integrations.langchain import VecraftVectorStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _store(cluster: LocalCluster, **kwargs: object) -> VecraftVectorStore:
    return VecraftVectorStore(VectorStoreIntegrationTests.get_embeddings(), f"lc_{uuid.uuid4().hex[:12]}",
                              client=VecraftClient(endpoint=cluster.endpoint),
                              async_client=AsyncVecraftClient(endpoint=cluster.endpoint),
                              consistency_level="read_your_writes", **kwargs)  # type: ignore[arg-type]


def _drop(store: VecraftVectorStore) -> None:
    with contextlib.suppress(NotFound):  # never created
        store.client.drop_collection(store.collection)


class TestVecraftStandard(VectorStoreIntegrationTests):
    """langchain-tests' VectorStoreIntegrationTests, sync and async, each on a fresh collection."""

    @pytest.fixture()
    def vectorstore(self, cluster: LocalCluster) -> Iterator[VectorStore]:  # type: ignore[override]
        store = _store(cluster)
        yield store
        _drop(store)


@pytest.fixture()
def store(cluster: LocalCluster) -> Iterator[VecraftVectorStore]:
    s = _store(cluster)
    yield s
    _drop(s)


def test_filters_in_vecraft_grammar(store: VecraftVectorStore) -> None:
    store.add_texts(["a", "b", "c", "d"], [{"year": 2019, "lang": "en"}, {"year": 2021, "lang": "de"},
                                           {"year": 2023, "lang": "en"}, {"year": 2024, "lang": "fr"}],
                    ids=["a", "b", "c", "d"])
    got = store.similarity_search("a", k=4, filter={"year": {"$gte": 2021}, "lang": {"$in": ["en", "fr"]}})
    assert sorted(d.id for d in got) == ["c", "d"]
    got = store.similarity_search("a", k=4, filter={"$or": [{"lang": "de"}, {"year": {"$lt": 2020}}]})
    assert sorted(d.id for d in got) == ["a", "b"]


def test_scores_and_relevance(store: VecraftVectorStore) -> None:
    store.add_texts(["same", "other"], ids=["s", "o"])
    (doc, score), *_ = store.similarity_search_with_score("same", k=2)
    assert doc.id == "s" and score == pytest.approx(1.0, abs=1e-5)
    rel = store.similarity_search_with_relevance_scores("same", k=2)
    assert rel[0][1] == pytest.approx(1.0, abs=1e-5) and all(0.0 <= r <= 1.0 for _, r in rel)


def test_mmr_prefers_diverse_results(store: VecraftVectorStore) -> None:
    emb = store.embeddings
    base = emb.embed_query("q")
    near = [x + 1e-3 for x in base]
    far = emb.embed_query("other")
    store.client.create_collection(store.collection, dim=len(base))
    store.client.upsert_vectors([base, near, far], ids=["base", "near", "far"],
                                documents=["q", "q2", "other"], collection=store.collection)
    assert [d.id for d in store.max_marginal_relevance_search_by_vector(base, k=2, fetch_k=3,
                                                                        lambda_mult=0.1)] == ["base", "far"]
    by_text = store.max_marginal_relevance_search("q", k=2, fetch_k=3, lambda_mult=0.1)
    assert [d.id for d in by_text] == ["base", "far"]


async def test_mmr_async_and_from_texts(cluster: LocalCluster) -> None:
    name = f"lc_{uuid.uuid4().hex[:12]}"
    store = await VecraftVectorStore.afrom_texts(
        ["x", "y"], VectorStoreIntegrationTests.get_embeddings(), [{"n": 1}, {"n": 2}], ids=["x", "y"],
        collection=name, endpoint=cluster.endpoint, consistency_level="strong")
    try:
        got = await store.amax_marginal_relevance_search("x", k=1, fetch_k=2)
        assert got == [Document(id="x", page_content="x", metadata={"n": 1})]
    finally:
        _drop(store)


def test_from_texts_and_bounded_reads(cluster: LocalCluster) -> None:
    name = f"lc_{uuid.uuid4().hex[:12]}"
    store = VecraftVectorStore.from_texts(["hello"], VectorStoreIntegrationTests.get_embeddings(),
                                          ids=["h"], collection=name, endpoint=cluster.endpoint,
                                          metric="l2", consistency_level="strong")
    try:
        assert store.get_by_ids(["h", "missing"]) == [Document(id="h", page_content="hello")]
        bounded = VecraftVectorStore(store.embeddings, name, endpoint=cluster.endpoint,
                                     max_staleness_ms=60_000)
        assert [d.id for d in bounded.get_by_ids(["h"])] == ["h"]
        rel = store.similarity_search_with_relevance_scores("hello", k=1)
        assert rel[0][1] == pytest.approx(1.0, abs=1e-3)  # l2: distance 0
    finally:
        _drop(store)
