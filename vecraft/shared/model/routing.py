"""Routing rules every service must agree on: tenant -> journal partition, id -> shard.

Journal partitions come in two classes (DESIGN.md section 4, docs/journal.md):

- ``data-0`` .. ``data-{P-1}``: every write of a collection - inserts,
  upserts, deletes, transactions, and a copy of its DDL; a tenant's
  collections live in one data partition, ``data-{crc32(tenant) % P}`` unless
  the meta manager records an explicit override (set only while the tenant has
  no collections). So each collection's records are a function of one
  partition's prefix, whatever order partitions reach a replica in;
- ``system``: DDL (collection create / drop / alter), tenant changes.

A record lives on shard ``crc32(id) % shards`` of its collection; shard ``s``
of every collection is served by the storage replicas and query processors of
shard group ``s``.
"""

from __future__ import annotations

import zlib

import numpy as np

SYSTEM_PARTITION = "system"
DATA_PREFIX = "data-"
DEFAULT_TENANT = "default"
DEFAULT_COLLECTION = "default"


def data_partition(index: int) -> str:
    return f"{DATA_PREFIX}{index}"


def all_partitions(data_partitions: int) -> list[str]:
    """Every partition of a journal with ``data_partitions`` data partitions."""
    return [data_partition(i) for i in range(data_partitions)] + [SYSTEM_PARTITION]


def is_data_partition(name: str) -> bool:
    return name.startswith(DATA_PREFIX) and name[len(DATA_PREFIX):].isdigit()


def tenant_partition(tenant: str, data_partitions: int) -> str:
    """Default (hash) placement of a tenant's data partition."""
    if data_partitions < 1:
        raise ValueError("data_partitions must be >= 1")
    return data_partition(zlib.crc32(tenant.encode()) % data_partitions)


def shard_of(record_id: str, shards: int) -> int:
    """The shard of one record id."""
    return zlib.crc32(record_id.encode()) % shards


def shards_of(record_ids: list[str], shards: int) -> np.ndarray:
    """Shard of each id, as a uint32 array (one pass, no per-id objects kept)."""
    return np.fromiter((zlib.crc32(i.encode()) % shards for i in record_ids), dtype=np.uint32,
                       count=len(record_ids))
