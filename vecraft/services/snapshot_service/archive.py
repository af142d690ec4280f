"""Continuous journal archiving: every partition's entries copied to the target in chunks.

Layout in the target::

    journal/<partition>/<first:020d>-<last:020d>.entries   length-prefixed JournalEntry protos
    journal/<partition>/manifest.json                      the chunks, in order, with SHA-256

A chunk is written before the manifest that lists it, and the manifest is
replaced atomically, so a process killed between the two leaves an unlisted
chunk that the next run overwrites; a listed chunk is always whole. Chunks of a
partition are contiguous from offset 1: the archive of a partition is exactly
its journal up to ``archived``. Entries keep their offsets and HLCs, so a
restore rebuilds the journal bit for bit (:mod:`.restore`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field

from google.protobuf.message import DecodeError

from vecraft.clients.journal import JournalClient
from vecraft.services.snapshot_service.target import BackupTarget, MissingFile, sha256
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.rpc.v1 import journal_pb2

_LEN = struct.Struct("<I")
#: Entries and bytes per chunk file (whichever is reached first).
CHUNK_ENTRIES = 10_000
CHUNK_BYTES = 32 << 20


#: progress(phase, done, total): called as a backup or an archiving pass advances.
Progress = Callable[[str, int, int], None]


class ForeignHistory(InvalidRequest):
    """The target's archive is of another journal history than the journal being backed up."""


class CorruptBackup(Exception):
    """A file of the backup target fails its checksum or does not decode (the message names it)."""


@dataclass(frozen=True)
class Chunk:
    file: str
    first: int
    last: int
    first_hlc: int
    last_hlc: int
    sha256: str
    bytes: int


@dataclass
class PartitionArchive:
    """What the target holds of one partition: contiguous chunks from offset 1."""

    partition: str
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def archived(self) -> tuple[int, int]:
        """(offset, hlc) of the last archived entry; (0, 0) when nothing is."""
        if not self.chunks:
            return 0, 0
        return self.chunks[-1].last, self.chunks[-1].last_hlc

    def manifest_key(self) -> str:
        return manifest_key(self.partition)


def manifest_key(partition: str) -> str:
    return f"journal/{partition}/manifest.json"


def encode_chunk(entries: list[journal_pb2.JournalEntry]) -> bytes:
    parts = []
    for entry in entries:
        body = entry.SerializeToString()
        parts.append(_LEN.pack(len(body)))
        parts.append(body)
    return b"".join(parts)


