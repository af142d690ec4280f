"""The consistency level a client's read sends when the caller names none.

A client (and each session) keeps the merged session token of the writes it
made. A read without ``consistency_level`` then reads those writes:

- the client has written something: ``read_your_writes`` with its token (the
  query processors sync to the token's offsets only when their caches have not
  applied them yet, so the level costs nothing once they have);
- it has not: ``eventual`` and no token (there is nothing to wait for);
- a search given only ``max_staleness_ms``: ``bounded``, as the HTTP API reads it.

A level the caller names is sent as given. ``eventual`` then carries no token,
so no transport reads it as a session read (gRPC ``Get`` reads
read-your-writes whenever a token is present).
"""

from __future__ import annotations

from vecraft.shared.model.consistency import ConsistencyLevel


def resolve(level: ConsistencyLevel | str | None, token: str | None,
            max_staleness_ms: int | None = None) -> tuple[ConsistencyLevel, str | None]:
    """The level and session token a read sends.

    Args:
        level: the caller's level (a ``ConsistencyLevel``, its name or None).
        token: the client's or session's merged write token (None or "" = nothing written).
        max_staleness_ms: a search's staleness bound (None for reads without one).
    Raises:
        InvalidRequest: ``level`` is not a level's name.
    """
    token = token or None
    if level is None:
        if max_staleness_ms is not None:
            return ConsistencyLevel.BOUNDED_STALENESS, token
        if token is not None:
            return ConsistencyLevel.READ_YOUR_WRITES, token
        return ConsistencyLevel.EVENTUAL, None
    parsed = ConsistencyLevel.parse(level)
    if parsed is ConsistencyLevel.EVENTUAL:
        return parsed, None
    return parsed, token
