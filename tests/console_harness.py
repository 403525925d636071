"""The console's browser tests' world: one `citywarn run --demo` whose day is replayed, Debian's Chromium
driven by Playwright, and the few steps every test takes (sign in, read the list, read the API).

Playwright never downloads a browser here: it drives /usr/bin/chromium, which `make services` installs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.pipeline_harness import DemoRun, demo_run, wait_until

CHROMIUM = Path("/usr/bin/chromium")
OPEN = ("pending", "active", "acknowledged")
ACTABLE = ("pending", "active")  # statuses an acknowledgement takes a warning out of
DAY_REPLAYED = "the day is replayed"  # demo.live logs it once the whole day is sent to the broker
LEVEL_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}

T = TypeVar("T")


@dataclass(frozen=True)
class ConsoleDemo:
    """The demo the console is tested on: its address, its admin key and a viewer key made with it."""

    run: DemoRun
    viewer_key: str

    @property
    def base(self) -> str:
        return self.run.base

    @property
    def admin_key(self) -> str:
        return self.run.key

    @property
    def console(self) -> str:
        return f"{self.base}/console"

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(f"{self.base}{path}", params=params, headers=self.run.admin, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def warnings(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("/v1/warnings", limit=500)["items"]
        return items

    def open_warnings(self) -> dict[str, dict[str, Any]]:
        """The warnings not resolved, by id: what the console's list must show."""
        return {w["id"]: w for w in self.warnings() if w["status"] in OPEN}

    def actable_warning(self, *, besides: Collection[str] = ()) -> dict[str, Any]:
        """A grid warning an acknowledgement would change, that no silence mutes."""
        found = [
            w
            for w in self.warnings()
            if w["status"] in ACTABLE and not w.get("muted_by") and w["id"] not in besides
        ]
        grid = [w for w in found if w["area"].startswith("g-")]
        assert grid or found, f"no warning left to acknowledge: {self.warnings()}"
        return (grid or found)[0]

    def act(self, warning_id: str, verb: str) -> dict[str, Any]:
        resp = httpx.post(
            f"{self.base}/v1/warnings/{warning_id}/{verb}",
            json={"note": "from the browser tests, through the API"},
            headers=self.run.admin,
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        answer: dict[str, Any] = resp.json()
        return answer

    def areas(self) -> dict[str, dict[str, Any]]:
        """Every area on the map (districts and grids) by id, with its properties (name, name_zh...)."""
        return {f["properties"]["id"]: f["properties"] for f in self.get("/v1/areas")["features"]}

    def grids(self) -> dict[str, dict[str, Any]]:
        return {a: props for a, props in self.areas().items() if props["level"] == "grid"}


@contextmanager
def console_demo(cwd: Path) -> Iterator[ConsoleDemo]:
    """`citywarn run --demo` once its day is replayed (its warnings made, nothing changing on its own for
    the next five minutes), with a viewer key made by the admin through POST /v1/keys."""
    with demo_run(cwd) as run:
        wait_until(lambda: _day_consumed(run), timeout_s=120, what="the demo's day replayed and consumed")
        run.assert_alive()
        made = httpx.post(
            f"{run.base}/v1/keys",
            json={"role": "viewer", "label": "wall screen"},
            headers=run.admin,
            timeout=10,
        )
        assert made.status_code == 201, made.text
        demo = ConsoleDemo(run, made.json()["token"])
        assert demo.open_warnings(), f"the demo replayed its day with no open warning:\n{run.tail()}"
        yield demo


def _day_consumed(run: DemoRun) -> bool:
    """The whole day is in the broker and every consumer has committed it: the warnings it makes exist."""
    if DAY_REPLAYED not in run.log.read_text():
        return False
    consumers = httpx.get(f"{run.base}/readyz", timeout=5).json()["consumers"]
    return bool(consumers) and all(c["lag"] == 0 for c in consumers.values())


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium under Playwright; a clear failure (not a skip) when it is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Debian's Chromium is not installed at {CHROMIUM}: run `make services` "
            "(it installs the chromium package; CI does the same)",
            pytrace=False,
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, demo: ConsoleDemo, key: str) -> None:
    """Open the console, sign in with ``key`` and wait for the list to be there."""
    page.goto(demo.console)
    page.get_by_test_id("signin-key").fill(key)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("whoami")).to_be_visible()
    expect(page.get_by_test_id("warning-row").first).to_be_visible(timeout=15_000)


def row(page: Page, warning_id: str) -> Locator:
    return page.locator(f'[data-testid="warning-row"][data-warning-id="{warning_id}"]')


def rows_shown(page: Page) -> dict[str, str]:
    """Every row of the list: warning id -> its data-status."""
    pairs: list[list[str]] = page.eval_on_selector_all(
        '[data-testid="warning-row"]', "rows => rows.map(r => [r.dataset.warningId, r.dataset.status])"
    )
    return dict((wid, status) for wid, status in pairs)


def eventually(observe: Callable[[], T], holds: Callable[[T], bool], *, timeout_s: float, what: str) -> T:
    """Observe until ``holds``; on time-out fail showing the last observation (the list and the API both
    move, so neither is read once)."""
    deadline = time.monotonic() + timeout_s
    while not holds(seen := observe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s; last seen: {seen!r}")
        time.sleep(0.2)
    return seen


def mark_page(page: Page) -> None:
    """A marker on window that only a navigation or a reload would remove."""
    page.evaluate("window.__consoleTestMarker = 'still here'")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__consoleTestMarker") == "still here", "the page navigated or reloaded"


def case_insensitive(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text), re.IGNORECASE)
