"""A record's metadata as the indexes keep it: the compact JSON text it travels as.

A row keeps this text rather than the parsed object (a dict per row costs several times
the text, and each hit would encode it again); it is parsed where a filter index needs
the values (once per row applied, snapshot loaded or graph rebuilt).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson


def metadata_to_json(metadata: Mapping[str, Any] | None) -> str:
    """The wire form of a record's metadata ("" for none)."""
    if not metadata:
        return ""
    try:
        return orjson.dumps(metadata).decode()
    except TypeError:  # integers beyond 64 bits
        return json.dumps(metadata, separators=(",", ":"))


def parse_metadata(text: str) -> dict[str, Any] | None:
    """The object of a text :func:`metadata_to_json` wrote (None for "")."""
    if not text:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:  # orjson refuses integers beyond 64 bits; the standard parser takes them
        value = json.loads(text)
    return value if isinstance(value, dict) else None
