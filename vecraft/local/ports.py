"""Free loopback ports for the processes of a local cluster, tests and benchmarks."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PortPair:
    """Ports of one process; ``peer`` only for etcd (peer URL) and NATS (cluster routes)."""

    grpc: int
    http: int
    peer: int = 0


def _ephemeral_low() -> int:
    """Lowest port of the kernel's ephemeral range (outgoing connections take ports from it)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def allocate_ports(names: Iterable[str], taken: Iterable[int], *, host: str = LOOPBACK,
                   rng: random.Random | None = None, with_peer: Iterable[str] = ()) -> dict[str, PortPair]:
    """A free port pair for each name (plus a peer port for those in ``with_peer``), avoiding ``taken``.

    Ports come from below the kernel's ephemeral range when possible: a port
    taken from that range could later be occupied by some outgoing connection
    while its service restarts.
    """
    rng = rng or random.Random()
    avoid = set(taken)
    held: list[socket.socket] = []
    low, high = 20000, _ephemeral_low()
    candidates = list(range(low, high)) if high - low > 100 else []
    rng.shuffle(candidates)

    def grab() -> int:
        while candidates:
            port = candidates.pop()
            if port in avoid:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
            avoid.add(port)
            return port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        held.append(sock)
        port = int(sock.getsockname()[1])
        avoid.add(port)
        return port

    try:
        peers = set(with_peer)
        return {name: PortPair(grpc=grab(), http=grab(), peer=grab() if name in peers else 0)
                for name in names}
    finally:
        # Held open until every port is chosen, so no two names get the same port.
        for sock in held:
            sock.close()
