"""The SDK's gRPC request building: the same names and refusals as over HTTP."""

from __future__ import annotations

import pytest

from vecraft.shared.rpc.v1 import journal_pb2
from vecraft_client import InvalidRequest, _calls

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("ack, mode", [
    (None, journal_pb2.ACK_DEFAULT), ("journal", journal_pb2.ACK_JOURNAL), ("ONE", journal_pb2.ACK_ONE),
    (" all ", journal_pb2.ACK_ALL),
])
def test_ack_names_map_like_the_gateway_does(ack: str | None, mode: int) -> None:
    call = _calls.delete(["a"], "c", session_token=None, ack=ack, request_id="r1")
    assert call.grpc_request is not None
    assert call.grpc_request.ack == mode


def test_unknown_ack_is_refused_not_sent_as_the_default() -> None:
    with pytest.raises(InvalidRequest, match="journal, one, all"):
        _calls.delete(["a"], "c", session_token=None, ack="durable", request_id="r1")
    with pytest.raises(InvalidRequest):
        _calls.write_one([0.1, 0.2], "a", None, None, "c", upsert=False, session_token=None, ack="al",
                         request_id="r2")
