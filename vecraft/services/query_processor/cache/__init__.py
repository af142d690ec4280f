"""The processor's journal-fed copy of its shards: the in-memory state and how it follows the journal."""

from vecraft.services.query_processor.cache.following import QueryObserver, cache_followers, warm_up
from vecraft.services.query_processor.cache.shard_cache import ShardCache

__all__ = ["QueryObserver", "ShardCache", "cache_followers", "warm_up"]
