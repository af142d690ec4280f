"""The API gateway: HTTP (FastAPI) and gRPC front door of a Vecraft cluster.

It validates requests, routes writes to the journal, fans searches out to one
query processor per shard and merges their answers. ``python -m
vecraft.services.api_gateway`` runs it.
"""
