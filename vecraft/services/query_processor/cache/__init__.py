"""The processor's journal-fed copy of its shards: state, freshness, warm-up and the push tail."""

from vecraft.services.query_processor.cache.catchup import (
    JournalReader,
    Subscription,
    catch_up_locked,
    warm_up,
)
from vecraft.services.query_processor.cache.shard_cache import ShardCache
from vecraft.services.query_processor.cache.tail import HeadWatch, PartitionTail

__all__ = [
    "HeadWatch",
    "JournalReader",
    "PartitionTail",
    "ShardCache",
    "Subscription",
    "catch_up_locked",
    "warm_up",
]
