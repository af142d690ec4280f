"""Session tokens, the top-k merge and the combined consistency report."""

from __future__ import annotations

import base64

import pytest

from vecraft.services.api_gateway.journal_router.sessions import (
    decode_session,
    encode_session,
    merge_sessions,
)
from vecraft.services.api_gateway.merge import combine_consistency, merge_top_k
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import query_pb2, search_pb2

pytestmark = pytest.mark.unit


def test_session_tokens_round_trip_and_merge() -> None:
    token = encode_session({"data-1": 7, "txn": 2})
    assert "=" not in token and decode_session(token) == {"data-1": 7, "txn": 2}
    assert encode_session({}) == "" and decode_session("") == {} and decode_session(None) == {}
    merged = merge_sessions({"data-0": 5, "data-1": 2}, {"data-1": 9}, {"data-0": 1})
    assert merged == {"data-0": 5, "data-1": 9}
    # The SDK's encoding is the same.
    from vecraft_client import _session_token
    assert _session_token.decode(token) == {"data-1": 7, "txn": 2}


@pytest.mark.parametrize("token", ["%%%", base64.urlsafe_b64encode(b"[1]").decode(),
                                   base64.urlsafe_b64encode(b'{"data-0": -1}').decode(),
                                   base64.urlsafe_b64encode(b'{"data-0": true}').decode(),
                                   base64.urlsafe_b64encode(b'{"data-0": 1.5}').decode(), "A" * 5000])
def test_malformed_session_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidRequest):
        decode_session(token)


def _answer(*hits: tuple[str, float]) -> query_pb2.QuerySearchResponse:
    return query_pb2.QuerySearchResponse(results=[search_pb2.ScoredVector(id=i, score=s, document="d")
                                                  for i, s in hits])


def test_merge_top_k_orders_by_score_then_id() -> None:
    merged = merge_top_k([_answer(("b", 0.9), ("c", 0.1)), _answer(("a", 0.9), ("d", 0.5)), _answer()], 3,
                         metric="ip")
    assert [(h.id, h.score) for h in merged] == [("a", pytest.approx(0.9)), ("b", pytest.approx(0.9)),
                                                 ("d", 0.5)]
    assert all(h.document == "" for h in merged)
    assert merge_top_k([_answer(("x", -4.0))], 10, metric="l2", include_documents=True)[0].document == "d"
    assert merge_top_k([_answer(), _answer()], 5, metric="cosine") == []


def _info(level: L, staleness: int, version: int, cache: bool, sync: bool) -> search_pb2.ConsistencyInfo:
    return search_pb2.ConsistencyInfo(level_requested=level, level_achieved=level, staleness_ms=staleness,
                                      index_version_used=version, cache_hit=cache, sync_performed=sync)


def test_consistency_is_combined_conservatively() -> None:
    report = combine_consistency([_info(L.STRONG, 3, 40, True, False), _info(L.STRONG, 9, 38, False, True)],
                                 L.STRONG, 0)
    assert (report.level_achieved, report.staleness_ms, report.index_version) == (L.STRONG, 9, 38)
    assert (report.cache_hit, report.sync_performed, report.max_allowed_staleness_ms) == (False, True, 0)
    weaker = combine_consistency([_info(L.BOUNDED_STALENESS, 0, 1, True, False),
                                  _info(L.EVENTUAL, 0, 1, True, False)], L.BOUNDED_STALENESS, 500)
    assert weaker.level_achieved is L.EVENTUAL and weaker.cache_hit is True
    with pytest.raises(ValueError):
        combine_consistency([], L.EVENTUAL, None)
