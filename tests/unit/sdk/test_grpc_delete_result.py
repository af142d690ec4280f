"""The SDK reads the gRPC delete answer's per-id outcome and the duplicate flag."""

from __future__ import annotations

import pytest

from vecraft.shared.rpc.v1 import gateway_pb2
from vecraft_client import _calls

pytestmark = pytest.mark.unit


def test_grpc_delete_result_carries_deleted_ids_and_missing_ids() -> None:
    call = _calls.delete(["a", "b"], None, session_token=None, ack=None, request_id="r")
    assert call.parse_grpc is not None
    result = call.parse_grpc(gateway_pb2.WriteVectorsResponse(
        ids=["a", "b"], partition="data-0", offset=7, deleted=True, deleted_ids=["b"], missing_ids=["a"],
        duplicate=True))
    assert (result.deleted, result.deleted_ids, result.missing_ids) == (True, ["b"], ["a"])
    assert result.duplicate and result.offset == 7


def test_grpc_delete_of_only_missing_ids_is_false_not_unknown() -> None:
    call = _calls.delete(["a"], None, session_token=None, ack=None, request_id="r")
    assert call.parse_grpc is not None
    result = call.parse_grpc(gateway_pb2.WriteVectorsResponse(ids=["a"], missing_ids=["a"]))
    assert (result.deleted, result.deleted_ids, result.missing_ids) == (False, [], ["a"])


def test_grpc_write_result_carries_duplicate() -> None:
    call = _calls.write([[1.0, 2.0]], ["a"], None, None, None, upsert=False, session_token=None, ack=None,
                        request_id="r")
    assert call.parse_grpc is not None
    assert call.parse_grpc(gateway_pb2.WriteVectorsResponse(ids=["a"], duplicate=True)).duplicate
    assert not call.parse_grpc(gateway_pb2.WriteVectorsResponse(ids=["a"])).duplicate
