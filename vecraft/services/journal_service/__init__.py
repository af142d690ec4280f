"""Journal service: durable, partitioned, HLC-ordered write-ahead journal (DESIGN.md section 4).

Modules and packages: ``partition_map`` (the partitions and the routing rule), ``wal`` (the log
interface and its local file backend), ``distribution`` (consumers, acks,
lag, back-pressure), ``ownership`` (which instance writes which partition:
leases and fenced streams in cluster mode); ``journal`` holds the verbs,
``servicer`` the gRPC adapter. The client every other service uses is
``vecraft.clients.journal``.
"""
