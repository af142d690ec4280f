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

# Records.
MAX_ID_LEN = 256
ID_PATTERN = r"^[A-Za-z0-9_.:@/-]{1,256}$"
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 8
MAX_METADATA_KEY_LEN = 256
MAX_DOCUMENT_BYTES = 1024 * 1024

# Requests.
MIN_K, MAX_K = 1, 1024
MAX_STALENESS_MS = 3_600_000
MAX_BATCH_ROWS = 10_000

# Filters.
MAX_FILTER_DEPTH = 8
MAX_FILTER_CONDITIONS = 256
MAX_IN_VALUES = 1024
