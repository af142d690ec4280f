"""Segment files of one partition: naming, creation, and recovery on start.

A partition directory holds ``<first offset, 20 digits>.wal`` files; each is
a run of whole records (:mod:`.records`) with consecutive offsets, the next
file starting where the previous one ends. A record is never split across
files, and a file is fsync'd before the next one is created, so only the last
file can end in a torn record.

The compactor trims a partition by whole files (:func:`trim_segments`): the
new first offset goes to ``START`` first (written to a temporary name, fsynced,
renamed), then the files below it are deleted, so a crash between the two
leaves files that the next start deletes, never a log that starts past its
first file or a hole the journal would refuse.

Recovery reads every file, verifies every record and the offset chain (from the
first offset ``START`` names, 1 without it), and:

- cuts a torn or corrupt *tail* of the last file (nothing valid follows the
  first bad record) back to the last whole record, logging how much was cut;
- raises :class:`JournalCorruption` for anything else (a bad record followed
  by valid ones, a bad record in an older file, a gap or repeat in offsets).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vecraft.services.journal_service.wal import JournalCorruption
from vecraft.services.journal_service.wal.records import (
    CorruptRecord,
    Record,
    find_valid_record,
    iter_records,
)
from vecraft.shared.common.fsync import fsync_path

log = logging.getLogger(__name__)

SUFFIX = ".wal"
#: The file naming a trimmed partition's first offset.
START_FILE = "START"


@dataclass(slots=True)
class Segment:
    """One open segment file. ``size`` counts only whole, written records."""

    first_offset: int
    path: Path
    fd: int
    size: int

    def close(self) -> None:
        os.close(self.fd)


def segment_path(directory: Path, first_offset: int) -> Path:
    return directory / f"{first_offset:020d}{SUFFIX}"


def create_segment(directory: Path, first_offset: int) -> Segment:
    """Create an empty segment file (and make its directory entry durable)."""
    path = segment_path(directory, first_offset)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    fsync_path(directory)
    return Segment(first_offset, path, fd, 0)


def _list_segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.iterdir():
        if path.suffix != SUFFIX:
            continue
        try:
            found.append((int(path.stem), path))
        except ValueError as exc:
            raise JournalCorruption(f"unexpected file {path} in journal partition directory") from exc
    return sorted(found)


def stored_bytes(directory: Path) -> tuple[int, int]:
    """``(bytes, segment files)`` a partition directory holds; ``(0, 0)`` when it does not exist."""
    if not directory.is_dir():
        return 0, 0
    listed = _list_segments(directory)
    return sum(path.stat().st_size for _, path in listed), len(listed)


def log_start(directory: Path) -> int:
    """The first offset the partition stores: ``START``'s, else 1."""
    try:
        text = (directory / START_FILE).read_text()
    except FileNotFoundError:
        return 1
    try:
        first = int(text.strip())
    except ValueError as exc:
        raise JournalCorruption(f"{directory / START_FILE} holds {text!r}, not an offset") from exc
    if first < 1:
        raise JournalCorruption(f"{directory / START_FILE} holds {first}; offsets start at 1")
    return first


def _write_start(directory: Path, first: int) -> None:
    tmp = directory / f"{START_FILE}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{first}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / START_FILE)
    fsync_path(directory)


def trim_segments(directory: Path, segments: list[Segment], before: int) -> list[Segment]:
    """Persist the trim of the files of ``segments`` that hold only offsets below ``before``.

    The active (last) file is never trimmed. Returns the trimmed segments (a
    prefix of ``segments``), already unlinked but still open: the caller
    closes them once no read uses them. Nothing is trimmed (``[]``) when the
    first file holds ``before - 1`` or more.
    """
    count = 0
    while count + 1 < len(segments) and segments[count + 1].first_offset <= before:
        count += 1
    if not count:
        return []
    _write_start(directory, segments[count].first_offset)
    for seg in segments[:count]:
        seg.path.unlink(missing_ok=True)
    fsync_path(directory)
    return segments[:count]


RecordSink = Callable[[int, Record], None]
"""Called as ``sink(position_in_its_segment, record)`` for each recovered record."""


def recover(directory: Path, partition: str, sink: RecordSink) -> tuple[list[Segment], int]:
    """Verify and index every record of ``directory`` (from :func:`log_start`).

    Returns its open segments (the last one is active) and how many bytes of
    torn tail were cut.

    Creates the directory and a first segment when there is none. ``sink`` sees
    every whole record in offset order.

    Raises:
        JournalCorruption: damage that is not a torn tail (see module docstring).
    """
    directory.mkdir(parents=True, exist_ok=True)
    expected = log_start(directory)
    listed = _list_segments(directory)
    # Files wholly below the start: a trim that crashed after writing START (see module doc).
    while len(listed) > 1 and listed[1][0] <= expected:
        listed[0][1].unlink()
        listed.pop(0)
    if expected > 1 and not listed:
        raise JournalCorruption(f"partition {partition}: {START_FILE} says offsets start at {expected} but "
                                f"no segment file is left")
    segments: list[Segment] = []
    cut = 0
    for index, (first, path) in enumerate(listed):
        last_file = index == len(listed) - 1
        if first != expected:
            raise JournalCorruption(
                f"partition {partition}: segment {path.name} starts at offset {first}, expected {expected}")
        data = path.read_bytes()
        good_end = 0
        try:
            for pos, rec in iter_records(data):
                if rec.offset != expected:
                    raise JournalCorruption(
                        f"partition {partition}: {path.name} byte {pos} holds offset {rec.offset}, "
                        f"expected {expected}")
                sink(pos, rec)
                expected += 1
                good_end = pos + rec.size
        except CorruptRecord as bad:
            following = find_valid_record(data, bad.position + 1)
            if not last_file or following is not None:
                where = f"; a valid record follows at byte {following}" if following is not None else ""
                raise JournalCorruption(
                    f"partition {partition}: {path.name}: {bad}{where} - the journal refuses to skip "
                    f"damaged records; restore this partition from a replica or backup") from bad
            cut += len(data) - good_end
            log.warning("cut torn tail of %s: %d bytes after the last whole record (%s)",
                        path.name, cut, bad.reason,
                        extra={"partition": partition, "segment": path.name, "cut_bytes": cut,
                               "kept_bytes": good_end, "last_offset": expected - 1})
            with open(path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
        fd = os.open(path, os.O_RDWR)
        segments.append(Segment(first, path, fd, good_end))
    if not segments:
        segments.append(create_segment(directory, expected))
    return segments, cut
