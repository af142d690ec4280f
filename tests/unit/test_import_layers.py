"""The import rules of docs/architecture.md, checked on the source (generated stubs excluded).

Each rule lists its known exceptions by name; a new import that breaks a rule fails here, and
an exception that disappears must be taken off its list (so the lists only shrink).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

#: What one service may import of another: its client, or a format it publishes.
PUBLISHED = {
    "vecraft.services.meta_manager.api_keys",
    "vecraft.services.meta_manager.quotas",
    # The backup layout a storage node writes and seeds from, and the archive the compactor
    # reads its horizon from.
    "vecraft.services.snapshot_service.target",
    "vecraft.services.snapshot_service.layout",
    "vecraft.services.snapshot_service.backups",
    "vecraft.services.snapshot_service.shards",
    "vecraft.services.snapshot_service.archive",
    # The local journal's files, which a restore writes (entries with their original offsets).
    "vecraft.services.journal_service.wal.records",
    "vecraft.services.journal_service.wal.segments",
}

#: Imports from services/ into local/ (a data directory's plan): `vecraft restore` gives a restored
#: directory one.
SERVICE_TO_LOCAL = {("vecraft.services.snapshot_service.cli", "vecraft.local.topology"),
                    ("vecraft.services.snapshot_service.restore", "vecraft.local.topology")}



def _modules() -> dict[str, set[str]]:
    """module -> the vecraft / vecraft_client modules it imports (absolute imports only)."""
    graph: dict[str, set[str]] = {}
    for top in ("vecraft", "vecraft_client"):
        for path in (ROOT / top).rglob("*.py"):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            imported: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    imported.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module)
                    imported.update(f"{node.module}.{a.name}" for a in node.names)
            graph[name] = {m for m in imported if m.split(".")[0] in ("vecraft", "vecraft_client")}
    return graph


GRAPH = _modules()


def _package(module: str) -> str:
    """The unit of the layering: vecraft.shared.<x>, vecraft.services.<role>, or the top folder."""
    parts = module.split(".")
    if parts[0] == "vecraft_client":
        return "vecraft_client"
    depth = 3 if len(parts) > 2 and parts[1] in ("shared", "services") else 2
    if parts[:4] == ["vecraft", "shared", "rpc", "v1"]:
        depth = 4  # the generated stubs: a leaf under everything, the conversions beside them included
    return ".".join(parts[:depth])


def _existing(module: str) -> str:
    """``module`` or, for ``from package import name`` of a non-module name, its package."""
    return module if module in GRAPH else module.rpartition(".")[0]


def _imports(prefix: str) -> list[tuple[str, str]]:
    return sorted((src, _existing(dst)) for src, dsts in GRAPH.items() if src.startswith(prefix)
                  for dst in dsts if _existing(dst) in GRAPH)


def _under(module: str, *packages: str) -> bool:
    """``module`` is one of ``packages`` or inside one (``vecraft.cli`` is not ``vecraft.clients``)."""
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_graph_is_read() -> None:
    assert len(GRAPH) > 100
    assert "vecraft.clients.journal" in GRAPH["vecraft.services.storage_node.main"]


def test_shared_code_imports_no_service_no_local_and_no_cli() -> None:
    bad = [(s, d) for s, d in _imports("vecraft.shared.")
           if _under(d, "vecraft.services", "vecraft.local", "vecraft.cli", "vecraft.bench")]
    assert bad == []


def test_the_service_shell_imports_nothing_of_the_domain() -> None:
    bad = [(s, d) for s, d in _imports("vecraft.shared.common") if d.startswith("vecraft.shared.model")]
    assert bad == []


def test_the_sdk_imports_only_shared_code() -> None:
    bad = [(s, d) for s, d in _imports("vecraft_client")
           if d.startswith("vecraft.") and not d.startswith("vecraft.shared.")]
    assert bad == []


def test_clients_import_only_shared_code() -> None:
    bad = [(s, d) for s, d in _imports("vecraft.clients")
           if d.startswith("vecraft.") and not _under(d, "vecraft.shared", "vecraft.clients")]
    assert bad == []


def test_services_import_other_services_only_through_what_they_publish() -> None:
    bad = [(s, d) for s, d in _imports("vecraft.services.")
           if d.startswith("vecraft.services.") and _package(s) != _package(d) and d not in PUBLISHED]
    assert bad == []


def test_services_do_not_import_local_cli_or_bench() -> None:
    bad = {(s, d) for s, d in _imports("vecraft.services.")
           if _under(d, "vecraft.local", "vecraft.cli", "vecraft.bench")}
    assert bad == SERVICE_TO_LOCAL


def test_no_cycles_between_packages() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for src, dsts in GRAPH.items():
        for dst in dsts:
            a, b = _package(src), _package(_existing(dst))
            if a != b and b != "vecraft":
                edges[a].add(b)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(edges.get(node, ()))
        return False

    cycles = {frozenset({a, b}) for a in edges for b in edges[a] if reaches(b, a)}
    assert cycles == set()
