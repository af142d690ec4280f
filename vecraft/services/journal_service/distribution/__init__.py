"""Delta distribution: consumers of each partition, write acknowledgements, lag and back-pressure."""

from vecraft.services.journal_service.distribution.acks import AckOutcome, AckTracker, ack_groups
from vecraft.services.journal_service.distribution.backpressure import BackPressure, Thresholds
from vecraft.services.journal_service.distribution.replicas import (
    ROLE_CACHE,
    ROLE_REPLICA,
    ROLES,
    Lag,
    ReplicaRegistry,
    ReplicaState,
    compute_lag,
)

__all__ = [
    "ROLES",
    "ROLE_CACHE",
    "ROLE_REPLICA",
    "AckOutcome",
    "AckTracker",
    "BackPressure",
    "Lag",
    "ReplicaRegistry",
    "ReplicaState",
    "Thresholds",
    "ack_groups",
    "compute_lag",
]
