"""The operator console: one HTML page and its assets, served by citywarn itself.

The page holds no data (every call it makes sends the operator's key), so it needs no key. Its
Content-Security-Policy allows only this service: no CDN, font or map tile can be fetched, and
no inline script can run, so a warning's text shown in the page cannot become code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
# Assets change with each release while their names stay: a browser asks again after a short while
# and revalidates by ETag, so an unchanged file costs a 304 and no body; the page is always asked for afresh.
ASSET_CACHE = "public, max-age=300, must-revalidate"
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _assets() -> dict[str, Path]:
    """Every shipped asset by its path under /console/assets/: a fixed set, so no path can walk out."""
    return {
        p.relative_to(STATIC).as_posix(): p
        for p in STATIC.rglob("*")
        if p.is_file() and p.suffix in MEDIA_TYPES and p.name != "index.html"
    }


ASSETS = _assets()
AssetPath = Annotated[str, PathParam(max_length=200)]

router = APIRouter(include_in_schema=False)


@router.get("/console")
def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=MEDIA_TYPES[".html"], headers=PAGE_HEADERS)


@router.get("/console/assets/{asset:path}", response_model=None)
def console_asset(asset: AssetPath, request: Request) -> Response:
    found = ASSETS.get(asset)
    if found is None:
        raise HTTPException(404, detail=f"no console asset {asset}")
    stat = found.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {"Cache-Control": ASSET_CACHE, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(found, media_type=MEDIA_TYPES[found.suffix], headers=headers, stat_result=stat)
