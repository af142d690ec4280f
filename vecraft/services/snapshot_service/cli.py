"""``vecraft backup create|list|verify|delete`` and ``vecraft restore`` (docs/backup.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.local.topology import load_plan
from vecraft.services.snapshot_service.archive import CorruptBackup
from vecraft.services.snapshot_service.backups import (
    BaseBackup,
    create_backup,
    delete_backup,
    list_backups,
    verify,
)
from vecraft.services.snapshot_service.restore import Moment, parse_offset, restore
from vecraft.services.snapshot_service.target import MissingFile, open_target
from vecraft.shared.common.errors import InvalidRequest, Unavailable, VecraftError

DEFAULT_DATA_DIR = "./vecraft-data"


def _source(ns: argparse.Namespace) -> tuple[str, str | None, int | None]:
    """The journal address(es), the meta manager's address and the default shard count of the
    cluster to back up."""
    if ns.journal:
        return str(ns.journal), ns.meta, None
    plan = load_plan(Path(ns.data_dir))
    if plan is None:
        raise InvalidRequest(f"no cluster in {Path(ns.data_dir).resolve()}: give --data-dir of a running "
                             f"`vecraft up`, or --journal HOST:PORT")
    journal = ",".join(p.grpc_address for p in plan.services if p.role == "journal")
    meta = next(p.grpc_address for p in plan.services if p.role == "meta")
    return journal, ns.meta or meta, plan.params.shards


def _service(ns: argparse.Namespace) -> tuple[str, str] | None:
    """(HTTP address, target) of the cluster's snapshot service, when it runs one and ``--target``
    names its target (or none): a backup then goes through it, the only writer of its target."""
    if ns.journal:
        return None
    plan = load_plan(Path(ns.data_dir))
    spec = next((p for p in plan.services if p.role == "snapshot"), None) if plan else None
    if plan is None or spec is None or ns.journal_only:
        return None
    if ns.target and ns.target != plan.params.backup_target:
        return None
    return spec.http_address, plan.params.backup_target


def _create_through(address: str, target: str) -> int:
    """POST /v1/backups to the snapshot service, then follow the operation to its end."""
    with httpx.Client(base_url=f"http://{address}", timeout=30.0) as http:
        started = http.post("/v1/backups")
        if started.status_code != 202:
            raise Unavailable(f"the snapshot service at {address} answered {started.status_code}: "
                              f"{started.text}")
        op_id = started.json()["operation"]["id"]
        shown = ""
        while True:
            op = http.get(f"/v1/operations/{op_id}").json()
            p = op["progress"]
            line = f"{p['phase']} {p['done']}/{p['total']}" if p["phase"] else ""
            if line and line != shown and sys.stderr.isatty():
                print(f"\r{line}   ", end="", file=sys.stderr, flush=True)
            shown = line
            if op["state"] != "running":
                break
            time.sleep(0.2)
    if sys.stderr.isatty() and shown:
        print(file=sys.stderr)
    if op["state"] == "failed":
        raise Unavailable(f"backup failed: {op['error']}")
    _print_created(BaseBackup(**{k: v for k, v in op["result"]["backup"].items() if k != "hlc"}), target)
    for gone in op["result"]["pruned"]:
        print(f"deleted backup {gone} (retention)")
    return 0


def _print_created(backup: BaseBackup, target: str) -> None:
    cut = ", ".join(f"{p} {off}" for p, (off, _) in sorted(backup.partitions.items()))
    shards = (f"{len(backup.shards)} of {backup.shard_count} shards' files"
              if backup.shard_count else "no shard files (restores replay the journal)")
    print(f"backup {backup.id} in {target}: journal up to {cut} (HLC {backup.max_hlc}), "
          f"{shards}, {backup.seconds:.1f}s")


def _create(ns: argparse.Namespace) -> int:
    service = _service(ns)
    if service is not None:
        return _create_through(*service)
    if not ns.target:
        raise InvalidRequest("--target is required (or $VECRAFT_BACKUP_TARGET, or a cluster started with "
                             "--backup-target)")
    target = open_target(ns.target)

    async def run() -> Any:
        address, meta_address, shards = _source(ns)
        journal = JournalClient(address)
        meta = None if ns.journal_only or not meta_address else MetaClient(meta_address, timeout_s=30.0)
        try:
            return await create_backup(journal, target, location=ns.target, meta=meta, default_shards=shards)
        finally:
            await journal.close()
            if meta is not None:
                await meta.close()

    _print_created(asyncio.run(run()), target.describe())
    return 0


def _list(ns: argparse.Namespace) -> int:
    backups = list_backups(open_target(ns.target))
    if ns.json:
        print(json.dumps([asdict(b) | {"hlc": b.max_hlc} for b in backups], indent=2))
        return 0
    if not backups:
        print(f"no backups in {ns.target}")
        return 0
    for b in backups:
        cut = ", ".join(f"{p}:{off}" for p, (off, _) in sorted(b.partitions.items()))
        print(f"{b.id}  {b.created}  hlc {b.max_hlc}  {cut}")
    return 0


def _verify(ns: argparse.Namespace) -> int:
    target = open_target(ns.target)
    problems = verify(target, ns.backup)
    for problem in problems:
        print(f"vecraft backup verify: {problem}", file=sys.stderr)
    if problems:
        return 1
    checked = ns.backup or f"{len(list_backups(target))} backups"
    print(f"{checked} in {target.describe()}: every file present and its checksum correct")
    return 0


def _delete(ns: argparse.Namespace) -> int:
    backup = delete_backup(open_target(ns.target), ns.backup)
    print(f"deleted backup {backup.id}")
    return 0


def _restore(ns: argparse.Namespace) -> int:
    moment = Moment(hlc=ns.to_hlc, time=ns.to_time,
                    offset=None if ns.to_offset is None else parse_offset(ns.to_offset))
    report = restore(open_target(ns.target), ns.backup, Path(ns.data_dir), moment)
    print(f"restored backup {report.backup} up to HLC {report.target_hlc} into {report.data_dir}")
    for partition, (entries, offset, hlc) in sorted(report.partitions.items()):
        print(f"  {partition}: {entries} entries, last offset {offset}, last HLC {hlc}")
    for shard, applied in sorted(report.shards.items()):
        at = ", ".join(f"{p} {off}" for p, off in sorted(applied.items()))
        print(f"  shard {shard}: files at {at or 'the start'} (the rest replays from the journal)")
    for name, rows in report.collections.items():
        print(f"  collection {name}: {rows} rows")
    print(f"start it with: vecraft up --data-dir {report.data_dir}")
    return 0


def _guarded(handler: Callable[[argparse.Namespace], int], name: str) -> Callable[[argparse.Namespace], int]:
    def run(ns: argparse.Namespace) -> int:
        try:
            return handler(ns)
        except VecraftError as exc:
            print(f"vecraft {name}: {exc.message}", file=sys.stderr)
            return 1
        except (CorruptBackup, MissingFile) as exc:
            print(f"vecraft {name}: {exc}", file=sys.stderr)
            return 1
    return run


def add_commands(sub: Any, formatter: type[argparse.HelpFormatter], wrap: Callable[[str], str]) -> None:
    target_help = "backup target: a directory or s3://BUCKET[/PREFIX] (default $VECRAFT_BACKUP_TARGET)"
    env_target = os.environ.get("VECRAFT_BACKUP_TARGET")

    def add_target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--target", default=env_target, required=env_target is None, help=target_help)

    backup = sub.add_parser(
        "backup", formatter_class=formatter, help="create, list, verify and delete backups",
        description=wrap("Backups of a cluster: the journal archived to a target in checksummed "
                         "chunks, and base backups (a cut of every journal partition) that can be "
                         "restored, or restored to any moment up to the newest one "
                         "(docs/backup.md)."))
    actions = backup.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", formatter_class=formatter, help="take a base backup now",
                                description=wrap("Archive every journal partition up to its head "
                                                 "and record the cut. Writes go on meanwhile."))
    create.add_argument("--target", default=env_target,
                        help="backup target (default $VECRAFT_BACKUP_TARGET, else the target of the "
                             "cluster's snapshot service, which then takes the backup)")
    create.add_argument("--data-dir", default=os.environ.get("VECRAFT_DATA_DIR", DEFAULT_DATA_DIR),
                        help="data dir of the running `vecraft up` (finds the journal)")
    create.add_argument("--journal", default=None, help="journal address(es), instead of --data-dir")
    create.add_argument("--meta", default=None,
                        help="meta manager address (with --journal; the storage nodes are found through it)")
    create.add_argument("--journal-only", action="store_true",
                        help="archive the journal and record the cut, without shard files")
    create.set_defaults(handler=_guarded(_create, "backup create"))
    listing = actions.add_parser("list", formatter_class=formatter, help="list base backups")
    add_target(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_guarded(_list, "backup list"))
    check = actions.add_parser("verify", formatter_class=formatter,
                               help="read every file a backup needs and check its checksum",
                               description=wrap("Exit code 0 when every backup (or BACKUP) can be "
                                                "restored; 1 names each missing or damaged file."))
    add_target(check)
    check.add_argument("backup", nargs="?", metavar="BACKUP", help="one backup id (default: all)")
    check.set_defaults(handler=_guarded(_verify, "backup verify"))
    delete = actions.add_parser("delete", formatter_class=formatter, help="delete a base backup")
    add_target(delete)
    delete.add_argument("backup", metavar="BACKUP")
    delete.set_defaults(handler=_guarded(_delete, "backup delete"))

    rest = sub.add_parser(
        "restore", formatter_class=formatter, help="restore a backup into a new data directory",
        description=wrap("Write a new data directory holding exactly the writes up to BACKUP's cut, "
                         "or up to a moment given by --to-hlc, --to-time or --to-offset (any moment "
                         "up to the newest backup). Then start it with `vecraft up --data-dir NEW`. "
                         "A transaction is restored whole or not at all."))
    rest.add_argument("backup", metavar="BACKUP", help="backup id, or 'latest'")
    add_target(rest)
    rest.add_argument("--data-dir", required=True, help="a new (absent or empty) directory")
    rest.add_argument("--to-hlc", type=int, default=None, help="keep the writes with HLC <= H")
    rest.add_argument("--to-time", default=None, help="keep the writes up to this ISO 8601 time (UTC)")
    rest.add_argument("--to-offset", default=None,
                      help="PARTITION:N: up to that entry's HLC, in every partition")
    rest.set_defaults(handler=_guarded(_restore, "restore"))
