"""How large a request and a gRPC message may be: the service shell enforces them on every port.

Here rather than in :mod:`vecraft.shared.model.limits` (which lists them with
every other limit) because the shell (:mod:`.service`) sets them on each gRPC
server and channel, and ``shared/common`` imports nothing of ``shared/model``.
"""

from __future__ import annotations

#: Largest request: an HTTP body (413 above), a public gRPC request message and a journal
#: entry (JournalLimits.max_entry_bytes must not exceed it). 64 MiB holds a 10,000 x 1,536
#: float32 batch in binary form.
MAX_REQUEST_BYTES = 64 << 20
#: gRPC wraps a payload in an envelope (field tags and lengths, request id, shard list,
#: partition name, offsets; a PullWAL page or Subscribe event around a single entry); 1 MiB
#: is far above any of them, so an entry of MAX_REQUEST_BYTES still travels between services.
GRPC_ENVELOPE_BYTES = 1 << 20
#: Largest gRPC message any Vecraft server accepts (RESOURCE_EXHAUSTED above).
GRPC_MAX_MESSAGE_BYTES = MAX_REQUEST_BYTES + GRPC_ENVELOPE_BYTES
