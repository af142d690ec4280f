"""Detecting a journal that lost or re-used offsets a replica already applied.

A replica records the HLC of the last entry it applied. If the journal still
holds that entry, its HLC is the same (HLCs are unique and strictly increasing
within a partition). A journal restored from an older backup, re-created on an
empty disk, or replaced by another history either has a head below the
replica's applied offset or a different entry at that offset. Either way the
replica's state is no longer a prefix of the journal, and continuing from
``applied + 1`` would silently mix two histories. Followers check on every
(re)subscribe, at start, every few head polls and on the first head poll that
answers after failed ones; every pull-before-read re-reads the applied entry
with the entries it fetches and checks it the same way (:func:`mismatch`); and
every run of entries applied must have HLCs rising above the applied one
(:func:`out_of_order`), which no single history breaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from vecraft.shared.rpc.v1 import journal_pb2

#: How an operator recovers a storage node whose journal diverged.
STORAGE_ACTION = ("the journal no longer holds what this node applied: stop the node, empty its --data-dir "
                  "and start it again to rebuild it from the journal (or restore the journal's data)")
#: What a query processor does about it by itself.
CACHE_ACTION = "the cache is rebuilt from the journal from scratch"


class HistoryReader(Protocol):
    async def get_offset(self, partition: str) -> tuple[int, int]: ...

    async def pull(self, partition: str, from_offset: int,
                   to_offset: int = 0) -> Sequence[journal_pb2.JournalEntry]: ...


async def diverged(journal: HistoryReader, partition: str, applied: int, applied_hlc: int) -> str | None:
    """None when the journal still holds entry ``applied`` with ``applied_hlc``; else the reason.

    Raises the journal client's errors (Unavailable, ...) when it cannot be asked.
    """
    if applied <= 0:
        return None
    head, _hlc = await journal.get_offset(partition)
    if head < applied:
        return (f"the journal head of {partition} is {head}, below offset {applied} that this replica "
                f"already applied: the journal lost entries")
    entries = await journal.pull(partition, applied, applied)
    return mismatch(partition, applied, applied_hlc, entries[0] if entries else None)


def mismatch(partition: str, applied: int, applied_hlc: int,
             entry: journal_pb2.JournalEntry | None) -> str | None:
    """None when ``entry`` (the journal's answer for offset ``applied``) is the entry applied, else why."""
    if entry is None or entry.offset != applied:
        return f"the journal did not return entry {partition}:{applied} that this replica applied"
    if applied_hlc and entry.hlc != applied_hlc:
        return (f"entry {partition}:{applied} has HLC {entry.hlc} in the journal but had {applied_hlc} when "
                f"this replica applied it: the journal re-used offsets with another history")
    return None


def out_of_order(partition: str, applied: int, applied_hlc: int,
                 entries: Sequence[journal_pb2.JournalEntry]) -> str | None:
    """None when the HLCs of ``entries`` (consecutive, after ``applied``) rise above ``applied_hlc``.

    HLCs strictly increase along one partition's history; an entry whose HLC is not
    above its predecessor's comes from another history. An HLC of 0 (unknown) is
    not compared.
    """
    prev_offset, prev_hlc = applied, applied_hlc
    for entry in entries:
        if entry.offset <= applied:
            continue
        if prev_hlc and entry.hlc and entry.offset == prev_offset + 1 and entry.hlc <= prev_hlc:
            return (f"entry {partition}:{entry.offset} has HLC {entry.hlc}, not above HLC {prev_hlc} of "
                    f"entry {prev_offset}: the journal's history changed under this replica")
        prev_offset, prev_hlc = entry.offset, entry.hlc
    return None
