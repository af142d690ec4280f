"""Start real Vecraft service processes on free loopback ports.

``ServiceProcess`` runs ``python -m <module> --grpc-port P --http-port Q ...``,
waits for ``/readyz`` and keeps the log in a file so a failing test can show
it. ``kill()`` is kill -9; ``restart()`` starts it again with the same
arguments and ports (so clients reconnect to the same address).
"""

from vecraft.local.process import ServiceProcess, free_port

__all__ = ["ServiceProcess", "free_port"]
