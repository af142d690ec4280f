"""Where benchmark output goes and how tables are written.

Each run writes ``OUT/results/<name>-<scale>-<UTC time>.json`` (every raw
figure) and ``OUT/reports/<name>.md`` (the latest run); plots go beside the
report as ``OUT/reports/<name>-*.png``. ``OUT`` is ``--out DIR``, by default
``./vecraft-bench-results`` in the current directory, so a user's run never
overwrites the reports committed in the repository's ``bench/reports/``
(``--out bench`` in a checkout refreshes those). ``--no-report`` writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The repository's bench/ folder: the committed reports (written only with ``--out bench``).
REPO_BENCH = Path(__file__).resolve().parents[2] / "bench"
#: Where a run writes unless ``--out`` says otherwise: relative to the current directory.
DEFAULT_OUT = Path("vecraft-bench-results")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The output flags every ``vecraft bench`` subcommand shares: ``--out DIR`` and ``--no-report``."""
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for results/ (raw JSON) and reports/ (markdown, plots); default "
                             f"./{DEFAULT_OUT} in the current directory. `--out bench` in a checkout "
                             f"refreshes the committed reports")
    parser.add_argument("--no-report", action="store_true",
                        help="print the results only; write no files")


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
