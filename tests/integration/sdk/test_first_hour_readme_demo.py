"""The README's lag demo (issue 15 item 5), run as written against `vecraft up --apply-delay-ms 1000`.

With ``ack=journal`` the insert is answered before the delayed replicas apply
it: an eventual search misses it, a strong one finds it. The same insert with
the default ``ack=all`` waits for the replicas, and eventual then finds it (the
reason the demo says ``ack=journal``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    running = LocalCluster(tmp_path_factory.mktemp("demo") / "data", shards=1, apply_delay_ms=1000).start()
    yield running
    assert running.stop() == 0, running.tail()


def test_readme_lag_demo_prints_what_it_says(cluster: LocalCluster,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    demo = next(b for b in blocks if "lagdemo" in b)
    expected = [line.split("#", 1)[1].split("  ")[0].strip() for line in demo.splitlines()
                if line.startswith("# ")]
    code = demo.replace('"http://127.0.0.1:8000"', repr(cluster.endpoint))
    exec(compile(code, "README.md (lag demo)", "exec"), {})  # the README's own code
    printed = capsys.readouterr().out.splitlines()
    assert printed == expected == ["eventual []", "strong ['fresh']"]


def test_with_the_default_ack_eventual_sees_the_write(cluster: LocalCluster) -> None:
    client = VecraftClient(endpoint=cluster.endpoint)
    client.create_collection("acked", dim=2)
    started = time.monotonic()
    client.insert_vector([1.0, 0.0], id="waited", collection="acked")
    assert time.monotonic() - started >= 0.8, "ack=all waits for the delayed replicas"
    hits = client.vector_search([1.0, 0.0], k=5, collection="acked", consistency_level="eventual").results
    assert [h.id for h in hits] == ["waited"]
