"""The gateway's JSON response class: orjson, numpy arrays and pre-encoded JSON fragments.

Search results and records carry metadata that is already compact JSON text
(validated on write); it is embedded with ``orjson.Fragment`` instead of being
parsed and re-encoded. float32 values and arrays are written in their
shortest round-trip form (``0.95``, not ``0.949999988079071``).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class JSONResponse(_StarletteJSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS)


def fragment(json_text: str) -> orjson.Fragment | None:
    """Embed compact JSON text as is; None (JSON null) for ""."""
    return orjson.Fragment(json_text) if json_text else None
