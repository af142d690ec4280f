# The spec's "Client SDK Usage Examples", second snippet, verbatim except the
# endpoint (the test cluster's, from VECRAFT_ENDPOINT).
import os

from vecraft_client import VecraftClient, ConsistencyLevel

client = VecraftClient(endpoint=os.environ["VECRAFT_ENDPOINT"])

# Strong consistency query (always fresh)
response = client.vector_search(
    vector=[0.1, 0.2, 0.3, 0.4],
    k=10,
    consistency_level=ConsistencyLevel.STRONG
)
