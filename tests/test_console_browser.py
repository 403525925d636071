"""The operator console in a real browser (issue 13, what must hold), on one `citywarn run --demo`:
Debian's Chromium signs in with the demo's key, sees the demo's warnings in the list and on the map, opens
one from the keyboard and acknowledges it without a reload, switches to Chinese, sees nothing to act on
with a viewer key, follows a change made through the API live, creates and ends a silence, fits a
1366x768 screen, and never asks any host but the service for anything.

Every test leaves a screenshot of its page in the run's temporary folder (console-screenshots*/).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.console_harness import (
    LEVEL_ZH,
    ConsoleDemo,
    assert_not_reloaded,
    case_insensitive,
    chromium,
    console_demo,
    eventually,
    mark_page,
    row,
    rows_shown,
    sign_in,
)

expect.set_options(timeout=10_000)
SCREEN: ViewportSize = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def demo(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDemo]:
    """One demo for the module; it asks for the browser first so a missing Chromium fails at once."""
    with console_demo(tmp_path_factory.mktemp("console-demo")) as d:
        yield d


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


@dataclass
class Session:
    """A fresh browser context at 1366x768, with every URL it requested."""

    page: Page
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def session(browser: Browser, screenshots: Path, request: pytest.FixtureRequest) -> Iterator[Session]:
    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    page.set_default_timeout(10_000)
    got = Session(page)
    context.on("request", lambda r: got.requests.append(r.url))
    page.on("websocket", lambda ws: got.requests.append(ws.url))
    page.on("dialog", lambda d: d.accept())  # a confirm() before an action is the officer saying yes
    try:
        yield got
    finally:
        try:
            page.screenshot(path=screenshots / f"{request.node.name}.png", full_page=True)
        finally:
            context.close()


def test_the_console_is_served_as_html_without_a_key(demo: ConsoleDemo, session: Session) -> None:
    resp = httpx.get(demo.console, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    session.page.goto(demo.console)
    expect(session.page.get_by_test_id("signin")).to_be_visible()
    expect(session.page.get_by_test_id("signin-key")).to_have_attribute("type", "password")


def test_signed_in_the_demos_open_warnings_are_listed_and_on_the_map(
    demo: ConsoleDemo, session: Session
) -> None:
    page = session.page
    sign_in(page, demo, demo.admin_key)

    def listed_and_open() -> tuple[dict[str, str], dict[str, str]]:
        shown = {wid: status for wid, status in rows_shown(page).items() if status != "resolved"}
        return shown, {wid: w["status"] for wid, w in demo.open_warnings().items()}

    eventually(listed_and_open, lambda seen: seen[0] == seen[1], timeout_s=15, what="rows == open warnings")

    warnings = demo.open_warnings()
    some = next(iter(warnings.values()))
    expect(row(page, some["id"])).to_have_attribute("data-level", some["level"])
    expect(row(page, some["id"]).get_by_test_id("row-level")).to_contain_text(case_insensitive(some["level"]))

    areas = demo.areas()
    expect(page.get_by_test_id("map-area")).to_have_count(len(areas))
    warned = {w["area"] for w in warnings.values() if w["area"] in areas}
    assert warned, f"no open warning is on a mapped area: {warnings}"
    for area in warned:
        expect(page.locator(f'[data-testid="map-area"][data-area-id="{area}"]')).not_to_have_attribute(
            "data-level", "none"
        )
    # A grid in a district with no open warning at all is not shaded.
    warned_districts = {a if areas[a]["level"] == "district" else areas[a]["parent"] for a in warned}
    quiet = next(a for a, p in areas.items() if p["level"] == "grid" and p["parent"] not in warned_districts)
    expect(page.locator(f'[data-testid="map-area"][data-area-id="{quiet}"]')).to_have_attribute(
        "data-level", "none"
    )


def test_a_warning_opened_from_the_keyboard_is_acknowledged_without_a_reload(
    demo: ConsoleDemo, session: Session
) -> None:
    page = session.page
    sign_in(page, demo, demo.admin_key)
    mark_page(page)
    warning = demo.actable_warning()
    listed = row(page, warning["id"])
    expect(listed).to_have_attribute("data-status", warning["status"])

    listed.focus()
    page.keyboard.press("Enter")
    detail = page.get_by_test_id("warning-detail")
    expect(detail).to_have_attribute("data-warning-id", warning["id"])
    timeline = page.get_by_test_id("timeline-item")
    expect(timeline.first).to_be_visible()
    before = timeline.count()
    page.get_by_test_id("action-acknowledge").click()

    expect(page.get_by_test_id("detail-status")).to_have_text(case_insensitive("acknowledged"))
    expect(listed).to_have_attribute("data-status", "acknowledged")
    expect(listed.get_by_test_id("row-status")).to_contain_text(case_insensitive("acknowledged"))
    expect(timeline).to_have_count(before + 1)
    assert demo.get(f"/v1/warnings/{warning['id']}")["status"] == "acknowledged"
    assert_not_reloaded(page)


def test_switching_to_chinese_changes_the_page_labels_and_area_names(
    demo: ConsoleDemo, session: Session
) -> None:
    page = session.page
    sign_in(page, demo, demo.admin_key)
    areas = demo.areas()
    warning = next(w for w in demo.open_warnings().values() if areas.get(w["area"], {}).get("name_zh"))
    area = areas[warning["area"]]
    listed = row(page, warning["id"])
    html = page.locator("html")
    expect(html).to_have_attribute("lang", "en")
    expect(listed.get_by_test_id("row-level")).to_contain_text(case_insensitive(warning["level"]))
    expect(listed.get_by_test_id("row-area")).to_contain_text(area["name"])

    page.get_by_test_id("lang-toggle").click()
    expect(html).to_have_attribute("lang", "zh")
    expect(listed.get_by_test_id("row-level")).to_contain_text(LEVEL_ZH[warning["level"]])
    expect(listed.get_by_test_id("row-area")).to_contain_text(area["name_zh"])
    expect(listed.get_by_test_id("row-area")).not_to_contain_text(area["name"])

    page.get_by_test_id("lang-toggle").click()
    expect(html).to_have_attribute("lang", "en")
    expect(listed.get_by_test_id("row-area")).to_contain_text(area["name"])
    page.get_by_test_id("lang-toggle").click()  # the screenshot shows the Chinese console
    expect(listed.get_by_test_id("row-area")).to_contain_text(area["name_zh"])


def test_a_viewer_key_gets_no_action_buttons_anywhere(demo: ConsoleDemo, session: Session) -> None:
    page = session.page
    sign_in(page, demo, demo.viewer_key)
    expect(page.get_by_test_id("whoami")).to_contain_text("viewer")
    actions = page.locator('[data-testid^="action-"], [data-testid^="rec-"]')
    expect(actions).to_have_count(0)

    warning = next(w for w in demo.open_warnings().values() if w["recommendations"])
    listed = row(page, warning["id"])
    listed.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("warning-detail")).to_have_attribute("data-warning-id", warning["id"])
    expect(page.get_by_test_id("detail-explanation")).to_be_visible()
    expect(page.get_by_test_id("recommendation")).to_have_count(len(warning["recommendations"]))
    expect(page.get_by_test_id("timeline-item").first).to_be_visible()
    expect(actions).to_have_count(0)
    # What a viewer is not offered leaves no trace either (a section rendered as "null", say).
    expect(page.get_by_test_id("warning-detail")).not_to_contain_text(re.compile("null|undefined"))
    assert (
        page.get_by_test_id("warning-detail")
        .locator("button, input, select")
        .evaluate_all("els => els.map(e => e.dataset.testid).filter(t => t && /^(action|rec)-/.test(t))")
        == []
    )


def test_the_page_asks_no_host_but_the_service_for_anything(demo: ConsoleDemo, session: Session) -> None:
    page = session.page
    sign_in(page, demo, demo.admin_key)
    expect(page.get_by_test_id("stream-status")).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("map-area").first).to_be_attached()

    # A grid: a district lies under its grids, so its middle is theirs to click.
    warned_area = next(w["area"] for w in demo.open_warnings().values() if w["area"] in demo.grids())
    page.locator(f'[data-testid="map-area"][data-area-id="{warned_area}"]').click()
    expect(page.get_by_test_id("area-panel")).to_be_visible()
    expect(page.get_by_test_id("area-warning").first).to_be_visible()

    warning = next(w for w in demo.open_warnings().values() if w["area"].startswith("g-"))
    row(page, warning["id"]).click()
    expect(page.get_by_test_id("warning-detail")).to_have_attribute("data-warning-id", warning["id"])
    expect(page.get_by_test_id("evidence-chart").first).to_be_visible()
    page.get_by_test_id("detail-close").click()
    expect(page.get_by_test_id("warning-detail")).to_be_hidden()

    page.get_by_test_id("nav-silences").click()
    expect(page.get_by_test_id("silence-form")).to_be_visible()
    page.get_by_test_id("nav-health").click()
    faulty = demo.get("/v1/sensor-health")
    expect(page.get_by_test_id("health-row")).to_have_count(len(faulty))
    page.get_by_test_id("lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    page.get_by_test_id("nav-overview").click()
    expect(page.get_by_test_id("warning-row").first).to_be_visible()

    service = urlsplit(demo.base)
    elsewhere = [
        u for u in session.requests if urlsplit(u).scheme != "data" and urlsplit(u)[:2] != service[:2]
    ]
    assert elsewhere == [], "requests outside the service"
    assert any(urlsplit(u).path == "/v1/stream" for u in session.requests), session.requests


def test_a_change_made_through_the_api_shows_in_the_open_page_live(
    demo: ConsoleDemo, session: Session
) -> None:
    page = session.page
    sign_in(page, demo, demo.admin_key)
    expect(page.get_by_test_id("stream-status")).to_have_attribute("data-state", "open")
    mark_page(page)
    warning = demo.actable_warning()
    listed = row(page, warning["id"])
    expect(listed).to_have_attribute("data-status", warning["status"])

    demo.act(warning["id"], "acknowledge")
    expect(listed).to_have_attribute("data-status", "acknowledged", timeout=5_000)
    expect(listed.get_by_test_id("row-status")).to_contain_text(case_insensitive("acknowledged"))
    assert_not_reloaded(page)
    assert any(urlsplit(u).path == "/v1/stream" for u in session.requests), session.requests


def test_a_silence_is_created_listed_and_ended_from_the_silences_page(
    demo: ConsoleDemo, session: Session
) -> None:
    page = session.page
    sign_in(page, demo, demo.admin_key)
    warned = {w["area"] for w in demo.open_warnings().values()}
    area = next(a for a in demo.grids() if a not in warned)

    page.get_by_test_id("nav-silences").click()
    form = page.get_by_test_id("silence-form")
    expect(form).to_be_visible()
    area_field = page.get_by_test_id("silence-area")
    if area_field.evaluate("e => e.tagName") == "SELECT":
        area_field.select_option(area)
    else:
        area_field.fill(area)
    page.get_by_test_id("silence-duration").fill("30")
    page.get_by_test_id("silence-comment").fill("drains cleared, sensors being recalibrated")
    page.get_by_test_id("silence-create").click()

    made = eventually(
        lambda: [s for s in demo.get("/v1/silences") if s["matchers"]["area"] == area],
        lambda found: len(found) == 1,
        timeout_s=10,
        what=f"one silence for {area} through the API",
    )[0]
    assert made["comment"] == "drains cleared, sensors being recalibrated"
    lasts = datetime.fromisoformat(made["ends_at"]) - datetime.fromisoformat(made["starts_at"])
    assert abs(lasts.total_seconds() - 30 * 60) < 60, lasts
    listed = page.locator(f'[data-testid="silence-row"][data-silence-id="{made["id"]}"]')
    expect(listed).to_be_visible()

    listed.get_by_test_id("silence-end").click()
    expect(listed).to_have_count(0)
    assert made["id"] not in {s["id"] for s in demo.get("/v1/silences")}, "the silence is still in force"


def _tab_to(page: Page, testid: str, *, presses: int) -> None:
    """Press Tab until the focus is on (or inside) the element with ``testid``; fail naming the path."""
    path: list[str | None] = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "t => { const e = document.activeElement;"
            " return e && e.closest(`[data-testid='${t}']`) ? t : (e && (e.dataset.testid || e.tagName)) }",
            testid,
        )
        if focused == testid:
            return
        path.append(focused)
    raise AssertionError(f"Tab never reached {testid} in {presses} presses; focus went: {path}")


def test_at_1366x768_the_overview_fits_and_is_reachable_by_keyboard(
    demo: ConsoleDemo, session: Session
) -> None:
    page = session.page
    page.goto(demo.console)
    _tab_to(page, "signin-key", presses=20)
    page.keyboard.insert_text(demo.admin_key)
    _tab_to(page, "signin-submit", presses=5)
    page.keyboard.press("Enter")

    expect(page.get_by_test_id("whoami")).to_be_visible()
    expect(page.get_by_test_id("warning-row").first).to_be_visible()
    expect(page.get_by_test_id("warning-list")).to_be_in_viewport()
    expect(page.get_by_test_id("map")).to_be_in_viewport()
    wide = page.evaluate("document.scrollingElement.scrollWidth")
    assert wide <= SCREEN["width"], f"the page scrolls sideways: {wide} px wide"

    _tab_to(page, "warning-row", presses=200)
    opened = page.evaluate(
        "document.activeElement.closest(\"[data-testid='warning-row']\").dataset.warningId"
    )
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("warning-detail")).to_have_attribute("data-warning-id", opened)
