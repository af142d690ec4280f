"""The node's collections in memory: schema + one CollectionIndex each, found by id or by name.

Mutated only by the apply thread; read by searches on other threads. The maps
are replaced copy-on-write, so a reader iterating them never sees one change
half done and needs no lock (each CollectionIndex locks itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from vecraft.shared.common.errors import NotFound
from vecraft.shared.index.collection import CollectionIndex
from vecraft.shared.model.routing import DEFAULT_COLLECTION, DEFAULT_TENANT
from vecraft.shared.rpc.v1 import collection_pb2


@dataclass(slots=True)
class Collection:
    schema: collection_pb2.CollectionSchema
    index: CollectionIndex

    @property
    def collection_id(self) -> str:
        return self.schema.collection_id

    @property
    def label(self) -> str:
        """``tenant/name``: the collection's label in metrics and stats."""
        return f"{self.schema.tenant or DEFAULT_TENANT}/{self.schema.name}"


def _name_key(tenant: str, name: str) -> tuple[str, str]:
    return (tenant or DEFAULT_TENANT, name or DEFAULT_COLLECTION)


def _bind_name(by_id: dict[str, Collection], by_name: dict[tuple[str, str], str],
               schema: collection_pb2.CollectionSchema) -> dict[tuple[str, str], str]:
    """A copy of ``by_name`` with ``schema``'s name on its live incarnation created last.

    "Last" is the highest ``ddl_offset`` (position in the ``system`` partition), so
    incarnations in different partitions resolve the same whatever order they arrive in.
    """
    key = _name_key(schema.tenant, schema.name)
    live = [c.schema for c in by_id.values() if _name_key(c.schema.tenant, c.schema.name) == key]
    out = dict(by_name)
    if live:
        out[key] = max(live, key=lambda sc: sc.ddl_offset).collection_id
    else:
        out.pop(key, None)
    return out


class CollectionRegistry:
    """collection_id -> Collection, plus (tenant, name) -> the id of its latest live incarnation."""

    def __init__(self) -> None:
        self._by_id: dict[str, Collection] = {}
        self._by_name: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def collections(self) -> list[Collection]:
        return list(self._by_id.values())

    def schemas(self) -> dict[str, collection_pb2.CollectionSchema]:
        """A copy of collection_id -> schema (what decode_entry needs as ``known``)."""
        return {cid: c.schema for cid, c in self._by_id.items()}

    def by_id(self, collection_id: str) -> Collection | None:
        return self._by_id.get(collection_id)

    def get(self, tenant: str, name: str) -> Collection:
        """The live collection named ``name`` of ``tenant`` ("" = default); raises NotFound."""
        key = _name_key(tenant, name)
        cid = self._by_name.get(key)
        coll = self._by_id.get(cid) if cid is not None else None
        if coll is None:
            raise NotFound(f"collection {key[1]!r} of tenant {key[0]!r} is not known to this node",
                           details={"tenant": key[0], "collection": key[1]})
        return coll

    def add(self, schema: collection_pb2.CollectionSchema,
            index: CollectionIndex | None = None) -> Collection:
        """Register a created collection (with a fresh index unless one is given)."""
        coll = Collection(schema, index if index is not None else CollectionIndex.for_schema(schema))
        by_id = dict(self._by_id)
        by_id[schema.collection_id] = coll
        self._by_id, self._by_name = by_id, _bind_name(by_id, self._by_name, schema)
        return coll

    def alter(self, schema: collection_pb2.CollectionSchema) -> None:
        """Apply an ALTER: only search-time parameters change (ef_search)."""
        coll = self._by_id.get(schema.collection_id)
        if coll is None:
            return
        if schema.hnsw.ef_search > 0:
            coll.index.set_ef_search(schema.hnsw.ef_search)
        coll.schema = schema

    def drop(self, collection_id: str) -> None:
        coll = self._by_id.get(collection_id)
        if coll is None:
            return
        by_id = {cid: c for cid, c in self._by_id.items() if cid != collection_id}
        self._by_id, self._by_name = by_id, _bind_name(by_id, self._by_name, coll.schema)
