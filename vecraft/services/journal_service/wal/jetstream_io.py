"""The NATS calls of the JetStream journal backend: atomic batch publish and batched direct get.

:class:`StreamIO` wraps one nats-py connection. Replies (publish acks, direct
get answers) all arrive on one wildcard inbox subscription and are routed to
the waiting call by the inbox token, so neither path pays for a subscription
per call.

Entries are stored as stream messages with the journal's fields in headers
(:data:`HLC_HEADER`, :data:`RID_HEADER`, :data:`SHARDS_HEADER`, and with
partition ownership :data:`EPOCH_HEADER` / :data:`OWNER_HEADER`) and the
payload as the message body; :class:`Stored` is one message read back.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from vecraft.services.journal_service.wal import JournalCorruption
from vecraft.shared.common import tls

HLC_HEADER = "Vecraft-Hlc"
RID_HEADER = "Vecraft-Rid"
SHARDS_HEADER = "Vecraft-Shards"
#: Identifies one publish attempt, to find it in the stream when its answer was lost.
ATTEMPT_HEADER = "Vecraft-Attempt"
#: The ownership epoch (the owner's lease fencing token) an entry was written under; absent = 0
#: (written without partition ownership).
EPOCH_HEADER = "Vecraft-Epoch"
#: Only on an epoch marker (an entry with an empty payload): the lease holder that took the
#: partition over under :data:`EPOCH_HEADER`.
OWNER_HEADER = "Vecraft-Owner"
#: The server's limit on messages in one atomic batch (commit message included).
MAX_BATCH_MESSAGES = 1000
#: JetStream's error code for a failed Nats-Expected-Last-Sequence check: nothing was stored.
WRONG_LAST_SEQUENCE = 10071

#: Errors after which the outcome of a publish is unknown and the stream must be asked.
TRANSIENT = (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error, OSError)


class WrongLastSequence(Exception):
    """The stream's last sequence was not the expected one; the batch was not stored."""


class PublishFailed(Exception):
    """The server refused the batch for another reason (no leader, limits); it was not stored."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One journal entry as read back from its stream."""

    seq: int
    hlc: int
    request_id: str
    shards: tuple[int, ...]
    payload: bytes
    attempt: str
    #: Ownership epoch it was written under (0: written without ownership).
    epoch: int = 0
    #: The holder that took the partition over, on an epoch marker; "" on every other entry.
    owner: str = ""


def entry_headers(hlc: int, request_id: str, shards: Sequence[int], *, epoch: int = 0,
                  owner: str = "") -> dict[str, str]:
    """Headers holding an entry's fields; the request id and owner are percent-encoded (headers are
    ASCII lines). ``epoch`` 0 and ``owner`` "" are left out."""
    headers = {HLC_HEADER: str(hlc)}
    if request_id:
        headers[RID_HEADER] = quote(request_id, safe="")
    if shards:
        headers[SHARDS_HEADER] = ",".join(map(str, shards))
    if epoch:
        headers[EPOCH_HEADER] = str(epoch)
    if owner:
        headers[OWNER_HEADER] = quote(owner, safe="")
    return headers


def decode_stored(stream: str, seq: int, headers: dict[str, str] | None, data: bytes | None) -> Stored:
    """The entry a stored message holds.

    Raises:
        JournalCorruption: the message is not a journal entry.
    """
    headers = headers or {}
    try:
        hlc = int(headers[HLC_HEADER])
        shards = tuple(int(s) for s in headers[SHARDS_HEADER].split(",")) if SHARDS_HEADER in headers else ()
        epoch = int(headers.get(EPOCH_HEADER, "0"))
    except (KeyError, ValueError) as exc:
        raise JournalCorruption(f"stream {stream} sequence {seq} is not a journal entry "
                                f"(headers {sorted(headers)})") from exc
    return Stored(seq, hlc, unquote(headers.get(RID_HEADER, "")), shards, data or b"",
                  headers.get(ATTEMPT_HEADER, ""), epoch, unquote(headers.get(OWNER_HEADER, "")))


