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

__all__ = [
    "DEFAULT_MAX_STALENESS_MS",
    "ParsedQuery",
    "ReadRequirement",
    "SyncDecision",
    "decide",
    "is_met",
    "parse_query",
    "requirement",
]
