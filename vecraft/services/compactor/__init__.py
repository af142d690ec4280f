"""The compactor: journal GC (trims what no consumer, archive or idempotency window needs; docs/compactor.md).

Record-file and index compaction run inside each storage node (its replicas know their own dead bytes);
this service makes the one decision that needs the whole cluster's view: how far each journal partition
may be trimmed.
"""
