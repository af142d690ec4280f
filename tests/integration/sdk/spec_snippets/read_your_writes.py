# The spec's "Client SDK Usage Examples", third snippet, verbatim except the
# endpoint (the test cluster's, from VECRAFT_ENDPOINT).
import os

from vecraft_client import VecraftClient, ConsistencyLevel

client = VecraftClient(endpoint=os.environ["VECRAFT_ENDPOINT"])

# Read-your-writes consistency
user_session = client.create_session()
user_session.insert_vector(vector=[0.5, 0.6, 0.7, 0.8], metadata={"user": "alice"})

# This query will see the just-inserted vector
response = user_session.vector_search(
    vector=[0.5, 0.6, 0.7, 0.8],
    k=5,
    consistency_level=ConsistencyLevel.READ_YOUR_WRITES
)
