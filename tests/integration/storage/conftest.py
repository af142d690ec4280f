"""Storage-node fixtures (defined once in tests/integration/storage/harness.py)."""

from tests.integration.storage.harness import journal, meta, meta_client, start_node, writer

__all__ = ["journal", "meta", "meta_client", "start_node", "writer"]
