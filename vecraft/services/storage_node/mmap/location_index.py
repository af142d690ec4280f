"""SQLite location index: id -> (block offset, length, status), applied offsets, schemas.

Everything one applied batch changes is committed in ONE transaction
(:meth:`LocationIndex.commit`): the location rows of the blocks it appended,
the tombstones of the ids it deleted, collection DDL, each partition's applied
offset and HLC, and the record file's committed end. Hence after a crash at
any instant the database describes exactly "every entry <= applied offset,
nothing after", and the record file is cut back to the committed end. A
record file compaction moves every live row to the new file in one transaction
too (:meth:`LocationIndex.commit_compaction`), naming the file in ``meta``.

Durability: WAL mode with ``synchronous=NORMAL``. A process crash (kill -9)
loses nothing that was committed; a power loss may roll back the last commits,
which is still a prefix of the journal (applied offset and rows roll back
together) and the journal, the source of truth, replays the lost tail. FULL
would add an fsync per batch for no stronger guarantee than "state == prefix".

Threads: one writer connection owned by the apply thread (``check_same_thread``
off, the caller serialises writes), and one read connection per reading
thread; WAL lets readers see the last committed state while a batch commits.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from vecraft.services.storage_node.mmap.record_file import STATUS_LIVE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    collection_id TEXT NOT NULL,
    id TEXT NOT NULL,
    status INTEGER NOT NULL,          -- 1 live, 2 tombstone
    file_offset INTEGER NOT NULL,     -- -1 for tombstones
    length INTEGER NOT NULL,
    partition TEXT NOT NULL,          -- journal position of the entry that wrote the row
    entry_offset INTEGER NOT NULL,
    hlc INTEGER NOT NULL,
    PRIMARY KEY (collection_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_entry ON records (partition, entry_offset);
CREATE TABLE IF NOT EXISTS progress (
    partition TEXT PRIMARY KEY,
    applied_offset INTEGER NOT NULL,
    applied_hlc INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY,
    schema BLOB NOT NULL              -- serialized CollectionSchema
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dropped (
    collection_id TEXT PRIMARY KEY    -- later writes to it are skipped, a retried CREATE ignored
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Location:
    collection_id: str
    id: str
    status: int
    file_offset: int
    length: int
    partition: str
    entry_offset: int
    hlc: int


@dataclass(slots=True)
class CommitBatch:
    """What one applied batch changes; written by :meth:`LocationIndex.commit` atomically.

    ``rows`` are full location rows (a later row for the same key wins);
    ``dropped`` collection ids lose their rows and schema; ``schemas`` are
    created or altered collections (serialized CollectionSchema).
    """

    rows: list[tuple[str, str, int, int, int, str, int, int]] = field(default_factory=list)
    schemas: dict[str, bytes] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    progress: dict[str, tuple[int, int]] = field(default_factory=dict)
    file_end: int = 0


class LocationIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = self._connect()
        self._db.executescript(_SCHEMA)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        return db

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    # ---- write side (one thread at a time) ----------------------------------------
    def commit(self, batch: CommitBatch) -> list[int]:
        """Apply ``batch`` in one transaction; returns the file offsets of blocks it superseded.

        A superseded block is the previous LIVE block of an id the batch
        rewrote or deleted (its status byte should become DELETED).
        """
        db = self._db
        superseded: list[int] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for cid in batch.dropped:
                superseded += [off for (off,) in db.execute(
                    "SELECT file_offset FROM records WHERE collection_id = ? AND status = ?",
                    (cid, STATUS_LIVE))]
                db.execute("DELETE FROM records WHERE collection_id = ?", (cid,))
                db.execute("DELETE FROM collections WHERE collection_id = ?", (cid,))
                db.execute("INSERT OR IGNORE INTO dropped VALUES (?)", (cid,))
            if batch.rows:
                superseded += self._previous_live(db, batch.rows)
                db.executemany(
                    "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch.rows)
            if batch.schemas:
                db.executemany("INSERT OR REPLACE INTO collections VALUES (?, ?)",
                               list(batch.schemas.items()))
            if batch.progress:
                db.executemany("INSERT OR REPLACE INTO progress VALUES (?, ?, ?)",
                               [(p, o, h) for p, (o, h) in batch.progress.items()])
            db.execute("INSERT OR REPLACE INTO meta VALUES ('file_end', ?)", (str(batch.file_end),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return superseded

    @staticmethod
    def _previous_live(db: sqlite3.Connection, rows: Sequence[tuple]) -> list[int]:
        # One join instead of a query per id; blocks written earlier in this
        # same batch and rewritten again are found by the caller.
        db.execute("CREATE TEMP TABLE IF NOT EXISTS batch_keys (collection_id TEXT, id TEXT)")
        db.execute("DELETE FROM batch_keys")
        db.executemany("INSERT INTO batch_keys VALUES (?, ?)", [(r[0], r[1]) for r in rows])
        found = db.execute(
            "SELECT r.file_offset FROM records r JOIN batch_keys b "
            "ON r.collection_id = b.collection_id AND r.id = b.id WHERE r.status = ?",
            (STATUS_LIVE,)).fetchall()
        return [off for (off,) in found]

    def commit_compaction(self, keys: Sequence[tuple[str, str]], offsets: Sequence[int], *, file_end: int,
                          records_file: str, base: int) -> None:
        """Point the live rows ``keys`` at their ``offsets`` in the compacted file, in ONE transaction.

        The same transaction names the file (``records_file``, ``records_base``) and its committed
        end: after a crash the index points either wholly into the old file or wholly into the new.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("UPDATE records SET file_offset = ? WHERE collection_id = ? AND id = ?",
                           [(off, cid, rid) for (cid, rid), off in zip(keys, offsets, strict=True)])
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           [("file_end", str(file_end)), ("records_file", records_file),
                            ("records_base", str(base))])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete_tombstones(self, upto: dict[str, int]) -> int:
        """Delete the tombstone rows written by entries at or below ``upto[partition]``; returns how many.

        Only the entries past the previous call's bounds are looked at (one range read of the
        ``(partition, entry_offset)`` index per partition): the bounds are kept in ``meta``
        (``tombstones_collected``), in the same transaction, so a restart does not scan again.
        """
        db = self._db
        removed = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'tombstones_collected'").fetchone()
            done: dict[str, int] = orjson.loads(row[0]) if row else {}
            for partition, hi in upto.items():
                lo = done.get(partition, 0)
                if hi <= lo:
                    continue
                removed += db.execute(
                    "DELETE FROM records WHERE partition = ? AND entry_offset > ? AND entry_offset <= ? "
                    "AND status != ?", (partition, lo, hi, STATUS_LIVE)).rowcount
                done[partition] = hi
            db.execute("INSERT OR REPLACE INTO meta VALUES ('tombstones_collected', ?)",
                       (orjson.dumps(done).decode(),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return removed

    def live_blocks(self) -> list[tuple[str, str, int, int]]:
        """(collection_id, id, file_offset, length) of every live row, in file order (writer side)."""
        return [(str(c), str(i), int(o), int(n)) for c, i, o, n in self._db.execute(
            "SELECT collection_id, id, file_offset, length FROM records WHERE status = ? "
            "ORDER BY file_offset", (STATUS_LIVE,))]

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ---- read side (any thread) ---------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def file_end(self) -> int:
        return int(self.get_meta("file_end") or 0)

    def progress(self) -> dict[str, tuple[int, int]]:
        rows = self._reader().execute("SELECT partition, applied_offset, applied_hlc FROM progress")
        return {p: (int(o), int(h)) for p, o, h in rows}

    def schemas(self) -> dict[str, bytes]:
        return {cid: bytes(blob) for cid, blob in
                self._reader().execute("SELECT collection_id, schema FROM collections")}

    def dropped(self) -> set[str]:
        """Ids of every collection this shard saw dropped."""
        return {str(cid) for (cid,) in self._reader().execute("SELECT collection_id FROM dropped")}

    def lookup(self, collection_id: str, ids: Sequence[str]) -> dict[str, Location]:
        """Current rows (live or tombstone) of ``ids`` in one collection."""
        out: dict[str, Location] = {}
        conn = self._reader()
        # SQLite caps bound parameters; 500 per statement stays well below it.
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT * FROM records WHERE collection_id = ? AND id IN ({marks})",
                                    [collection_id, *chunk]):
                out[row[1]] = Location(*row)
        return out

    def live_rows(self, collection_id: str) -> Iterator[Location]:
        for row in self._reader().execute(
                "SELECT * FROM records WHERE collection_id = ? AND status = ? ORDER BY file_offset",
                (collection_id, STATUS_LIVE)):
            yield Location(*row)

    def live_after(self, collection_id: str, after: str, limit: int) -> list[Location]:
        """Up to ``limit`` live rows of one collection with an id after ``after``, in id order.

        Ids compare by their UTF-8 bytes (SQLite's BINARY collation), which is code point
        order, Python's ``str`` order. One statement over the primary key: one committed state.
        """
        rows = self._reader().execute(
            "SELECT * FROM records WHERE collection_id = ? AND id > ? AND status = ? ORDER BY id LIMIT ?",
            (collection_id, after, STATUS_LIVE, limit)).fetchall()
        return [Location(*row) for row in rows]

    def rows_after(self, collection_id: str, offsets: dict[str, int]) -> Iterator[Location]:
        """Rows (live and tombstones) written by entries past ``offsets[partition]``, in file order.

        Partitions absent from ``offsets`` count as 0 (every row of them).
        """
        for row in self._reader().execute(
                "SELECT * FROM records WHERE collection_id = ? ORDER BY file_offset", (collection_id,)):
            loc = Location(*row)
            if loc.entry_offset > offsets.get(loc.partition, 0):
                yield loc

    def counts(self) -> dict[str, tuple[int, int]]:
        """collection_id -> (live rows, tombstones)."""
        out: dict[str, tuple[int, int]] = {}
        for cid, status, n in self._reader().execute(
                "SELECT collection_id, status, COUNT(*) FROM records GROUP BY collection_id, status"):
            live, dead = out.get(cid, (0, 0))
            out[cid] = (live + n, dead) if status == STATUS_LIVE else (live, dead + n)
        return out

    def all_live_offsets(self) -> Iterable[int]:
        for (off,) in self._reader().execute(
                "SELECT file_offset FROM records WHERE status = ?", (STATUS_LIVE,)):
            yield int(off)

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._db.close()


__all__ = ["CommitBatch", "Location", "LocationIndex"]
