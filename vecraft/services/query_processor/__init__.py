"""Query processor: journal-fed cached shard indexes and the per-request consistency decision.

- :mod:`.cache`: the shard state copy, its freshness (staleness bound), warm-up and the
  delayed push tail;
- :mod:`.vector_search`: request validation, the consistency decision, single-flight
  pull-before-read, the search itself and the gRPC servicer;
- :mod:`.aggregation`: top-k merge across the served shards.

See docs/consistency.md for the rules and what each response field means.
"""
