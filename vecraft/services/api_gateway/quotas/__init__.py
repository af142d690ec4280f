"""Per-tenant and per-key quotas and rate limits at the gateway (docs/quotas.md).

- :mod:`.book`: the quota records the gateway follows from the meta manager (Watch topic
  ``quotas``);
- :mod:`.limiter`: the rate limits (pyrate-limiter token buckets, one per subject and limit,
  in this process) and the checks of collection and vector counts and request sizes;
- :mod:`.counts`: how many vectors each tenant stores, read from the storage nodes.
"""
