"""``vecraft up`` with the stand-in service in every role, as a real supervisor process.

``python -m tests.integration.cli.fake_cluster [vecraft up flags]`` plans,
starts and supervises a cluster exactly as ``vecraft up`` does (same planner,
supervisor, banner, files, signals), except that every role runs
:mod:`tests.integration.cli.fake_service`, each in its own process (the stand-in is
a process, not a service standalone mode could build: ``--distributed`` unless
``--no-distributed`` is given).
"""

from __future__ import annotations

import argparse
import logging
import sys

from vecraft import cli
from vecraft.local.topology import ROLE_MODULES
from vecraft.shared.common.config import add_settings_arguments, settings_from_namespace

FAKE_MODULE = "tests.integration.cli.fake_service"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fake_cluster")
    add_settings_arguments(parser, cli.UpSettings)
    ns = parser.parse_args(argv)
    settings = settings_from_namespace(cli.UpSettings, ns, section="up")
    if settings.distributed is None:
        settings = settings.model_copy(update={"distributed": True})
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    return cli.run_up(settings, config_file=ns.config,
                      modules={role: FAKE_MODULE for role in ROLE_MODULES})


if __name__ == "__main__":
    sys.exit(main())
