"""The per-request consistency decision (DESIGN.md section 6, spec 4.3).

Pure functions over what the processor knows about one partition, so the
rules read (and test) in one place:

======================  ==================================================
EVENTUAL(o)             cache as is once applied >= o, else sync to o
BOUNDED_STALENESS(ms,o) sync to o first when applied < o; then cache if
                        staleness <= ms (0 = 1000), else sync to the
                        journal head and check again
READ_YOUR_WRITES(o)     cache if applied >= o, else sync to o
STRONG(o)               sync to o (0 = the head the journal reports now)
                        when applied < o
======================  ==================================================

``o`` is the request's ``min_offset`` (a client's ``min_required_offset``,
raised by the gateway to the session's offset or the journal head): it binds
at every level, as docs/http-api.md promises; 0 means no offset bound.

A level that cannot be met before the deadline is an error, never a silent
downgrade; :func:`is_met` is the check of the state right before the search.
"""

from __future__ import annotations

from dataclasses import dataclass

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.validation import validate_max_staleness_ms

#: max_staleness_ms used when a bounded request gives 0.
DEFAULT_MAX_STALENESS_MS = 1000


@dataclass(frozen=True, slots=True)
class ReadRequirement:
    """What one request needs from the state it searches.

    ``min_offset``: the applied offset must reach it (0 = no offset bound).
    ``latest``: the target is the journal head at the time the request is
    handled (asked of the journal). ``max_staleness_ms``: the bound a bounded
    read must satisfy (0 for the other levels).
    """

    level: ConsistencyLevel
    min_offset: int = 0
    latest: bool = False
    max_staleness_ms: int = 0


def requirement(level: ConsistencyLevel, *, max_staleness_ms: int = 0,
                min_offset: int = 0) -> ReadRequirement:
    """The requirement of a request, validated.

    Raises:
        InvalidRequest: negative or too large ``max_staleness_ms``.
    """
    validate_max_staleness_ms(max_staleness_ms)  # this service's edge: the one check of the bound here
    if min_offset < 0:
        raise InvalidRequest(f"min_offset must be >= 0, got {min_offset}")
    if level is ConsistencyLevel.BOUNDED_STALENESS:
        return ReadRequirement(level, min_offset=min_offset,
                               max_staleness_ms=max_staleness_ms or DEFAULT_MAX_STALENESS_MS)
    if level is ConsistencyLevel.STRONG:
        return ReadRequirement(level, min_offset=min_offset, latest=min_offset == 0)
    return ReadRequirement(level, min_offset=min_offset)


@dataclass(frozen=True, slots=True)
class SyncDecision:
    """``sync``: a pull is needed; ``target``: the offset to reach (None = the journal head)."""

    sync: bool
    target: int | None = None


NO_SYNC = SyncDecision(False)


def decide(req: ReadRequirement, *, applied: int, staleness_ms: int) -> SyncDecision:
    """Whether the cache as it is satisfies ``req``, and if not, the sync target."""
    if req.latest:
        return SyncDecision(True, None)
    if applied < req.min_offset:
        return SyncDecision(True, req.min_offset)
    if req.level is ConsistencyLevel.BOUNDED_STALENESS and staleness_ms > req.max_staleness_ms:
        return SyncDecision(True, None)
    return NO_SYNC


def is_met(req: ReadRequirement, *, applied: int, staleness_ms: int, head_target: int = 0) -> bool:
    """Whether the state about to be searched meets ``req``.

    ``head_target``: for a request that asked the journal (``latest``), the
    head it read; the state must have reached it.
    """
    if applied < max(req.min_offset, head_target):
        return False
    if req.level is ConsistencyLevel.BOUNDED_STALENESS:
        return staleness_ms <= req.max_staleness_ms
    return True
