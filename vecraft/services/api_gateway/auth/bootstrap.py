"""Start-up rules of auth: refuse to serve beyond loopback without it, and make the first admin key.

A gateway bound to an address other than loopback answers anyone who can reach it;
without ``--auth`` that is everyone, so it refuses to start unless told ``--insecure``.

With ``--auth`` and no live admin key for every tenant in the meta manager, the gateway
creates one at start and shows it once: in one log line that says so (the only place a
key is ever logged), or written to ``--bootstrap-admin-key-file`` (mode 0600) instead.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from vecraft.services.api_gateway.auth.keyring import KeyRing
from vecraft.services.api_gateway.auth.principal import ALL_TENANTS
from vecraft.services.meta_manager.api_keys import key_sha256

log = logging.getLogger(__name__)

BOOTSTRAP_KEY_NAME = "bootstrap-admin"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, auth: bool, insecure: bool) -> None:
    """Raise ValueError when ``host`` is not loopback, auth is off and ``insecure`` was not given."""
    if auth or insecure or is_loopback(host):
        return
    raise ValueError(
        f"refusing to serve on {host} without --auth: a gateway reachable from other machines would let "
        "anyone read, write and drop every collection. Start it with --auth (API keys; see "
        "docs/security.md), bind it to 127.0.0.1, or pass --insecure to serve without keys anyway")


def write_key_file(path: Path, key: str) -> None:
    """Write ``key`` to ``path`` readable by its owner only (0600), replacing the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key + "\n").encode())
    finally:
        os.close(fd)


async def ensure_admin_key(keys: KeyRing, key_file: str) -> None:
    """Create and show an admin key for every tenant when the meta manager has none.

    Runs after the key records were loaded. Two gateways starting at once may each make one.
    """
    await keys.wait_loaded()
    if any(k.role == "admin" and k.tenant == ALL_TENANTS and not k.collections and not k.revoked
           for k in keys.records()):
        return
    created = await keys.meta.create_api_key(role="admin", tenant=ALL_TENANTS, name=BOOTSTRAP_KEY_NAME)
    info = created.info
    info.key_sha256 = key_sha256(created.key)
    keys.put(info)
    if key_file:
        write_key_file(Path(key_file), created.key)
        log.warning("no admin API key existed: created admin key %s for every tenant and wrote it to %s "
                    "(mode 0600)", info.id, key_file)
        return
    # The one place a key is logged, by design: the operator has no other way to receive it.
    log.warning("no admin API key existed: created admin key %s for every tenant. It is shown this once "
                "and never again; store it now: %s", info.id, created.key)
