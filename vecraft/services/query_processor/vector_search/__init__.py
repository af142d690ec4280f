"""Consistency-aware vector search: validation, decision, pull-before-read, search, gRPC."""

from vecraft.services.query_processor.vector_search.consistency import (
    DEFAULT_MAX_STALENESS_MS,
    ReadRequirement,
    SyncDecision,
    decide,
    is_met,
    requirement,
)
from vecraft.services.query_processor.vector_search.request import ParsedQuery, parse_query
from vecraft.services.query_processor.vector_search.sync import PartitionSyncer

__all__ = [
    "DEFAULT_MAX_STALENESS_MS",
    "ParsedQuery",
    "PartitionSyncer",
    "ReadRequirement",
    "SyncDecision",
    "decide",
    "is_met",
    "parse_query",
    "requirement",
]
