"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright (no browser download)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from harness.report import main
from harness.results import FORMAT, VERSION

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install chromium (.ci/run does)"
)

CAUSE = "NotImplementedError: No registered serialization name for <class 'Pair'>"
TESTS = [
    ("t.py::test_ok", {"strict": "passed", "cpp_serdes": "passed", "serdes_strict": "passed"}),
    ("t.py::test_pair", {"strict": "passed", "cpp_serdes": "failed", "serdes_strict": "failed"}),
    ("t.py::test_known", {"strict": "xfailed", "cpp_serdes": "passed", "serdes_strict": "passed"}),
    ("t.py::test_skip", {"strict": "skipped", "cpp_serdes": "skipped", "serdes_strict": "skipped"}),
]


def _records() -> list[dict[str, Any]]:
    records = []
    for test, outcomes in TESTS:
        for wrapper, outcome in outcomes.items():
            failed = outcome in ("failed", "xfailed")
            records.append(
                {
                    "test": test,
                    "wrapper": wrapper,
                    "outcome": outcome,
                    "stage": "serialize" if failed else None,
                    "cause": CAUSE if failed else None,
                    "duration": 0.1,
                }
            )
    return records


QUICK = {"paths": ["t.py"], "markexpr": "quick"}
DYNAMIC = {"paths": ["t.py"], "keyword": "dynamic"}


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A results directory with the run reported (the newest) and an older run of another selection."""
    results = tmp_path / "results"
    results.mkdir()
    document = {
        "format": FORMAT, "version": VERSION, "run": "matrix", "torch": "2.13.0", "selection": QUICK,
        "created": "2026-01-02T00:00:00+00:00", "tests": _records(),
    }
    (results / "matrix.json").write_text(json.dumps(document))
    older = {**document, "run": "strict", "selection": DYNAMIC, "created": "2026-01-01T00:00:00+00:00",
             "tests": [{"test": "t.py::test_dynamic", "wrapper": "strict", "outcome": "failed"}]}
    (results / "strict-dynamic.json").write_text(json.dumps(older))
    assert main([str(results), "--out", str(tmp_path / "reports")]) == 0
    return tmp_path / "reports" / "report.html"


@pytest.fixture
def page() -> Iterator[Page]:
    # launch() gives the browser a fresh temporary profile (Playwright refuses --user-data-dir here).
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 800})
        finally:
            browser.close()


def visible_tests(page: Page) -> list[str]:
    return page.locator("#rows tr:not(.hidden) td.t").all_text_contents()


def test_filters_cause_and_screenshot(page: Page, report: Path, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(report.as_uri())
    assert page.text_content("#count") == "4 of 4 tests shown"
    assert visible_tests(page) == sorted(test for test, _ in TESTS)

    page.select_option("#f-outcome", label="failed")
    assert visible_tests(page) == ["t.py::test_pair"]
    assert page.text_content("#count") == "1 of 4 tests shown"

    # The cause: on hover (title) and on click (detail panel).
    cell = page.locator("#rows tr:not(.hidden) td.c.o-failed").first
    assert CAUSE in (cell.get_attribute("title") or "")
    cell.click()
    detail = page.locator("#detail")
    assert detail.is_visible()
    assert f"cause:    {CAUSE}" in (detail.text_content() or "")
    assert "stage:    serialize" in (detail.text_content() or "")

    # One wrapper: its column only, rows by its outcome.
    page.select_option("#f-outcome", label="any")
    page.select_option("#f-wrapper", label="strict")
    assert page.locator("#head th:not(.hidden)").all_text_contents() == ["test", "strict"]
    page.select_option("#f-outcome", label="xfailed")
    assert visible_tests(page) == ["t.py::test_known"]

    # Text matches test ids and causes.
    page.select_option("#f-wrapper", label="all")
    page.select_option("#f-outcome", label="any")
    page.fill("#f-text", "serialization name")
    assert visible_tests(page) == ["t.py::test_known", "t.py::test_pair"]
    page.fill("#f-text", "test_sk")
    assert visible_tests(page) == ["t.py::test_skip"]

    # Which files were merged, and the one of another selection left out (folded until asked).
    assert "-m quick (the newest results file's selection); 1 file(s) merged" in (page.text_content("#selection") or "")
    assert not page.locator("#files li", has_text="strict-dynamic.json").is_visible()
    page.click("#files summary")
    left_out = page.locator("#files li", has_text="strict-dynamic.json")
    assert left_out.is_visible() and "-k dynamic" in (left_out.text_content() or "")

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert errors == []
