"""The storage node's hosted shards: the --shards flag, its node id, the journal replica ids, and which
replica a request reaches."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vecraft.services.storage_node.main import (
    ShardNotHosted,
    StorageNode,
    StorageNodeSettings,
    default_node_id,
    parse_settings,
)
from vecraft.services.storage_node.replica import replica_id
from vecraft.shared.common.errors import InvalidRequest, Unavailable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("argv", "shards"), [
    (["--shards", "0,2"], [0, 2]),
    (["--shards", "2", "0"], [0, 2]),
    (["--shards", "3", "--shards", "1"], [1, 3]),
    (["--shards", "5"], [5]),
    ([], [0]),
])
def test_shards_flag_takes_a_list(argv: list[str], shards: list[int]) -> None:
    assert parse_settings(argv).shards == shards


def test_shards_from_the_environment_take_the_same_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECRAFT_SHARDS", "4,1")
    assert parse_settings([]).shards == [1, 4]


@pytest.mark.parametrize(("value", "message"), [
    ("0,0", "names a shard twice"), ("-1", "negative"), ("a", "not a shard number"), ("", "at least one")])
def test_bad_shard_lists_are_refused(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StorageNodeSettings(shards=value)


def test_node_id_is_stable_and_derived_from_the_hosted_set() -> None:
    assert default_node_id([3], 1) == "storage-3-r1"  # a one-shard node keeps the id it always had
    assert default_node_id([0, 2], 0) == "storage-node-0-2-r0"
    node = StorageNode(StorageNodeSettings(shards=[0, 2], replica=1, node_id="n7"))
    assert node.node_id == "n7"
    # Journal replica ids: one per (node, shard), whatever the replica number, so two nodes holding
    # one shard never share one (a re-placed shard keeps replica numbers of the old layout).
    assert [r.replica_id for r in node.replicas.values()] == ["n7/shard-0", "n7/shard-2"]
    other = StorageNode(StorageNodeSettings(shards=[0, 2], replica=1, node_id="n8"))
    ids = {r.replica_id for r in node.replicas.values()}
    assert ids.isdisjoint(r.replica_id for r in other.replicas.values())
    assert replica_id(default_node_id([3], 1), 3) == "storage-3-r1/shard-3"
    assert StorageNodeSettings().node_ttl_ms == 3000  # a killed node leaves the registry within ~3 s


def _serving(node: StorageNode) -> StorageNode:
    for replica in node.replicas.values():
        replica.caught_up = True  # as after the catch-up that follows start
    return node


def test_a_request_reaches_the_replica_of_its_shard(tmp_path: Path) -> None:
    node = _serving(StorageNode(StorageNodeSettings(shards=[0, 2], data_dir=tmp_path)))
    assert node.replica_for(2).shard == 2
    assert node.replicas[2].data_dir == tmp_path / "shard-2"
    with pytest.raises(InvalidRequest, match=r"hosts shards 0, 2; the request must name one"):
        node.replica_for(None)
    with pytest.raises(ShardNotHosted, match=r"shard 1 is not hosted .* it hosts shards 0, 2") as err:
        node.replica_for(1)
    # 503, so a caller with another replica of the shard tries it.
    assert isinstance(err.value, Unavailable) and err.value.details["hosted_shards"] == [0, 2]

    single = _serving(StorageNode(StorageNodeSettings(shards=[4], data_dir=tmp_path)))
    assert single.replica_for(None).shard == 4  # a request without a shard: the only one


def test_a_replica_still_catching_up_is_not_served(tmp_path: Path) -> None:
    """503 like a shard not hosted: the caller tries another replica of the shard."""
    node = StorageNode(StorageNodeSettings(shards=[0, 2], data_dir=tmp_path))
    node.replicas[0].caught_up = True
    assert node.serving_shards() == [0] and node.loading_shards() == [2]
    with pytest.raises(ShardNotHosted, match=r"shard 2 is still catching up .* it serves shards 0") as err:
        node.replica_for(2)
    assert err.value.details["state"] == "catching-up" and err.value.details["loading_shards"] == [2]
    with node.serving(0) as replica:
        assert replica.shard == 0

    empty = StorageNode(StorageNodeSettings(shards=[1], data_dir=tmp_path))
    empty.replicas.clear()  # a placement map that assigns the node nothing
    with pytest.raises(ShardNotHosted, match="hosts no shard"):
        empty.replica_for(None)
