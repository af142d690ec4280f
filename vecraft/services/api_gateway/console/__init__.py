"""The web console the gateway serves at ``/console`` (docs/console.md).

Plain HTML, CSS and JavaScript modules in ``static/``, shipped in the package
and served by the gateway itself: no build step, no CDN, so it works on a
machine without internet access. The pages call the public HTTP API (``/v1``)
and one read-only endpoint of their own, ``GET /v1/cluster/overview``
(:mod:`vecraft.services.api_gateway.handlers.console_routes`), which combines
what a :class:`~.probe.ClusterProbe` reads from the cluster with the
gateway's own metrics (:mod:`.overview`, :mod:`.metrics_summary`).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

#: Where the console is served.
CONSOLE_PATH = "/console"
#: The console's files (index.html, console.css, *.js).
STATIC_DIR = Path(__file__).with_name("static")


def mount_console(app: Starlette) -> None:
    """Serve the console's files at ``/console/`` (``/console`` redirects there)."""
    app.mount(CONSOLE_PATH, StaticFiles(directory=str(STATIC_DIR), html=True), name="console")
