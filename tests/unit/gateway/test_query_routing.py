"""Choosing a shard's query processor: round-robin, session affinity, failover."""

from __future__ import annotations

import pytest

from vecraft.services.api_gateway.journal_router.sessions import (
    decode_session,
    decode_token,
    encode_session,
)
from vecraft.services.api_gateway.query_routing import AFFINITY, FAILOVER, ROUND_ROBIN, QueryRouter
from vecraft.shared.common.errors import InvalidRequest
from vecraft_client import _session_token

pytestmark = pytest.mark.unit

ADDRS = ["a:1", "b:2", "c:3"]


def test_round_robin_spreads_and_skips_a_processor_marked_down() -> None:
    now = [0.0]
    router = QueryRouter(cooldown_s=3.0, clock=lambda: now[0])
    firsts = [router.plan(ADDRS)[0] for _ in range(6)]
    assert [a for a, _ in firsts] == ADDRS * 2 and {r for _, r in firsts} == {ROUND_ROBIN}
    router.mark_down("b:2")
    picks = [router.plan(ADDRS) for _ in range(6)]
    assert all(p[0][0] != "b:2" and p[-1] == ("b:2", FAILOVER) for p in picks)
    now[0] = 3.5  # the cooldown is over
    assert "b:2" in {router.plan(ADDRS)[0][0] for _ in range(3)}


def test_affinity_is_stable_and_fails_over_while_the_processor_is_down() -> None:
    router = QueryRouter()
    plans = [router.plan(ADDRS, "s:abc") for _ in range(5)]
    assert all(p == plans[0] for p in plans) and plans[0][0][1] == AFFINITY
    home = plans[0][0][0]
    assert len({router.plan(ADDRS, f"s:{i}")[0][0] for i in range(50)}) == 3  # sessions spread
    router.mark_down(home)
    moved = router.plan(ADDRS, "s:abc")
    assert moved[0][0] != home and moved[0][1] == FAILOVER and moved[-1][0] == home
    assert router.plan(ADDRS, "s:abc")[0][0] == moved[0][0]  # stays put while the home is down
    router.mark_up(home)
    assert router.plan(ADDRS, "s:abc")[0] == (home, AFFINITY)


def test_session_identity_in_tokens_old_tokens_and_sdk_merge() -> None:
    token = encode_session({"data-0": 5}, "sid_1")
    assert decode_token(token) == ({"data-0": 5}, "sid_1")
    assert decode_session(token) == {"data-0": 5}
    assert decode_token(encode_session({"data-0": 5})) == ({"data-0": 5}, "")  # tokens without it
    with pytest.raises(InvalidRequest):
        decode_token(_session_token.encode({"data-0": 1}, "bad id!"))
    # The SDK keeps the identity through merges (the current token's first).
    merged = _session_token.merge(token, encode_session({"data-0": 9, "data-1": 2}, "other"))
    assert decode_token(merged) == ({"data-0": 9, "data-1": 2}, "sid_1")
    assert _session_token.decode(merged) == {"data-0": 9, "data-1": 2}
    assert _session_token.session_id(_session_token.merge("", token)) == "sid_1"
