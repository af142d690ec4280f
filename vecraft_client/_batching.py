"""Large writes split into requests the server accepts, and their answers merged into one.

The gateway refuses more than :data:`~vecraft.shared.model.limits.MAX_BATCH_ROWS`
rows per request. ``insert_vectors``, ``upsert_vectors`` and ``delete_vectors``
cut a larger input into batches of ``batch_size`` rows, send them one after
the other, and return one merged result (see :class:`~vecraft_client._models.WriteResult`).

Each batch carries its own request id, derived from the call's (``<base>-<i>``),
so a retried batch is answered with its original journal position instead of
being appended twice, and calling again with the same ``request_id`` after a
failure resumes without duplicating the batches that were stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.limits import MAX_BATCH_ROWS
from vecraft_client import _session_token
from vecraft_client._models import DeleteResult, WriteResult

#: ``progress(rows_done, rows_total)``, called after each batch is acknowledged.
Progress = Callable[[int, int], None]

S = TypeVar("S")


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` if it is 1..MAX_BATCH_ROWS; InvalidRequest otherwise."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
            or not 1 <= batch_size <= MAX_BATCH_ROWS:
        raise InvalidRequest(f"batch_size must be an integer in 1..{MAX_BATCH_ROWS} (the server's rows per "
                             f"request), got {batch_size!r}", details={"max": MAX_BATCH_ROWS})
    return batch_size


def bounds(rows: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each batch; one (possibly empty) batch for ``rows <= batch_size``."""
    if rows <= batch_size:
        return [(0, rows)]
    return [(start, min(start + batch_size, rows)) for start in range(0, rows, batch_size)]


def check_lengths(rows: int, **columns: Sequence[Any] | None) -> None:
    """Every given column has one entry per row (checked before the first batch is sent)."""
    for name, column in columns.items():
        if column is not None and len(column) != rows:
            raise InvalidRequest(f"{name} has {len(column)} entries for {rows} vectors; give one per vector")


def part(column: Sequence[S] | None, start: int, stop: int) -> Sequence[S] | None:
    return None if column is None else column[start:stop]


def batch_request_id(base: str, index: int) -> str:
    return f"{base}-{index}"


def merge_writes(results: Sequence[WriteResult], request_id: str) -> WriteResult:
    """One WriteResult for a call sent as several batches (see WriteResult)."""
    last = results[-1]
    ids = [i for r in results for i in r.ids]
    token = ""
    for r in results:
        token = _session_token.merge(token, r.session_token)
    return WriteResult(id=ids[0] if ids else "", ids=ids, partition=last.partition, offset=last.offset,
                       hlc=last.hlc, request_id=request_id,
                       replicas_acked=min(r.replicas_acked for r in results),
                       replicas_expected=max(r.replicas_expected for r in results),
                       session_token=token, duplicate=all(r.duplicate for r in results),
                       batches=tuple(results))


def merge_deletes(results: Sequence[DeleteResult], request_id: str) -> DeleteResult:
    """One DeleteResult for a delete sent as several batches; per-id outcomes concatenated."""
    w = merge_writes(results, request_id)

    def joined(values: list[list[str] | None]) -> list[str] | None:
        return None if any(v is None for v in values) else [i for v in values for i in (v or [])]

    flags = [r.deleted for r in results]
    return DeleteResult(id=w.id, ids=w.ids, partition=w.partition, offset=w.offset, hlc=w.hlc,
                        request_id=w.request_id, replicas_acked=w.replicas_acked,
                        replicas_expected=w.replicas_expected, session_token=w.session_token,
                        duplicate=w.duplicate, batches=w.batches,
                        deleted=None if any(f is None for f in flags) else any(flags),
                        deleted_ids=joined([r.deleted_ids for r in results]),
                        missing_ids=joined([r.missing_ids for r in results]))
