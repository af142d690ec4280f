"""Order across partitions: a replica's state is a function of the journal prefixes it applied.

A Hypothesis state machine writes a journal of two data partitions the way the
gateway and the meta manager do (creates, drops, re-creates under the same name,
writes, upserts, deletes, multi-collection transactions, late writes to dropped
collections from a stale gateway cache, and tenants moved to another partition
while they have no collections), and delivers it to both kinds of replica -
the in-memory ShardState of query processors and the durable storage-node
applier (record file + SQLite + indexes) - in random interleavings of the
partitions and random batch sizes, with restarts, snapshot loads and
empty-disk rebuilds in between. After every step each replica must hold
exactly what a reference model holds for the same prefixes: the entries of
those prefixes replayed one by one in the order they were written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.recovery import LocalState, open_local_state
from vecraft.shared.common.errors import NotFound
from vecraft.shared.index import ShardState
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

from .journal_builders import ddl, delete, schema, write

pytestmark = pytest.mark.unit

PARTITIONS = ("data-0", "data-1")
TENANTS = ("t0", "t1")
NAMES = ("a", "b")
IDS = ("x", "y", "z", "w")
SHARDS, SHARD, DIM = 2, 0, 2

Records = dict[str, tuple[tuple[float, ...], dict | None]]
Snapshot = dict[tuple[str, str], tuple[str, Records]]


@dataclass
class _Collection:
    schema: collection_pb2.CollectionSchema
    records: Records = field(default_factory=dict)


def _model(entries: list[journal_pb2.JournalEntry]) -> Snapshot:
    """The reference: replay ``entries`` one mutation at a time, naively, in the given order."""
    live: dict[str, _Collection] = {}
    dropped: set[str] = set()
    for e in entries:
        for m in journal_pb2.JournalPayload.FromString(e.payload).mutations:
            kind = m.WhichOneof("kind")
            if kind == "ddl":
                cid = m.ddl.schema.collection_id
                if m.ddl.kind == journal_pb2.CollectionDDL.CREATE and cid not in live and cid not in dropped:
                    live[cid] = _Collection(m.ddl.schema)
                elif m.ddl.kind == journal_pb2.CollectionDDL.DROP:
                    live.pop(cid, None)
                    dropped.add(cid)
            elif kind == "write" and m.write.collection_id in live:
                vectors = np.frombuffer(m.write.vectors, "<f4").reshape(len(m.write.ids), DIM)
                for n, rid in enumerate(m.write.ids):
                    if shard_of(rid, SHARDS) == SHARD:
                        meta = m.write.metadata_json[n] if m.write.metadata_json else ""
                        live[m.write.collection_id].records[rid] = (
                            tuple(vectors[n].tolist()), json.loads(meta) if meta else None)
            elif kind == "delete" and m.delete.collection_id in live:
                for rid in m.delete.ids:
                    live[m.delete.collection_id].records.pop(rid, None)
    out: Snapshot = {}
    for coll in sorted(live.values(), key=lambda c: c.schema.ddl_offset):  # the latest creation wins a name
        out[(coll.schema.tenant, coll.schema.name)] = (coll.schema.collection_id, coll.records)
    return out


def _records(ids: list[str], vectors: np.ndarray, metas: list[str]) -> Records:
    return {rid: (tuple(vectors[n].tolist()), json.loads(metas[n]) if metas[n] else None)
            for n, rid in enumerate(ids)}


class _Memory:
    """A query processor's cache: ShardState; restart = snapshot save + load."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = ShardState(SHARD)

    def applied(self, partition: str) -> int:
        return self.state.applied_offset(partition)

    def apply(self, partition: str, entries: list[journal_pb2.JournalEntry]) -> None:
        self.state.apply_many(entries)

    def restart(self) -> None:
        self.state.save(self.root / "snapshot")
        self.state = ShardState.load(self.root / "snapshot")

    def rebuild(self) -> None:
        self.state = ShardState(SHARD)

    def snapshot(self, names: list[tuple[str, str]]) -> Snapshot:
        out: Snapshot = {}
        for tenant, name in names:
            try:
                index = self.state.index(tenant, name)
            except NotFound:
                continue
            cid = self.state.schema(tenant, name).collection_id
            out[(tenant, name)] = (cid, _records(*index.get(index.ids())))
        return out

    def close(self) -> None:
        pass


