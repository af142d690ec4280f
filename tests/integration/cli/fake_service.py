"""A stand-in for every Vecraft service, for supervisor and CLI tests.

It accepts every flag the cluster plan gives the real services (so the tests
also check that the planned command lines parse against settings shaped like
theirs), runs the real :class:`Service` shell, and is ready at once. If the
environment variable ``FAKE_SERVICE_CRASH`` names its node id it writes a
message and exits with code 3 before serving; if ``FAKE_SERVICE_STUBBORN``
names it, it ignores SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any, Literal

from pydantic import Field

from vecraft.shared.common.config import ServiceSettings, load_settings
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import Service


class FakeSettings(ServiceSettings):
    shard: list[int] = Field(default_factory=list)  # query processors' flag: --shard 0 1 2
    shards: str = ""  # storage nodes' flag: --shards 0,2
    replica: int = -1
    journal_address: str = ""
    storage_replicas: int = 0  # the fail-over manager's replica counts
    query_replicas: int = 0
    data_partitions: int = 1
    apply_delay_ms: int = 0
    backend: Literal["sqlite"] = "sqlite"
    default_shards: int = 1
    default_replicas: int = 1


class FakeService(Service):
    role = "fake"

    def __init__(self, settings: FakeSettings) -> None:
        super().__init__(settings)
        self.fake = settings

    async def on_start(self) -> None:
        if os.environ.get("FAKE_SERVICE_STUBBORN") == self.node_id:
            # Replaces the shell's graceful-shutdown handler: only SIGKILL ends this one.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: None)
        self.set_ready()

    def health_payload(self) -> dict[str, Any]:
        shards = [int(s) for s in self.fake.shards.split(",")] if self.fake.shards else self.fake.shard
        return {"shards": shards, "replica": self.fake.replica}


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(FakeSettings, argv, section="fake")
    if os.environ.get("FAKE_SERVICE_CRASH") == settings.node_id:
        print(f"fake crash of {settings.node_id}: cannot open the data directory", file=sys.stderr)
        sys.exit(3)
    setup_logging(settings.node_id or "fake", settings.log_level)
    asyncio.run(FakeService(settings).run())


if __name__ == "__main__":
    main()
