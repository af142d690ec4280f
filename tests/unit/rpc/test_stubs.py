"""Committed stubs are fresh, and the spec's search contract is exactly what the descriptors say."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from vecraft.shared.rpc import generate
from vecraft.shared.rpc.v1 import search_pb2

pytestmark = pytest.mark.unit

F = FieldDescriptor


def test_committed_stubs_are_not_stale(capsys: pytest.CaptureFixture[str]) -> None:
    rc = generate.main(["--check"])
    assert rc == 0, capsys.readouterr().err


def test_check_mode_detects_an_edited_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "v1"
    shutil.copytree(generate.STUB_DIR, stale)
    with open(stale / "search_pb2.pyi", "a") as f:
        f.write("# edited by hand\n")
    monkeypatch.setattr(generate, "STUB_DIR", stale)
    assert generate.main(["--check"]) == 1


def _fields(message: str) -> dict[int, tuple[str, int, bool, str | None]]:
    """{number: (name, type, repeated, message/enum type full name)} of one message."""
    desc = search_pb2.DESCRIPTOR.message_types_by_name[message]
    out = {}
    for f in desc.fields:
        sub = f.message_type or f.enum_type
        out[f.number] = (f.name, f.type, f.is_repeated, sub.full_name if sub else None)
    return out


def test_search_request_matches_spec() -> None:
    fields = _fields("SearchRequest")
    assert fields[1] == ("vector", F.TYPE_FLOAT, True, None)
    assert fields[2] == ("k", F.TYPE_INT32, False, None)
    assert fields[3] == ("consistency_level", F.TYPE_ENUM, False, "vecraft.v1.ConsistencyLevel")
    assert fields[4] == ("max_staleness_ms", F.TYPE_INT64, False, None)
    assert fields[5] == ("min_required_offset", F.TYPE_INT64, False, None)
    name, ftype, repeated, _ = fields[6]
    assert (name, ftype, repeated) == ("filters", F.TYPE_MESSAGE, True)
    entry_desc = search_pb2.DESCRIPTOR.message_types_by_name["SearchRequest"].fields_by_name["filters"]
    assert entry_desc.message_type.GetOptions().map_entry
    entry_fields = entry_desc.message_type.fields_by_name
    key, value = entry_fields["key"], entry_fields["value"]
    assert (key.type, value.type) == (F.TYPE_STRING, F.TYPE_STRING)
    # Extensions keep the spec's numbers intact: everything else is numbered above 6.
    assert all(n > 6 for n in fields if n not in range(1, 7))


def test_search_response_matches_spec() -> None:
    fields = _fields("SearchResponse")
    assert fields[1] == ("results", F.TYPE_MESSAGE, True, "vecraft.v1.ScoredVector")
    assert fields[2] == ("consistency_info", F.TYPE_MESSAGE, False, "vecraft.v1.ConsistencyInfo")
    assert all(n > 2 for n in fields if n not in (1, 2))


def test_consistency_info_matches_spec() -> None:
    level = "vecraft.v1.ConsistencyLevel"
    assert _fields("ConsistencyInfo") == {
        1: ("level_requested", F.TYPE_ENUM, False, level),
        2: ("level_achieved", F.TYPE_ENUM, False, level),
        3: ("staleness_ms", F.TYPE_INT64, False, None),
        4: ("max_allowed_staleness_ms", F.TYPE_INT64, False, None),
        5: ("index_version_used", F.TYPE_INT64, False, None),
        6: ("cache_hit", F.TYPE_BOOL, False, None),
        7: ("sync_performed", F.TYPE_BOOL, False, None),
    }


def test_consistency_level_enum_matches_spec() -> None:
    enum = search_pb2.DESCRIPTOR.enum_types_by_name["ConsistencyLevel"]
    assert {v.name: v.number for v in enum.values} == {
        "EVENTUAL": 0, "BOUNDED_STALENESS": 1, "READ_YOUR_WRITES": 2, "STRONG": 3}


def test_vector_search_service_matches_spec() -> None:
    service = search_pb2.DESCRIPTOR.services_by_name["VectorSearchService"]
    assert service.full_name == "vecraft.v1.VectorSearchService"
    search = service.methods_by_name["Search"]
    assert search.input_type.full_name == "vecraft.v1.SearchRequest"
    assert search.output_type.full_name == "vecraft.v1.SearchResponse"
    assert not search.client_streaming and not search.server_streaming
