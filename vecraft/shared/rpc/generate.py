"""Regenerate the gRPC/protobuf stubs from ``proto/vecraft/v1/*.proto``.

Usage::

    python -m vecraft.shared.rpc.generate          # rewrite vecraft/shared/rpc/v1/
    python -m vecraft.shared.rpc.generate --check  # exit 1 if the committed stubs are stale

protoc writes ``from vecraft.v1 import x_pb2``; the stubs live in
``vecraft.shared.rpc.v1``, so imports are rewritten after generation. The
generator version is pinned in pyproject (``grpcio-tools==...``) because the
output embeds it, and the staleness test compares byte for byte.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_DIR = PROTO_ROOT / "vecraft" / "v1"
STUB_DIR = Path(__file__).resolve().parent / "v1"

_IMPORT_RE = re.compile(r"^from vecraft\.v1 import ", re.MULTILINE)


def generate(out_dir: Path) -> dict[str, str]:
    """Run protoc on every proto file; return {file name: text} of the stubs."""
    from grpc_tools import protoc  # test/dev dependency only

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_DIR.glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    files: dict[str, str] = {}
    for path in sorted((out_dir / "vecraft" / "v1").iterdir()):
        if path.suffix in (".py", ".pyi"):
            files[path.name] = _IMPORT_RE.sub("from vecraft.shared.rpc.v1 import ", path.read_text())
    files["__init__.py"] = '"""Generated protobuf and gRPC stubs (do not edit; see ../generate.py)."""\n'
    return files


def committed() -> dict[str, str]:
    if not STUB_DIR.exists():
        return {}
    return {p.name: p.read_text() for p in sorted(STUB_DIR.iterdir()) if p.suffix in (".py", ".pyi")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs are stale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
    if args.check:
        stale = sorted(set(fresh) ^ set(committed()) | {n for n in fresh if committed().get(n) != fresh[n]})
        if stale:
            print("stale generated stubs: " + ", ".join(stale), file=sys.stderr)
            print("run: python -m vecraft.shared.rpc.generate", file=sys.stderr)
            return 1
        return 0
    STUB_DIR.mkdir(parents=True, exist_ok=True)
    for old in STUB_DIR.iterdir():
        if old.suffix in (".py", ".pyi"):
            old.unlink()
    for name, text in fresh.items():
        (STUB_DIR / name).write_text(text)
    print(f"wrote {len(fresh)} files to {STUB_DIR.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
