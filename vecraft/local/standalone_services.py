"""The ``--services`` file of standalone mode: which services the one process builds, with what flags.

Written by the plan (:mod:`.topology`) and read by the standalone process
(:mod:`.standalone`). Kept apart from the latter so that ``vecraft up``, which
only writes the file, does not import the services' code (gRPC, protobuf,
uvicorn): the supervisor stays small.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceEntry:
    """One service of the standalone process: what its own process would have been run with."""

    name: str
    role: str
    module: str
    group: int
    args: tuple[str, ...]


def write_services(entries: Sequence[ServiceEntry]) -> str:
    """The ``--services`` file's text."""
    return json.dumps([asdict(e) for e in entries], indent=1)


def read_services(path: Path) -> list[ServiceEntry]:
    return [ServiceEntry(name=e["name"], role=e["role"], module=e["module"], group=int(e["group"]),
                         args=tuple(e["args"])) for e in json.loads(path.read_text())]
