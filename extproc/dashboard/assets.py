"""The dashboard's static files, read once from the package (``extproc/dashboard/static``).

They ship with the wheel as package data: the page works with no network at all. The
page is served with a strict Content-Security-Policy (only this origin's script, style
and fetches), so even a value that slipped past the script's ``textContent`` rendering
could not load or run anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every static file by name (``index.html``, ``app.js``, ``app.css``)."""
    root = resources.files("extproc.dashboard") / "static"
    return {name: Asset(root.joinpath(name).read_bytes(), kind) for name, kind in _TYPES.items()}
