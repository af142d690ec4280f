"""Where and how a benchmark ran: machine, versions, command, git commit.

Every report starts with this, because a latency figure without the machine
and the command that produced it cannot be compared with anything.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

#: Distributions whose versions matter for the figures.
_PACKAGES = ("vecraft", "numpy", "faiss-cpu", "grpcio", "protobuf", "fastapi", "uvicorn", "httptools",
             "uvloop", "httpx", "orjson", "chromadb", "milvus-lite", "pymilvus", "matplotlib")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape the figures ("-" when absent)."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def git_commit() -> str:
    """HEAD of the checkout the code runs from, with ``+dirty`` if it has changes; "-" outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "-"
    return head + ("+dirty" if dirty else "")


def environment(benchmark: str, argv: list[str]) -> dict[str, Any]:
    """A JSON-ready description of this run's machine and software."""
    mem = psutil.virtual_memory()
    return {
        "benchmark": benchmark,
        "command": "vecraft bench " + shlex.join([benchmark, *argv]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(),
                    "ram_gib": round(mem.total / 2**30, 1), "os": platform.platform(),
                    "python": sys.version.split()[0],
                    # Other work on the machine skews every figure: record how busy it was.
                    "load_average_1m_at_start": round(os.getloadavg()[0], 2)},
        "versions": versions(),
        "git_commit": git_commit(),
    }


def environment_markdown(env: dict[str, Any]) -> str:
    """The environment as the opening block of a report."""
    m = env["machine"]
    vers = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v != "-")
    return "\n".join([
        f"- Command: `{env['command']}`",
        f"- Started: {env['started_at']} (git {env['git_commit']})",
        (f"- Machine: {m['cpu_model']}, {m['logical_cores']} logical cores, {m['ram_gib']} GiB RAM, "
        f"{m['os']}, Python {m['python']}; load average at start {m['load_average_1m_at_start']}"),
        f"- Versions: {vers}",
    ])
