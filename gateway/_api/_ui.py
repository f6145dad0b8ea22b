"""The web UI: built assets under ``/ui/`` (deep links get ``index.html``), ``/`` redirects.

The assets are built by ``make ui`` into ``gateway/ui/dist`` and ship with the package,
so serving them needs no Node. Paths are resolved inside that folder only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

UI_PREFIX = "/ui"
DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"
"""Where the built single-page app is."""

IMMUTABLE = "public, max-age=31536000, immutable"
"""Files under ``assets/`` carry a content hash in their names: cache them for good."""

router = APIRouter(include_in_schema=False)


def asset_path(path: str, dist: Path = DIST) -> Path | None:
    """The file a UI path names inside `dist`, or None (then ``index.html`` answers).

    Args:
        path: The path after ``/ui/``.
        dist: The built app's folder.
    """
    if not path:
        return None
    root = dist.resolve()
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _index(dist: Path = DIST) -> Response:
    index = dist / "index.html"
    if not index.is_file():
        return Response(
            "The web UI is not built: run `make ui`.", status_code=404, media_type="text/plain"
        )
    return FileResponse(index, headers={"Cache-Control": "no-cache"})


@router.get("/")
async def root() -> RedirectResponse:
    """``/`` → the UI."""
    return RedirectResponse(f"{UI_PREFIX}/", status_code=307)


@router.get(UI_PREFIX)
async def ui_root() -> RedirectResponse:
    """``/ui`` → ``/ui/``."""
    return RedirectResponse(f"{UI_PREFIX}/", status_code=307)


@router.get(UI_PREFIX + "/{path:path}")
async def ui(path: str) -> Response:
    """A built file, or the app's ``index.html`` for any other path (client-side routes)."""
    found = asset_path(path)
    if found is None:
        if path.startswith("assets/"):
            return Response("not found", status_code=404, media_type="text/plain")
        return _index()
    cache = IMMUTABLE if path.startswith("assets/") else "no-cache"
    return FileResponse(found, headers={"Cache-Control": cache})
