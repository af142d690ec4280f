"""Every request limit Vecraft enforces, in one place (documented in docs/data-model.md).

The gateway checks these before anything reaches the journal, so a request
that breaks one is refused with ``InvalidRequest`` (400) or ``PayloadTooLarge``
(413) and never changes stored data.
"""

from __future__ import annotations

# Re-exported: the request and message sizes live with the service shell (shared/common), which
# sets them on every port; they are listed here with every other limit.
from vecraft.shared.common.message_size import GRPC_ENVELOPE_BYTES as GRPC_ENVELOPE_BYTES
from vecraft.shared.common.message_size import GRPC_MAX_MESSAGE_BYTES as GRPC_MAX_MESSAGE_BYTES
from vecraft.shared.common.message_size import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES

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

# Requests: MAX_REQUEST_BYTES and the gRPC message sizes (imported above from the service shell,
# which enforces them on every port).
MIN_K, MAX_K = 1, 1024
MAX_STALENESS_MS = 3_600_000
MAX_BATCH_ROWS = 10_000

# Filters.
MAX_FILTER_DEPTH = 8
MAX_FILTER_CONDITIONS = 256
MAX_IN_VALUES = 1024
