"""Merging the top-k of several shards into one ranked answer."""

from vecraft.services.query_processor.aggregation.topk import ShardHits, hits_from_proto, merge_top_k

__all__ = ["ShardHits", "hits_from_proto", "merge_top_k"]