class StreamIO:
    """Publishing to and reading from journal streams over one NATS connection.

    Args:
        nc: a connected client (reconnecting on its own).
        timeout: seconds to wait for one ack or one direct get answer.
    """

    def __init__(self, nc: Client, *, timeout: float) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=timeout)
        self.timeout = timeout
        self._prefix = nc.new_inbox()
        self._queues: dict[str, asyncio.Queue[Msg]] = {}
        self._sub: Any = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(f"{self._prefix}.>", cb=self._route)

    async def _route(self, msg: Msg) -> None:
        queue = self._queues.get(msg.subject[len(self._prefix) + 1:])
        if queue is not None:
            queue.put_nowait(msg)

    def _open(self) -> tuple[str, str, asyncio.Queue[Msg]]:
        token = uuid.uuid4().hex
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._queues[token] = queue
        return token, f"{self._prefix}.{token}", queue

    # ---- writes ---------------------------------------------------------------------
    async def publish_batch(self, stream: str, subject: str, attempt: str, expected_last: int,
                            messages: Sequence[tuple[dict[str, str], bytes]]) -> int:
        """Publish ``messages`` as one batch stored right after sequence ``expected_last``.

        All or nothing: the server stores every message or none. Several
        messages go as one atomic batch; a single one as a plain publish (the
        same guarantee, and a single-server atomic batch is much slower).
        Every message carries ``attempt`` in :data:`ATTEMPT_HEADER`.

        Returns:
            The sequence of the batch's last message.

        Raises:
            WrongLastSequence: the stream's last sequence is not ``expected_last`` (nothing stored).
            PublishFailed: the server refused the batch (nothing stored).
            TRANSIENT errors: no answer; the batch may or may not be stored.
        """
        token, reply, queue = self._open()
        try:
            last = len(messages)
            for i, (headers, payload) in enumerate(messages, start=1):
                hdrs = {**headers, ATTEMPT_HEADER: attempt}
                if last > 1:
                    hdrs.update({"Nats-Batch-Id": attempt, "Nats-Batch-Sequence": str(i)})
                    if i == last:
                        hdrs["Nats-Batch-Commit"] = "1"
                if i == 1:
                    hdrs["Nats-Expected-Last-Sequence"] = str(expected_last)
                    hdrs["Nats-Expected-Stream"] = stream
                # Only the commit asks for an answer: the ack of the whole batch.
                await self.nc.publish(subject, payload, reply=reply if i == last else "", headers=hdrs)
            msg = await asyncio.wait_for(queue.get(), self.timeout)
        finally:
            self._queues.pop(token, None)
        if msg.headers and msg.headers.get("Status") == "503":
            raise PublishFailed(f"no JetStream responder for {subject}")
        ack = json.loads(msg.data)
        error = ack.get("error")
        if error:
            if error.get("err_code") == WRONG_LAST_SEQUENCE:
                raise WrongLastSequence(error.get("description", ""))
            raise PublishFailed(f"stream {stream} refused the batch: {error.get('description', error)}")
        return int(ack["seq"])

    # ---- reads ----------------------------------------------------------------------
    async def streams_on(self, subjects: str) -> dict[str, tuple[list[str], int]]:
        """Streams whose subjects match the wildcard ``subjects`` -> (their subjects, messages held).

        One ``STREAM.LIST`` request per page of streams (the server filters them).

        Raises:
            nats.errors.Error: (transient) a clustered JetStream that is still settling listed
                streams it could not describe (``missing``), or pages that did not advance; an
                incomplete list must not pass for the whole one, and paging must not spin.
        """
        found: dict[str, tuple[list[str], int]] = {}
        while True:
            msg = await self.nc.request("$JS.API.STREAM.LIST",
                                        json.dumps({"subject": subjects, "offset": len(found)}).encode(),
                                        timeout=self.timeout)
            resp = json.loads(msg.data)
            if "error" in resp:
                raise nats.js.errors.APIError.from_error(resp["error"])
            if resp.get("missing"):
                raise nats.errors.Error(f"JetStream could not describe streams {resp['missing']} yet")
            page = resp.get("streams") or []
            before = len(found)
            for info in page:
                found[info["config"]["name"]] = (list(info["config"].get("subjects") or []),
                                                 int(info["state"].get("messages", 0)))
            if not page or len(found) >= int(resp.get("total", 0)):
                return found
            if len(found) == before:
                raise nats.errors.Error(f"STREAM.LIST at offset {before} repeated streams already listed "
                                        f"(total {resp.get('total')})")

    async def last_seq(self, stream: str) -> tuple[int, int]:
        """``(first, last)`` sequence of ``stream`` as its leader knows it."""
        info = await self.js.stream_info(stream)
        return int(info.state.first_seq), int(info.state.last_seq)

    async def trimmed_to(self, stream: str) -> int:
        """The first sequence the journal's last trim of ``stream`` kept (1 when never trimmed)."""
        info = await self.js.stream_info(stream)
        return int((info.config.metadata or {}).get(TRIMMED_TO_KEY, "1"))

    async def trim(self, stream: str, before: int) -> None:
        """Remove the entries of ``stream`` below sequence ``before``.

        The kept first sequence goes into the stream's metadata first, so a
        stream starting past 1 is known to be trimmed by the journal, not
        damaged (:meth:`trimmed_to`); a crash between the two keeps entries the
        metadata says may go, which is harmless.
        """
        info = await self.js.stream_info(stream)
        config = info.config
        config.metadata = {**(config.metadata or {}), TRIMMED_TO_KEY: str(before)}
        await self.js.update_stream(config)
        await self.js.purge_stream(stream, seq=before)

    async def fetch(self, stream: str, first: int, count: int) -> list[Stored]:
        """Entries ``first``, ``first + 1``, ... (at most ``count``), a non-empty gapless prefix.

        A batched direct get may be answered by a replica that is behind, so
        it can come back short or empty; an empty answer falls back to the
        stream leader for the single entry ``first``.

        Raises:
            JournalCorruption: a stored message is not an entry, or the answer skips a sequence.
            TRANSIENT errors: the servers did not answer.
        """
        out = await self._direct_batch(stream, first, count)
        if not out:
            raw = await self.js.get_msg(stream, seq=first)
            out = [decode_stored(stream, int(raw.seq or 0), raw.headers, raw.data)]
        for expected, entry in enumerate(out, start=first):
            if entry.seq != expected:
                raise JournalCorruption(f"stream {stream} answered sequence {entry.seq} where "
                                        f"{expected} belongs (a deleted or missing message)")
        return out

    async def _direct_batch(self, stream: str, first: int, count: int) -> list[Stored]:
        """One batched direct get (server 2.11+): messages until the end-of-batch status."""
        token, reply, queue = self._open()
        out: list[Stored] = []
        try:
            await self.nc.publish(f"$JS.API.DIRECT.GET.{stream}",
                                  json.dumps({"seq": first, "batch": count}).encode(), reply=reply)
            while True:
                msg = await asyncio.wait_for(queue.get(), self.timeout)
                headers = msg.headers or {}
                if "Status" in headers:  # 204 end of batch, 404 nothing at or after `first`
                    return out
                out.append(decode_stored(stream, int(headers["Nats-Sequence"]), headers, msg.data))
                if len(out) >= count:
                    return out
        finally:
            self._queues.pop(token, None)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None


#: Stream metadata key naming the first sequence the journal's last trim kept.
TRIMMED_TO_KEY = "vecraft_trimmed_to"


def tls_context() -> ssl.SSLContext | None:
    """The TLS context of NATS connections: the process's CA and certificate
    (:func:`vecraft.shared.common.tls.configure_client`, i.e. the journal's ``--tls-ca`` with its
    ``--tls-cert``/``--tls-key``), or None when the process has none."""
    files = tls.client_files()
    if files is None:
        return None
    context = ssl.create_default_context(cafile=str(files.ca) if files.ca is not None else None)
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


async def connect(urls: Sequence[str], *, name: str, timeout: float) -> Client:
    """A client that keeps reconnecting to any of ``urls`` for as long as it lives.

    A server that requires TLS (``tls://`` URLs, ``vecraft up --cluster --tls``) is verified
    with the process's CA and given its certificate (:func:`tls_context`); without one, nats-py
    would verify with the system's trust store and present no certificate.
    """
    context = tls_context()
    options: dict[str, Any] = {"tls": context} if context is not None else {}
    return await nats.connect(servers=list(urls), name=name, connect_timeout=timeout,
                              max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                              allow_reconnect=True, **options)
