"""``python -m vecraft``: the ``vecraft`` command."""

from vecraft.cli import main

raise SystemExit(main())
