"""Quota records: what a tenant (or one API key acting for it) may do (docs/quotas.md).

A record names its subject, ``(tenant, key_id)`` (``key_id`` "" = the tenant's own quota),
and its limits; 0 means no limit. Rates (``*_per_s``) are whole numbers per second and
are enforced per gateway process; ``max_collections`` and ``max_vectors`` count the whole
tenant and so belong to tenant quotas only. The meta manager stores the records (both
backends) and publishes them on the Watch topic ``quotas``; gateways enforce them.
"""

from __future__ import annotations

import re

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.limits import MAX_REQUEST_BYTES
from vecraft.shared.model.validation import validate_name
from vecraft.shared.rpc.v1 import meta_pb2

#: Each limit's name (as in the API, the CLI, error messages and metrics) and its largest value.
RATE_LIMITS = ("write_requests_per_s", "write_vectors_per_s", "read_requests_per_s")
TENANT_LIMITS = ("max_collections", "max_vectors")
LIMITS = (*RATE_LIMITS, *TENANT_LIMITS, "max_request_bytes")
MAX_RATE = 1_000_000_000
MAX_VALUES: dict[str, int] = {**dict.fromkeys(RATE_LIMITS, MAX_RATE), "max_collections": 1_000_000,
                              "max_vectors": 2**53, "max_request_bytes": MAX_REQUEST_BYTES}
#: The smallest non-zero request size limit (a request line and a tiny body).
MIN_REQUEST_BYTES = 64
_KEY_ID_RE = re.compile(r"^[0-9a-f]{12}$")


def subject(tenant: str, key_id: str) -> str:
    """How people read a record's subject: ``tenant 'acme'`` or ``key 0123abcd4567 of tenant 'acme'``."""
    return f"key {key_id} of tenant {tenant!r}" if key_id else f"tenant {tenant!r}"


def no_quota_message(tenant: str, key_id: str) -> str:
    return f"{subject(tenant, key_id[:64])} has no quota"


def validate_subject(tenant: str, key_id: str) -> None:
    """Raises InvalidRequest for a bad tenant name or a key id that is not 12 hex characters."""
    validate_name(tenant, "tenant")
    if key_id and not _KEY_ID_RE.match(key_id):
        raise InvalidRequest(f"key_id {key_id[:64]!r} is not an API key id (12 hex characters, as "
                             "`vecraft keys list` shows)", details={"key_id": key_id[:64]})


def validate_quota(quota: meta_pb2.Quota) -> None:
    """Check a record before it is stored.

    Raises:
        InvalidRequest: a bad subject, a value above its maximum, a tenant-wide limit on a key's
            quota, or a request size limit too small to carry any request.
    """
    validate_subject(quota.tenant, quota.key_id)
    for name in LIMITS:
        value = getattr(quota, name)
        if value > MAX_VALUES[name]:
            raise InvalidRequest(f"{name} is {value}; at most {MAX_VALUES[name]} (0 = no limit)",
                                 details={"limit": name, "max": MAX_VALUES[name]})
    if quota.key_id:
        for name in TENANT_LIMITS:
            if getattr(quota, name):
                raise InvalidRequest(f"{name} counts the whole tenant: set it on the tenant's quota, not "
                                     f"on a key's", details={"limit": name})
    if 0 < quota.max_request_bytes < MIN_REQUEST_BYTES:
        raise InvalidRequest(f"max_request_bytes is {quota.max_request_bytes}; at least "
                             f"{MIN_REQUEST_BYTES} (0 = no limit)", details={"limit": "max_request_bytes"})


def limits_of(quota: meta_pb2.Quota) -> dict[str, int]:
    """``{limit name: value}`` of the limits ``quota`` sets (0s left out)."""
    return {name: int(getattr(quota, name)) for name in LIMITS if getattr(quota, name)}