def decode_chunk(data: bytes, name: str) -> list[journal_pb2.JournalEntry]:
    entries = []
    pos = 0
    while pos < len(data):
        if pos + _LEN.size > len(data):
            raise CorruptBackup(f"{name}: truncated at byte {pos}")
        (size,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        if pos + size > len(data):
            raise CorruptBackup(f"{name}: truncated at byte {pos}")
        try:
            entries.append(journal_pb2.JournalEntry.FromString(data[pos:pos + size]))
        except DecodeError as exc:
            raise CorruptBackup(f"{name}: an entry at byte {pos} does not decode ({exc})") from exc
        pos += size
    return entries


def load_archive(target: BackupTarget) -> dict[str, PartitionArchive]:
    """Every partition the target archives, from the manifests."""
    archives = {}
    for key in target.keys("journal"):
        if not key.endswith("/manifest.json"):
            continue
        raw = json.loads(target.get(key))
        part = raw["partition"]
        archives[part] = PartitionArchive(part, [Chunk(**c) for c in raw["chunks"]])
    return archives


def _save_manifest(target: BackupTarget, archive: PartitionArchive) -> None:
    body = {"partition": archive.partition, "chunks": [asdict(c) for c in archive.chunks]}
    target.put(archive.manifest_key(), json.dumps(body, indent=1).encode())


def read_chunk(target: BackupTarget, chunk: Chunk) -> list[journal_pb2.JournalEntry]:
    """A chunk's entries, after checking its checksum and its offsets."""
    try:
        data = target.get(chunk.file)
    except MissingFile as exc:
        raise CorruptBackup(f"{chunk.file} is listed in the archive manifest but missing") from exc
    if sha256(data) != chunk.sha256:
        raise CorruptBackup(f"{chunk.file}: checksum mismatch (the file was changed or damaged)")
    entries = decode_chunk(data, chunk.file)
    offsets = [e.offset for e in entries]
    if offsets != list(range(chunk.first, chunk.last + 1)):
        raise CorruptBackup(f"{chunk.file}: holds offsets other than {chunk.first}..{chunk.last}")
    return entries


def iter_entries(target: BackupTarget, archive: PartitionArchive,
                 to_offset: int) -> Iterator[journal_pb2.JournalEntry]:
    """The archived entries 1..to_offset of one partition, checked, in order."""
    expected = 1
    for chunk in archive.chunks:
        if chunk.first > to_offset:
            return
        if chunk.first != expected:
            raise CorruptBackup(f"journal/{archive.partition}: chunks skip offsets "
                                f"{expected}..{chunk.first - 1}")
        for entry in read_chunk(target, chunk):
            if entry.offset > to_offset:
                return
            yield entry
        expected = chunk.last + 1


async def archive_partitions(journal: JournalClient, target: BackupTarget, *,
                             up_to: Mapping[str, int] | None = None,
                             chunk_entries: int = CHUNK_ENTRIES, chunk_bytes: int = CHUNK_BYTES,
                             progress: Progress | None = None) -> dict[str, tuple[int, int]]:
    """Copy every partition's entries past what the target holds, up to ``up_to`` (default: the
    heads as of this call, and then the horizon moves to them); returns (offset, hlc) archived per
    partition."""
    heads = await journal.get_offsets()
    targets = {p: off for p, (off, _) in heads.items()} if up_to is None else dict(up_to)
    archives = load_archive(target)
    todo = sum(max(0, end - archives[p].archived[0] if p in archives else end) for p, end in targets.items())
    copied = 0
    done = {}
    for partition in sorted(targets):
        archive = archives.setdefault(partition, PartitionArchive(partition))
        await _check_same_history(journal, archive, heads.get(partition, (0, 0))[0])
        end = targets[partition]
        while archive.archived[0] < end:
            start = archive.archived[0] + 1
            entries = await journal.pull(partition, start, min(end, start + chunk_entries - 1))
            if not entries:
                break
            batch: list[journal_pb2.JournalEntry] = []
            size = 0
            for entry in entries:
                batch.append(entry)
                size += entry.ByteSize()
                if size >= chunk_bytes:
                    break
            _write_chunk(target, archive, batch)
            copied += len(batch)
            if progress is not None:
                progress("archive", copied, todo)
        done[partition] = archive.archived
    if up_to is None and all(done[p][0] >= off for p, (off, _) in heads.items()):
        save_horizon(target, max((hlc for _, hlc in heads.values()), default=0))
    return done


HORIZON = "journal/horizon.json"


def save_horizon(target: BackupTarget, hlc: int) -> None:
    """Record that every partition is archived up to its head as of ``hlc`` (a restorable moment)."""
    if hlc > load_horizon(target):
        target.put(HORIZON, json.dumps({"hlc": hlc}).encode())


def load_horizon(target: BackupTarget) -> int:
    try:
        return int(json.loads(target.get(HORIZON))["hlc"])
    except MissingFile:
        return 0


async def check_history(journal: JournalClient, target: BackupTarget) -> None:
    """Raise ForeignHistory unless every archived partition's last entry is this journal's."""
    heads = await journal.get_offsets()
    for partition, archive in load_archive(target).items():
        await _check_same_history(journal, archive, heads.get(partition, (0, 0))[0])


async def _check_same_history(journal: JournalClient, archive: PartitionArchive, head: int) -> None:
    """Refuse to extend an archive of another journal history (a restored cluster pointed at the
    target of the cluster it was restored from, say): its last entry must be the journal's."""
    offset, hlc = archive.archived
    if not offset:
        return
    entries = await journal.pull(archive.partition, offset, offset) if head >= offset else []
    if not entries or entries[0].hlc != hlc:
        here = f"has HLC {entries[0].hlc} there" if entries else f"ends at {head}"
        raise ForeignHistory(
            f"the target archives another journal history of {archive.partition} (its entry {offset} has "
            f"HLC {hlc}, this journal {here}): back this cluster up to a new target")


def _write_chunk(target: BackupTarget, archive: PartitionArchive,
                 entries: list[journal_pb2.JournalEntry]) -> None:
    first, last = entries[0], entries[-1]
    expected = archive.archived[0] + 1
    if first.offset != expected or last.offset != first.offset + len(entries) - 1:
        raise CorruptBackup(f"journal/{archive.partition}: the journal answered offsets "
                            f"{first.offset}..{last.offset}, expected a run from {expected}")
    data = encode_chunk(entries)
    key = f"journal/{archive.partition}/{first.offset:020d}-{last.offset:020d}.entries"
    target.put(key, data)
    archive.chunks.append(Chunk(key, first.offset, last.offset, first.hlc, last.hlc, sha256(data), len(data)))
    _save_manifest(target, archive)