class _Durable:
    """A storage node: record file + location index + indexes; restart = reopen (maybe from a snapshot)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        self.local, self.applier = self._open()

    def _open(self) -> tuple[LocalState, Applier]:
        local = open_local_state(self.root / f"node-{self.generation}", SHARD)
        return local, Applier(SHARD, local.records, local.locations, local.registry, local.applied)

    def applied(self, partition: str) -> int:
        return self.applier.applied_offset(partition)

    def apply(self, partition: str, entries: list[journal_pb2.JournalEntry]) -> None:
        self.applier.apply(partition, entries)

    def restart(self, snapshot: bool = False) -> None:
        if snapshot:
            self.local.snapshots.save(dict(self.applier.applied),
                                      {c.collection_id: c.index for c in self.local.registry.collections()})
        self.local.close()
        self.local, self.applier = self._open()

    def rebuild(self) -> None:
        self.local.close()
        self.generation += 1
        self.local, self.applier = self._open()

    def snapshot(self, names: list[tuple[str, str]]) -> Snapshot:
        out: Snapshot = {}
        for tenant, name in names:
            try:
                coll = self.local.registry.get(tenant, name)
            except NotFound:
                continue
            out[(tenant, name)] = (coll.collection_id, _records(*coll.index.get(coll.index.ids())))
        return out

    def close(self) -> None:
        self.local.close()


class ReplicaDeterminism(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="vecraft-determinism-"))
        self.journal: dict[str, list[journal_pb2.JournalEntry]] = {p: [] for p in PARTITIONS}
        self.written: list[journal_pb2.JournalEntry] = []  # every entry, in the order it was written
        self.hlc = 1 << 20
        self.system_offset = 0
        self.tenant_partition = {t: PARTITIONS[n] for n, t in enumerate(TENANTS)}
        self.catalog: dict[tuple[str, str], collection_pb2.CollectionSchema] = {}
        self.dropped: list[collection_pb2.CollectionSchema] = []
        self.incarnations = 0
        self.replicas: list[_Memory | _Durable] = []

    @initialize()
    def start(self) -> None:
        self.replicas = [_Memory(self.root / "memory"), _Durable(self.root / "durable")]
        (self.root / "memory").mkdir()

    def teardown(self) -> None:
        for replica in self.replicas:
            replica.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- writing the journal (what the gateway and the meta manager do) ---------------------------------
    def _append(self, tenant: str, *mutations: journal_pb2.Mutation) -> None:
        partition = self.tenant_partition[tenant]
        log = self.journal[partition]
        self.hlc += 1
        e = journal_pb2.JournalEntry(partition=partition, offset=len(log) + 1, hlc=self.hlc,
                                     payload=journal_pb2.JournalPayload(mutations=list(mutations))
                                     .SerializeToString())
        log.append(e)
        self.written.append(e)

    @rule(tenant=st.sampled_from(TENANTS), name=st.sampled_from(NAMES))
    def create(self, tenant: str, name: str) -> None:
        if (tenant, name) in self.catalog:
            return
        self.incarnations += 1
        self.system_offset += 1
        sch = schema(f"c{self.incarnations}", name=name, tenant=tenant, dim=DIM, shards=SHARDS)
        sch.partition, sch.ddl_offset = self.tenant_partition[tenant], self.system_offset
        self.catalog[(tenant, name)] = sch
        self._append(tenant, ddl("create", sch))

    @rule(tenant=st.sampled_from(TENANTS), name=st.sampled_from(NAMES), retried=st.booleans())
    def drop(self, tenant: str, name: str, retried: bool) -> None:
        sch = self.catalog.pop((tenant, name), None)
        if sch is None:
            return
        self.system_offset += 1
        self._append(tenant, ddl("drop", sch))
        self.dropped.append(sch)
        if retried:  # the meta manager's copy of the CREATE retried after the drop: must not revive it
            self._append(tenant, ddl("create", sch))

    @rule(tenant=st.sampled_from(TENANTS), name=st.sampled_from(NAMES))
    def move_tenant(self, tenant: str, name: str) -> None:
        """Drop the tenant's collections, pin it to the other partition, create ``name`` there again."""
        for t, n in list(self.catalog):
            if t == tenant:
                self.drop(t, n, False)
        current = self.tenant_partition[tenant]
        self.tenant_partition[tenant] = PARTITIONS[1 - PARTITIONS.index(current)]
        self.create(tenant, name)

    def _write(self, sch: collection_pb2.CollectionSchema, ids: list[str], value: int,
               upsert: bool) -> journal_pb2.Mutation:
        vectors = np.array([[value, n] for n in range(len(ids))], dtype=np.float32)
        metas = [{"v": value} if value % 2 else None for _ in ids]
        return write(sch, ids, vectors, metas, upsert=upsert)

    @rule(tenant=st.sampled_from(TENANTS), name=st.sampled_from(NAMES),
          ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True),
          value=st.integers(0, 50), upsert=st.booleans())
    def put(self, tenant: str, name: str, ids: list[str], value: int, upsert: bool) -> None:
        sch = self.catalog.get((tenant, name))
        if sch is not None:
            self._append(tenant, self._write(sch, ids, value, upsert))

    @rule(tenant=st.sampled_from(TENANTS), name=st.sampled_from(NAMES),
          ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True))
    def remove(self, tenant: str, name: str, ids: list[str]) -> None:
        sch = self.catalog.get((tenant, name))
        if sch is not None:
            self._append(tenant, delete(sch, ids))

    @rule(tenant=st.sampled_from(TENANTS), value=st.integers(0, 50),
          steps=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(IDS), st.booleans()),
                         min_size=1, max_size=4))
    def transaction(self, tenant: str, value: int, steps: list[tuple[str, str, bool]]) -> None:
        mutations = []
        for name, rid, is_delete in steps:
            sch = self.catalog.get((tenant, name))
            if sch is not None:
                mutations.append(delete(sch, [rid]) if is_delete else self._write(sch, [rid], value, True))
        if mutations:
            self._append(tenant, *mutations)

    @precondition(lambda self: bool(self.dropped))
    @rule(data=st.data(), value=st.integers(0, 50))
    def late_write_to_a_dropped_collection(self, data: st.DataObject, value: int) -> None:
        """A gateway with a stale schema cache writes after the drop: every replica skips it alike."""
        sch = data.draw(st.sampled_from(self.dropped))
        if self.tenant_partition[sch.tenant] == sch.partition:
            self._append(sch.tenant, self._write(sch, ["x", "y"], value, False))

    # --- delivering it ------------------------------------------------------------------------------
    @rule(which=st.integers(0, 1), partition=st.sampled_from(PARTITIONS), n=st.integers(1, 5))
    def deliver(self, which: int, partition: str, n: int) -> None:
        replica = self.replicas[which]
        start = replica.applied(partition)
        batch = self.journal[partition][start:start + n]
        if batch:
            replica.apply(partition, batch)

    @rule(which=st.integers(0, 1), partition=st.sampled_from(PARTITIONS), back=st.integers(1, 3))
    def redeliver_overlapping(self, which: int, partition: str, back: int) -> None:
        """A resubscribe or a pull racing the push stream hands over entries already applied."""
        replica = self.replicas[which]
        end = replica.applied(partition)
        batch = self.journal[partition][max(0, end - back):end + 1]
        if batch:
            replica.apply(partition, batch)

    @rule(which=st.integers(0, 1), snapshot=st.booleans())
    def restart(self, which: int, snapshot: bool) -> None:
        replica = self.replicas[which]
        if isinstance(replica, _Durable):
            replica.restart(snapshot)
        else:
            replica.restart()

    @rule(which=st.integers(0, 1))
    def rebuild_from_empty(self, which: int) -> None:
        self.replicas[which].rebuild()

    # --- the property ---------------------------------------------------------------------------------
    @invariant()
    def each_replica_holds_the_model_of_its_prefixes(self) -> None:
        names = [(t, n) for t in TENANTS for n in NAMES]
        states = []
        for replica in self.replicas:
            applied = {p: replica.applied(p) for p in PARTITIONS}
            prefix = [e for e in self.written if e.offset <= applied[e.partition]]
            expected = _model(prefix)
            got = replica.snapshot(names)
            assert got == expected, f"{type(replica).__name__} at {applied}"
            states.append((applied, got))
        if states[0][0] == states[1][0]:
            assert states[0][1] == states[1][1]


ReplicaDeterminism.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_replica_state_is_a_function_of_the_applied_prefixes = ReplicaDeterminism.TestCase
