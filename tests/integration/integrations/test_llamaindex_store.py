"""The LlamaIndex adapter against a real `vecraft up`, through VectorStoreIndex.from_vector_store
with a deterministic offline embedding."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from tests.support.cluster import LocalCluster
from vecraft_client.integrations.llamaindex import VecraftVectorStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DIM = 16


class HashEmbedding(BaseEmbedding):
    """Unit vectors seeded by the text's hash: the same text always embeds the same, offline."""

    def _vec(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(DIM)
        return (v / np.linalg.norm(v)).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vec(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vec(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vec(query)


def node(node_id: str, text: str, doc: str, **meta: object) -> TextNode:
    # Embedded as the bare text, so a query for the text finds it with score 1.
    return TextNode(id_=node_id, text=text, metadata=dict(meta), excluded_embed_metadata_keys=list(meta),
                    relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)})


NODES = [node("n1", "alpha", "doc-a", year=2020, tags=["ml", "nlp"]),
         node("n2", "beta", "doc-a", year=2022, tags=["db"]),
         node("n3", "gamma", "doc-b", year=2024, tags=["ml"])]


@pytest.fixture()
def store(cluster: LocalCluster) -> Iterator[VecraftVectorStore]:
    s = VecraftVectorStore(f"li_{uuid.uuid4().hex[:12]}", endpoint=cluster.endpoint,
                           consistency_level="read_your_writes")
    yield s
    s.clear()


def ids(nodes: list[object]) -> list[str]:
    return [n.node_id for n in nodes]  # type: ignore[attr-defined]


def test_index_end_to_end(store: VecraftVectorStore) -> None:
    index = VectorStoreIndex.from_vector_store(store, embed_model=HashEmbedding())
    index.insert_nodes([n.model_copy() for n in NODES])
    got = index.as_retriever(similarity_top_k=1).retrieve("beta")
    assert [n.node.node_id for n in got] == ["n2"] and got[0].node.get_content() == "beta"
    assert got[0].node.ref_doc_id == "doc-a" and got[0].score == pytest.approx(1.0, abs=1e-5)

    ml = MetadataFilters(filters=[MetadataFilter(key="tags", value="ml", operator=FilterOperator.CONTAINS),
                                  MetadataFilter(key="year", value=2021, operator=FilterOperator.GT)])
    got = index.as_retriever(similarity_top_k=3, filters=ml).retrieve("alpha")
    assert [n.node.node_id for n in got] == ["n3"]

    index.delete_ref_doc("doc-a")
    got = index.as_retriever(similarity_top_k=3).retrieve("alpha")
    assert [n.node.node_id for n in got] == ["n3"]


def test_get_delete_nodes_clear_and_errors(store: VecraftVectorStore) -> None:
    emb = HashEmbedding()
    nodes = [n.model_copy() for n in NODES]
    for n in nodes:
        n.embedding = emb.get_text_embedding(n.get_content())
    assert store.add(nodes) == ["n1", "n2", "n3"]
    assert ids(store.get_nodes(["n3", "n1", "zz"])) == ["n3", "n1"]
    recent = MetadataFilters(filters=[MetadataFilter(key="year", value=2022, operator=FilterOperator.GTE)])
    assert sorted(ids(store.get_nodes(filters=recent))) == ["n2", "n3"]
    assert ids(store.get_nodes(["n1", "n2"], filters=recent)) == ["n2"]

    q = VectorStoreQuery(query_embedding=emb.get_query_embedding("beta"), similarity_top_k=2,
                         node_ids=["n2", "n3"], filters=recent)
    assert store.query(q).ids == ["n2", "n3"]

    bad = MetadataFilters(filters=[MetadataFilter(key="t", value="x", operator=FilterOperator.TEXT_MATCH)])
    with pytest.raises(ValueError, match="text_match"):
        store.query(VectorStoreQuery(query_embedding=[1.0] * DIM, similarity_top_k=1, filters=bad))

    store.delete_nodes(filters=recent)
    assert ids(store.get_nodes(["n1", "n2", "n3"])) == ["n1"]
    store.delete_nodes(["n1"])
    assert store.get_nodes(["n1"]) == []
    store.add([nodes[0]])
    store.clear()
    assert store.get_nodes(["n1"]) == []
    assert store.query(VectorStoreQuery(query_embedding=[1.0] * DIM, similarity_top_k=1)).ids == []


def test_mmr_picks_diverse(store: VecraftVectorStore) -> None:
    base = np.zeros(DIM)
    base[0] = 1.0
    near = base.copy()
    near[1] = 0.01
    far = np.zeros(DIM)
    far[0], far[2] = 0.5, 0.8
    nodes = [TextNode(id_=i, text=i, embedding=v.tolist()) for i, v in (("base", base), ("near", near),
                                                                          ("far", far))]
    store.add(nodes)
    q = VectorStoreQuery(query_embedding=base.tolist(), similarity_top_k=2, mode=VectorStoreQueryMode.MMR,
                         mmr_threshold=0.2)
    assert store.query(q).ids == ["base", "far"]
    plain = VectorStoreQuery(query_embedding=base.tolist(), similarity_top_k=2)
    assert store.query(plain).ids == ["base", "near"]


async def test_async_variants(store: VecraftVectorStore) -> None:
    emb = HashEmbedding()
    nodes = [n.model_copy() for n in NODES]
    for n in nodes:
        n.embedding = emb.get_text_embedding(n.get_content())
    await store.async_add(nodes)
    gamma = emb.get_query_embedding("gamma")
    res = await store.aquery(VectorStoreQuery(query_embedding=gamma, similarity_top_k=1))
    assert res.ids == ["n3"] and res.nodes is not None and res.nodes[0].get_content() == "gamma"
    mmr = await store.aquery(VectorStoreQuery(query_embedding=gamma, similarity_top_k=2,
                                              mode=VectorStoreQueryMode.MMR))
    assert (mmr.ids or [])[0] == "n3"
    assert ids(await store.aget_nodes(["n1"])) == ["n1"]
    await store.adelete("doc-b")
    assert await store.aget_nodes(["n3"]) == []
    await store.adelete_nodes(["n1"])
    assert ids(await store.aget_nodes(["n1", "n2"])) == ["n2"]
    index = VectorStoreIndex.from_vector_store(store, embed_model=emb)
    got = await index.as_retriever(similarity_top_k=1).aretrieve("beta")
    assert [n.node.node_id for n in got] == ["n2"]
    await store.aclear()
    assert await store.aget_nodes(["n2"]) == []
