"""The node's in-memory collections and their on-disk snapshots."""
