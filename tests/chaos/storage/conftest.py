"""Storage-node fixtures (defined once in tests/integration/storage/harness.py)."""

from tests.integration.storage.harness import journal, start_node, writer

__all__ = ["journal", "start_node", "writer"]
