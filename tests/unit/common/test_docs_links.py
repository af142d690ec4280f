"""README.md and docs/*.md point only at things that exist.

Checked: every relative markdown link (the file exists; a ``#anchor`` is a
heading of the target, by GitHub's slug rules) and every backticked
repository path (`vecraft/...py`, `tests/...`, `docs/...md`, `bench/...`,
...: a span whose first segment is a top-level directory of the repository).
Fenced code blocks are skipped: they hold commands and output, not references.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_DIRS = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
            and not p.name.endswith(".egg-info")}

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# A repository path: its segments are plain names (no placeholders such as <name> or *).
_PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)*/?$")
# A segment in capitals (NAME.md, NAME-SCALE-TIME.json) is a placeholder: the directory
# holding it must exist.
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_-]*(?:\.\w+)?$")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading's text: markup dropped, lower case, punctuation removed,
    spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = text.replace("`", "").strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in _prose_lines(path.read_text()):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _without_code_spans(line: str) -> str:
    return _CODE_SPAN.sub("", line)


def _broken_links(doc: Path) -> list[str]:
    problems = []
    for number, line in _prose_lines(doc.read_text()):
        for target in _LINK.findall(_without_code_spans(line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (doc.parent / path_part).resolve() if path_part else doc
            where = f"{_shown(doc)}:{number}: ({target})"
            if not dest.exists():
                problems.append(f"{where} {path_part} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{where} {_shown(dest)} has no heading #{anchor}")
    return problems


def _missing_paths(doc: Path) -> list[str]:
    problems = []
    for number, line in _prose_lines(doc.read_text()):
        for _, span in _CODE_SPAN.findall(line):
            # tests/x.py::test_name and file.py:123 name a file too.
            candidate = re.sub(r"(::\S*|:\d+)$", "", span.strip())
            if not _PATH.match(candidate) or candidate.split("/")[0] not in TOP_DIRS or "/" not in candidate:
                continue
            segments = candidate.rstrip("/").split("/")
            concrete = next((i for i, seg in enumerate(segments) if _PLACEHOLDER.match(seg)), len(segments))
            if not (ROOT / "/".join(segments[:concrete])).exists():
                problems.append(f"{_shown(doc)}:{number}: `{span}` does not exist")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    assert _broken_links(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_backticked_repository_paths_exist(doc: Path) -> None:
    assert _missing_paths(doc) == []


def test_no_doc_points_at_files_the_repository_does_not_have() -> None:
    """Named without a link or backticks, these once sent readers looking for nothing."""
    for doc in DOCS:
        text = doc.read_text()
        assert "DESIGN.md" not in text, doc.name
        assert "the kubernetes manifests" not in " ".join(text.lower().split()), doc.name


def test_slugs_follow_github() -> None:
    assert github_slug("Session tokens (read-your-writes)") == "session-tokens-read-your-writes"
    assert (github_slug("Delete — `DELETE /v1/vectors/{id}?collection=`")
            == "delete--delete-v1vectorsidcollection")
    assert github_slug("gRPC") == "grpc"
    assert github_slug("Batch insert — `POST /v1/vectors/batch`; batch upsert") == \
        "batch-insert--post-v1vectorsbatch-batch-upsert"


def test_the_checker_finds_what_it_should(tmp_path: Path) -> None:
    doc = ROOT / "docs" / "http-api.md"
    assert "conventions" in anchors(doc) and "grpc" in anchors(doc)
    (tmp_path / "http-api.md").write_text(doc.read_text())
    fake = tmp_path / "probe.md"
    fake.write_text("# Title\n\n[a](nope.md) [b](http-api.md#no-such) [c](#title) [d](http-api.md#grpc)\n"
                    "`vecraft/nope.py` `vecraft/cli.py` `docs/<name>.md` `wal/` `bench/NAME.md`\n"
                    "`nope/X/NAME.md`\n"
                    "```\n[e](gone.md)\n```\n")
    assert [p.split(": ", 1)[1] for p in _broken_links(fake)] == [
        "(nope.md) nope.md does not exist", "(http-api.md#no-such) http-api.md has no heading #no-such"]
    assert [p.split(": ", 1)[1] for p in _missing_paths(fake)] == ["`vecraft/nope.py` does not exist"]
    # nope/ is not a top-level directory, so that span is not read as a repository path.
