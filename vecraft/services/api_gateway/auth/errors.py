"""The two errors of authentication and authorization, in the shared error tree.

Both are registered in :data:`vecraft.shared.common.errors.ERROR_CLASSES`, so a client
(the SDK, another service) rebuilds the same class from the wire name, as with
:class:`~vecraft.shared.common.errors.NotOwner`.
"""

from __future__ import annotations

import grpc

from vecraft.shared.common.errors import ERROR_CLASSES, VecraftError


class Unauthenticated(VecraftError):
    """401: no API key, or one that is not valid (unknown, malformed or revoked)."""

    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    wire_name = "unauthenticated"


class PermissionDenied(VecraftError):
    """403: the key is valid but its role or scope does not allow the request."""

    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    wire_name = "permission_denied"


ERROR_CLASSES[Unauthenticated.wire_name] = Unauthenticated
ERROR_CLASSES[PermissionDenied.wire_name] = PermissionDenied
