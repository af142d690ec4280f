"""Every request limit Vecraft enforces, in one place (documented in docs/data-model.md).

The gateway checks these before anything reaches the journal, so a request
that breaks one is refused with ``InvalidRequest`` (400) or ``PayloadTooLarge``
(413) and never changes stored data.
"""

from __future__ import annotations

# Names (tenants, collections).
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$"
MAX_NAME_LEN = 128

# Collections.
MIN_DIM, MAX_DIM = 1, 65_536
METRICS = ("cosine", "l2", "ip")
MIN_SHARDS, MAX_SHARDS = 1, 64
MIN_REPLICAS, MAX_REPLICAS = 1, 5
HNSW_M_RANGE = (4, 128)
HNSW_EF_CONSTRUCTION_RANGE = (8, 2000)
HNSW_EF_SEARCH_RANGE = (1, 4096)
#: HNSW parameters of a collection that does not set them (a schema's 0 means "not set").
HNSW_DEFAULT_M = 16
HNSW_DEFAULT_EF_CONSTRUCTION = 200
#: A collection's ``hnsw.ef_search`` of 0 (the default): each search's ef follows its k, as
#: Weaviate's dynamic ef does: clamp(8 x k, 100, 500). On hard data (`vecraft bench recall --data
#: hard`, 20K x 64, 3 shards) the old fixed 64 gave recall@10 0.941, dynamic (100 at k=10) 0.982 for
#: +0.1 ms P50 (bench/reports/recall-hard.md).
DYNAMIC_EF_SEARCH = 0
DYNAMIC_EF_FACTOR, DYNAMIC_EF_MIN, DYNAMIC_EF_MAX = 8, 100, 500


def dynamic_ef(k: int) -> int:
    """The ef of a search for ``k`` hits in a collection with the dynamic default (never below k)."""
    return max(k, min(max(DYNAMIC_EF_FACTOR * k, DYNAMIC_EF_MIN), DYNAMIC_EF_MAX))

# Records.
MAX_ID_LEN = 256
ID_PATTERN = r"^[A-Za-z0-9_.:@/-]{1,256}$"
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 8
MAX_METADATA_KEY_LEN = 256
MAX_DOCUMENT_BYTES = 1024 * 1024

# Requests.
#: Largest request: an HTTP body (413 above), a public gRPC request message and a journal
#: entry (JournalLimits.max_entry_bytes must not exceed it). 64 MiB holds a 10,000 x 1,536
#: float32 batch in binary form.
MAX_REQUEST_BYTES = 64 << 20
#: gRPC wraps a payload in an envelope (field tags and lengths, request id, shard list,
#: partition name, offsets; a PullWAL page or Subscribe event around a single entry); 1 MiB
#: is far above any of them, so an entry of MAX_REQUEST_BYTES still travels between services.
GRPC_ENVELOPE_BYTES = 1 << 20
#: Largest gRPC message any Vecraft server accepts (RESOURCE_EXHAUSTED above).
GRPC_MAX_MESSAGE_BYTES = MAX_REQUEST_BYTES + GRPC_ENVELOPE_BYTES
MIN_K, MAX_K = 1, 1024
MAX_STALENESS_MS = 3_600_000
MAX_BATCH_ROWS = 10_000

# Filters.
MAX_FILTER_DEPTH = 8
MAX_FILTER_CONDITIONS = 256
MAX_IN_VALUES = 1024
