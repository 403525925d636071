"""The operator console's page and assets, as served by the app: open to all, strict about what it loads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.console import ASSETS, STATIC
from app.main import create_app
from bench.isolation import isolated_settings
from ingest.broker import EmbeddedBroker

MEDIA = {".js": "text/javascript", ".css": "text/css"}
# The hooks the browser tests hold the console to (issue 13's contract), each of which must be in the page.
CONTRACT_TEST_IDS = [
    "signin",
    "signin-key",
    "signin-submit",
    "signin-error",
    "whoami",
    "lang-toggle",
    "signout",
    "stream-status",
    "nav-overview",
    "nav-silences",
    "nav-health",
    "warning-list",
    "warning-row",
    "row-level",
    "row-hazard",
    "row-area",
    "row-status",
    "row-certainty",
    "row-age",
    "row-drill",
    "filter-level",
    "filter-hazard",
    "filter-area",
    "filter-status",
    "map",
    "map-area",
    "map-sensor",
    "area-panel",
    "area-warning",
    "warning-detail",
    "detail-status",
    "detail-level",
    "detail-explanation",
    "evidence-chart",
    "detail-reports",
    "recommendation",
    "rec-accept",
    "rec-reject",
    "rec-done",
    "action-acknowledge",
    "action-assign",
    "assign-to",
    "action-resolve",
    "timeline",
    "timeline-item",
    "cap-download",
    "detail-close",
    "silence-form",
    "silence-area",
    "silence-hazard",
    "silence-duration",
    "silence-comment",
    "silence-create",
    "silence-row",
    "silence-end",
    "health-row",
]
# XML namespace names are identifiers the browser never fetches (createElementNS).
NAMESPACES = {"http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def anonymous(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The whole app, called with no key at all."""
    tmp = tmp_path_factory.mktemp("console")
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp}/store.sqlite3",
        database_url=f"sqlite:///{tmp}/state.sqlite3",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def shipped() -> dict[str, str]:
    return {p.relative_to(STATIC).as_posix(): p.read_text() for p in STATIC.rglob("*") if p.is_file()}


def referenced(client: TestClient) -> set[str]:
    """Every asset the page loads: its <link>s and <script>s, and the modules those import, transitively."""
    page = client.get("/console").text
    found = set(re.findall(r'(?:href|src)="(/console/assets/[^"]+)"', page))
    pending = [u for u in found if u.endswith(".js")]
    while pending:
        url = pending.pop()
        source = client.get(url).text
        base = url.rsplit("/", 1)[0]
        for target in re.findall(r"""(?:from|import)\s*\(?\s*['"](\./[^'"]+)['"]""", source):
            absolute = f"{base}/{target.removeprefix('./')}"
            if absolute not in found:
                found.add(absolute)
                pending.append(absolute)
    return found


def test_the_page_is_html_with_a_strict_content_security_policy_and_needs_no_key(
    anonymous: TestClient,
) -> None:
    resp = anonymous.get("/console")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["script-src"] == "'self'"
    assert "unsafe" not in csp  # no inline script or style, no eval
    assert resp.headers["cache-control"] == "no-cache"
    assert 'data-testid="signin"' in resp.text


def test_every_asset_the_page_references_is_served_with_its_media_type(anonymous: TestClient) -> None:
    assets = referenced(anonymous)
    assert "/console/assets/js/main.js" in assets and "/console/assets/console.css" in assets
    assert {f"/console/assets/{name}" for name in ASSETS} == assets  # nothing shipped unused, nothing missing
    for url in assets:
        resp = anonymous.get(url)
        assert resp.status_code == 200, url
        assert resp.headers["content-type"].startswith(MEDIA[Path(url).suffix]), url
        assert "max-age" in resp.headers["cache-control"] and resp.headers["etag"], url


def test_an_unchanged_asset_is_revalidated_without_its_body(anonymous: TestClient) -> None:
    first = anonymous.get("/console/assets/js/main.js")
    again = anonymous.get("/console/assets/js/main.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    stale = anonymous.get("/console/assets/js/main.js", headers={"If-None-Match": '"0-0"'})
    assert stale.status_code == 200 and stale.content == first.content


def test_an_asset_not_shipped_is_a_404_problem_and_no_path_leaves_the_folder(anonymous: TestClient) -> None:
    for path in ("/console/assets/nope.js", "/console/assets/../__init__.py", "/console/assets/index.html"):
        resp = anonymous.get(path)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"].startswith("application/problem+json")


def test_no_shipped_file_names_another_host() -> None:
    for name, text in shipped().items():
        urls = set(re.findall(r"""https?://[^\s'"`)<>]+""", text)) - NAMESPACES
        assert not urls, f"{name} names {urls}"
        protocol_relative = re.findall(r"""(?:href|src)\s*=\s*['"]//|url\(\s*['"]?//""", text)
        assert not protocol_relative, name


def test_the_page_carries_every_hook_of_the_contract() -> None:
    sources = "\n".join(shipped().values())
    missing = [i for i in CONTRACT_TEST_IDS if f"'{i}'" not in sources and f'"{i}"' not in sources]
    assert not missing


def test_chinese_and_english_have_the_same_words() -> None:
    source = (STATIC / "js" / "i18n.js").read_text()

    def keys(name: str) -> set[str]:
        block = source.split(f"const {name} = {{", 1)[1].split("\n};", 1)[0]
        return set(re.findall(r"'([\w.]+)':", block))

    en, zh = keys("EN"), keys("ZH")
    assert len(en) > 100
    assert en == zh, {"only en": en - zh, "only zh": zh - en}
