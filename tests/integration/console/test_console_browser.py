"""The web console in a real headless browser against a real ``vecraft up`` (2 shards x 2 replicas).

Playwright drives Debian's ``chromium`` (its own browser download is not used); the test skips, with
the reason, only when no chromium binary is found (``.ci/run`` installs it). It clicks through every
view: the overview (nodes, shards, partitions with their heads, replica lag, the consistency level
mix), collections (schema, counts, create and drop), records (filtered listing, get by id), the
search playground (a record's vector at ``strong``, a random one at ``bounded`` with a filter) and
the journal audit view (entries, where a request landed). No page error may occur on the way.

``VECRAFT_CONSOLE_SCREENSHOTS=DIR`` saves a screenshot of each view there (docs/images/ holds the
committed ones, taken this way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.console.conftest import QUERY_NODES, REPLICAS, ROWS, SHARDS, STORAGE_NODES
from tests.support.cluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str | None:
    explicit = os.environ.get("VECRAFT_CHROMIUM")
    if explicit:
        return explicit
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _chromium()
    if path is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set VECRAFT_CHROMIUM); "
                    ".ci/run installs it")
    return path


def _overview(cluster: LocalCluster) -> dict[str, Any]:
    answer = httpx.get(f"{cluster.endpoint}/v1/cluster/overview", timeout=30.0)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _value(dl: Any, term: str) -> Any:
    """The <dd> after the <dt> reading ``term`` in a definition list."""
    return dl.locator("dt", has_text=term).locator("xpath=following-sibling::dd[1]")


def test_every_view_of_the_console(chromium: str, cluster: LocalCluster, seed_request_id: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = os.environ.get("VECRAFT_CONSOLE_SCREENSHOTS")
    overview = _overview(cluster)
    available = overview["cluster"]["available"]
    errors: list[str] = []

    def shot(name: str) -> None:
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"console-{name}.png"), full_page=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
        try:
            # --- overview -------------------------------------------------------------------------------
            page.goto(f"{cluster.endpoint}/console/")
            expect(page.get_by_role("heading", name="Cluster overview")).to_be_visible()
            partitions = page.get_by_test_id("partitions")
            head = next(p for p in overview["partitions"] if p["partition"] == "data-0")["head_offset"]
            expect(partitions.locator("tr", has_text="data-0")).to_contain_text(str(head))
            expect(partitions.locator("tr", has_text="system")).to_be_visible()
            levels = page.get_by_test_id("levels")
            for level in ("eventual", "bounded", "read_your_writes", "strong"):
                expect(levels.locator("tr", has_text=level)).to_be_visible()
            if available:
                nodes = 1 + STORAGE_NODES + QUERY_NODES
                expect(page.get_by_test_id("nodes").locator("tbody tr")).to_have_count(nodes)
                expect(page.get_by_test_id("shards").locator("tbody tr")).to_have_count(SHARDS)
                expect(page.get_by_test_id("replicas").locator("tbody tr")).to_have_count(SHARDS * REPLICAS)
                expect(page.get_by_test_id("caches").locator("tbody tr")).to_have_count(QUERY_NODES)
                summary = page.get_by_test_id("summary")
                nodes_stat = summary.locator(".stat", has_text="storage nodes")
                expect(nodes_stat.locator("strong")).to_have_text(str(STORAGE_NODES))
                replicas_stat = summary.locator(".stat", has_text="storage replicas")
                expect(replicas_stat.locator("strong")).to_have_text(str(SHARDS * REPLICAS))
            else:
                expect(page.get_by_text("Cluster view not available")).to_be_visible()
            shot("overview")

            # --- collections ----------------------------------------------------------------------------
            page.get_by_role("link", name="Collections").click()
            collections = page.get_by_test_id("collections")
            papers = collections.locator("tr", has_text="papers")
            expect(papers).to_contain_text("cosine")
            if available:
                expect(papers.locator("td").nth(5)).to_have_text(str(ROWS))
            form = page.get_by_test_id("create-collection")
            form.get_by_label("name").fill("scratch")
            form.get_by_label("dim").fill("4")
            form.get_by_label("metric").select_option("l2")
            form.get_by_role("button", name="Create collection").click()
            expect(page.get_by_text("Created collection scratch")).to_be_visible()
            scratch = collections.locator("tr", has_text="scratch")
            expect(scratch).to_contain_text("l2")
            papers.get_by_role("link", name="papers").click()
            expect(page.get_by_test_id("schema")).to_contain_text('"ef_construction": 200')
            shot("collections")
            scratch.get_by_role("button", name="Drop").click()
            page.get_by_role("button", name="Confirm drop of scratch").click()
            expect(page.get_by_text("Dropped collection scratch")).to_be_visible()
            expect(scratch).to_have_count(0)

            # --- records --------------------------------------------------------------------------------
            papers.get_by_role("button", name="Browse").click()
            expect(page.get_by_role("heading", name="Records")).to_be_visible()
            records = page.get_by_test_id("records")
            expect(records.locator("tbody tr")).to_have_count(20)
            expect(records.locator("tbody tr").first).to_contain_text("paper-000")
            page.get_by_test_id("filter").fill('{"category": "images", "year": {"$gte": 2020}}')
            page.get_by_role("button", name="List", exact=True).click()
            expected = [i for i in range(ROWS) if i % 3 == 1 and 2016 + i % 10 >= 2020]
            expect(records.locator("tbody tr")).to_have_count(len(expected))
            expect(records.locator("tbody tr").first).to_contain_text(f"paper-{expected[0]:03d}")
            page.get_by_test_id("get-id").fill("paper-003")
            page.get_by_role("button", name="Get", exact=True).click()
            record = page.get_by_test_id("record")
            expect(record).to_contain_text('"title": "Paper 3"')
            expect(record).to_contain_text("Abstract of paper 3.")
            shot("records")

            # --- search ---------------------------------------------------------------------------------
            record.get_by_role("button", name="Search similar").click()
            expect(page.get_by_role("heading", name="Search playground")).to_be_visible()
            expect(page.get_by_test_id("vector")).not_to_have_value("")
            search = page.get_by_test_id("search-form")
            search.get_by_label("consistency level").select_option("strong")
            search.get_by_role("button", name="Search", exact=True).click()
            info = page.get_by_test_id("consistency-info")
            expect(_value(info, "level achieved")).to_have_text("strong")
            expect(page.get_by_test_id("results").locator("tbody tr").first).to_contain_text("paper-003")
            search.get_by_role("button", name="Random").click()
            page.get_by_test_id("filters").fill('{"category": "audio"}')
            search.get_by_label("consistency level").select_option("bounded")
            search.get_by_label("max staleness (ms)").fill("500")
            search.get_by_label("k", exact=True).fill("5")
            search.get_by_role("button", name="Search", exact=True).click()
            expect(_value(info, "level requested")).to_have_text("bounded")
            expect(_value(info, "max allowed staleness")).to_have_text("500 ms")
            results = page.get_by_test_id("results").locator("tbody tr")
            expect(results).to_have_count(5)
            for i in range(5):
                expect(results.nth(i)).to_contain_text('"category":"audio"')
            shot("search")

            # --- journal audit --------------------------------------------------------------------------
            page.get_by_role("link", name="Journal").click()
            journal = page.get_by_test_id("journal")
            seed = journal.locator("tr", has_text=seed_request_id)
            expect(seed).to_contain_text(f"papers · {ROWS} row(s)")
            expect(journal.locator("tr", has_text="drop_collection")).to_contain_text("scratch")
            page.get_by_test_id("request-id").fill(seed_request_id)
            page.get_by_role("button", name="Find").click()
            expect(page.get_by_test_id("operation")).to_contain_text("storage-0/shard-0")
            shot("journal")
        finally:
            browser.close()
    assert not errors, errors
