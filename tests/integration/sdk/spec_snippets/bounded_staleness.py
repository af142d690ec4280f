# The spec's "Client SDK Usage Examples", first snippet, verbatim except the
# endpoint (the test cluster's, from VECRAFT_ENDPOINT).
import os

# Python SDK Example
from vecraft_client import VecraftClient, ConsistencyLevel

client = VecraftClient(endpoint=os.environ["VECRAFT_ENDPOINT"])

# Bounded staleness query
response = client.vector_search(
    vector=[0.1, 0.2, 0.3, 0.4],
    k=10,
    consistency_level=ConsistencyLevel.BOUNDED_STALENESS,
    max_staleness_ms=500
)

print(f"Actual staleness: {response.consistency_info.staleness_ms}ms")
print(f"Cache hit: {response.consistency_info.cache_hit}")
