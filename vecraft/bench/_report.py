"""Where benchmark output goes and how tables are written.

Each run writes ``bench/results/<name>-<scale>-<UTC time>.json`` (every raw
figure) and ``bench/reports/<name>.md`` (the latest run, committed); plots go
beside the report as ``bench/reports/<name>-*.png``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The repository's bench/ folder (reports are committed from there).
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "bench"


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a table: fixed digits, "-" for unknown."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are converted with ``str``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """NaN is not JSON: write it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_outputs(out_dir: Path, name: str, scale: str, result: dict[str, Any],
                  markdown: str) -> tuple[Path, Path]:
    """Write the JSON result and the markdown report; returns their paths."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = out_dir / "results"
    reports = out_dir / "reports"
    results.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    json_path = results / f"{name}-{scale}-{stamp}.json"
    json_path.write_text(json.dumps(_jsonable(result), indent=1, sort_keys=False) + "\n")
    md_path = reports / f"{name}.md"
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def plot_path(out_dir: Path, name: str, what: str) -> Path:
    reports = out_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    return reports / f"{name}-{what}.png"
