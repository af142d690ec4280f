"""How store values are encoded: JSON (readable with ``etcdctl get`` / ``sqlite3``).

Protobuf messages use the proto3 JSON mapping with the proto field names
(64-bit integers become strings, as the mapping says); a DDL record is a JSON
object embedding its schema the same way.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from vecraft.services.meta_manager.store.base import DdlRecord
from vecraft.shared.rpc.v1 import collection_pb2

M = TypeVar("M", bound=Message)


def message_to_obj(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def encode_message(msg: Message) -> bytes:
    return orjson.dumps(message_to_obj(msg), option=orjson.OPT_SORT_KEYS)


def decode_message(data: bytes | str, cls: type[M]) -> M:
    msg = cls()
    json_format.ParseDict(orjson.loads(data), msg, ignore_unknown_fields=True)
    return msg


def encode_record(record: DdlRecord) -> bytes:
    obj: dict[str, Any] = {
        "request_id": record.request_id, "offset": record.offset, "hlc": record.hlc,
        "kind": record.kind, "tenant": record.tenant, "name": record.name,
        "applied": record.applied,
    }
    if record.schema is not None:
        obj["schema"] = message_to_obj(record.schema)
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def decode_record(data: bytes | str) -> DdlRecord:
    obj = orjson.loads(data)
    schema = None
    if "schema" in obj:
        schema = collection_pb2.CollectionSchema()
        json_format.ParseDict(obj["schema"], schema, ignore_unknown_fields=True)
    return DdlRecord(request_id=obj["request_id"], offset=int(obj["offset"]), hlc=int(obj["hlc"]),
                     kind=int(obj["kind"]), tenant=obj["tenant"], name=obj["name"],
                     applied=bool(obj["applied"]), schema=schema)
