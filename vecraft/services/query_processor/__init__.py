"""Query processor: journal-fed cached shard indexes and the per-request consistency decision.

- :mod:`.cache`: the shard state copy, fed by the shared partition followers
  (:mod:`vecraft.shared.replica.follower`: push tail, single-flight pull-before-read,
  staleness), and the warm-up;
- :mod:`.vector_search`: request validation, the consistency decision, the search
  itself and the gRPC servicer;
- :mod:`.membership`: the node registration and the placement map, which says
  which shards this processor serves.

See docs/query-processor.md for the process and its placement, docs/consistency.md
for the rules and what each response field means.
"""
