"""The compactor process: journal GC on a timer (``vecraft up`` runs one; docs/compactor.md).

Every ``--interval-s`` it reads the journal's Stats (each partition's first and
head offsets, every consumer's applied offset), the archive's manifests when a
backup target is set, and the consumers it remembers (``consumers.json`` in its
data dir, so a restart does not forget a replica that is down), computes each
data partition's floor (:mod:`.floor`) and asks the journal to trim below it.
A pass that cannot read one of its inputs trims nothing.

One compactor runs per cluster (``vecraft up`` starts one); two would only
trim the same floors twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vecraft.clients.journal import JournalClient
from vecraft.services.compactor.floor import Consumer, Floor, Memory, floors, trimmable
from vecraft.services.compactor.settings import CompactorSettings
from vecraft.services.snapshot_service.archive import load_archive
from vecraft.services.snapshot_service.backups import list_backups
from vecraft.services.snapshot_service.target import open_target
from vecraft.shared.common.config import load_settings
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.metrics import counter, gauge
from vecraft.shared.common.service import Service, run_service

log = logging.getLogger(__name__)

_FLOOR = gauge("compactor", "floor_offset", "ops", "offset below which a partition may be trimmed",
               ["partition"])
_TRIMMED_ENTRIES = counter("compactor", "trimmed_entries", "journal entries trimmed", ["partition"])
_TRIMMED_BYTES = counter("compactor", "trimmed_bytes", "journal bytes trimmed", ["partition"])
_PASSES = counter("compactor", "passes", "GC passes, by outcome (done, failed)", ["outcome"])
_EXPIRED = counter("compactor", "consumers_expired", "replicas down longer than --replica-retention-s that "
                                                     "no longer hold GC back", ["partition"])

STATE_FILE = "consumers.json"


class Compactor(Service):
    role = "compactor"

    def __init__(self, settings: CompactorSettings) -> None:
        super().__init__(settings)
        self.cfg = settings
        if not settings.journal_address:
            raise ValueError("--journal-address is required")
        self.journal = JournalClient(settings.journal_address)
        self.memory = _load_memory(settings.data_dir / STATE_FILE)
        #: What consumers.json holds (rewritten only when it changed, not every pass).
        self._saved = {key: dataclasses.replace(c) for key, c in self.memory.consumers.items()}
        self.last: list[Floor] = []
        self.last_pass_unix_ms = 0

    async def on_start(self) -> None:
        self.spawn(self._loop(), "journal-gc", forever=True)
        self.set_ready()

    async def on_stop(self) -> None:
        await self.journal.close()

    def health_payload(self) -> dict[str, Any]:
        return {"floors": [asdict(f) for f in self.last], "last_pass_unix_ms": self.last_pass_unix_ms,
                "consumers": len(self.memory.consumers)}

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.gc_interval_s)
            try:
                await self.collect()
                _PASSES.labels("done").inc()
            except (VecraftError, OSError, ValueError) as exc:
                # Nothing was trimmed past what this pass knew; the next one tries again.
                _PASSES.labels("failed").inc()
                log.warning("journal GC pass failed: %s", exc, extra={"error": str(exc)})

    async def collect(self) -> list[Floor]:
        """One GC pass: trim every data partition down to its floor; returns the floors."""
        stats = await self.journal.stats()
        now_ms = time.time_ns() // 1_000_000
        self.memory.observe(stats, now_ms)
        retention_ms = int(self.cfg.replica_retention_s * 1000)
        for partition, replica_id in self.memory.forget_expired(now_ms, retention_ms):
            _EXPIRED.labels(partition).inc()
            log.warning("replica %s of %s was down longer than --replica-retention-s and no longer holds "
                        "journal GC back; it is rebuilt from a backup or a peer when it returns",
                        replica_id, partition, extra={"partition": partition, "replica": replica_id})
        if self.memory.consumers != self._saved:
            await asyncio.to_thread(_save_memory, self.cfg.data_dir / STATE_FILE, self.memory)
            self._saved = {key: dataclasses.replace(c) for key, c in self.memory.consumers.items()}
        if self.cfg.backup_target:
            bounds = await asyncio.to_thread(self._backup_bounds)
        elif self.cfg.trim_without_backup:
            bounds = {}
        else:
            bounds = {"no backup target": {}}
        found = floors(stats, self.memory, bounds=bounds)
        first = {p.partition: p.first_offset or 1 for p in stats.partitions}
        for f in found:
            _FLOOR.labels(f.partition).set(f.offset)
        for f in trimmable(found, first):
            done = await self.journal.trim(f.partition, f.offset)
            if done.entries:
                _TRIMMED_ENTRIES.labels(f.partition).inc(done.entries)
                _TRIMMED_BYTES.labels(f.partition).inc(done.bytes)
                log.info("trimmed journal partition %s below %d", f.partition, done.first_offset,
                         extra={"partition": f.partition, "first_offset": done.first_offset,
                                "entries": done.entries, "bytes": done.bytes, "floor": f.offset,
                                "held_by": f.held_by})
        self.last, self.last_pass_unix_ms = found, now_ms
        return found

    def _backup_bounds(self) -> dict[str, dict[str, int]]:
        """What the target needs kept: entries not archived yet, and those after the newest copy of
        each shard (a replica seeded from it replays from there)."""
        target = open_target(self.cfg.backup_target)
        archived = {name: a.archived[0] for name, a in load_archive(target).items()}
        newest: dict[str, dict[str, Any]] = {}
        for backup in list_backups(target):  # oldest first: the newest copy of each shard wins
            newest.update(backup.shards)
        backed_up: dict[str, int] = {}
        for copy in newest.values():
            for partition, (offset, _hlc) in copy["applied"].items():
                backed_up[partition] = min(backed_up.get(partition, int(offset)), int(offset))
        return {"archive": archived, "backup": backed_up}


def _load_memory(path: Path) -> Memory:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return Memory()
    return Memory({(c["partition"], c["replica_id"]): Consumer(int(c["applied"]), int(c["last_live_ms"]))
                   for c in raw.get("consumers", [])})


def _save_memory(path: Path, memory: Memory) -> None:
    """Written to a temporary name and renamed: a kill leaves the previous state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"consumers": [{"partition": p, "replica_id": r, **asdict(c)}
                          for (p, r), c in sorted(memory.consumers.items())]}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build(argv: list[str] | None = None) -> Compactor:
    """The service of ``argv`` (flags as for ``main``), not started."""
    return Compactor(load_settings(CompactorSettings, argv, section="compactor"))


def main(argv: list[str] | None = None) -> None:
    service = build(argv)
    setup_logging("compactor", service.settings.log_level)
    run_service(service)
