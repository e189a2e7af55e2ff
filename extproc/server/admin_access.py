"""Who may use the admin port's operator routes, and how much explain may cost.

The admin port serves two kinds of routes:

- **open**: ``/healthz``, ``/readyz``, ``/metrics``. Probes and scrapers must reach them
  without credentials; they reveal nothing a request could not.
- **guarded**: ``/v1/explain`` (runs a full decision: CPU, and it shows how the policy
  and the router judge any request) and ``/v1/config`` (the redacted config and
  settings). With ``ROUTEIQ_ADMIN_TOKEN`` set they need ``Authorization: Bearer
  <token>``, compared in constant time. Without a token they are served only when the
  admin port is bound to a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``);
  bound anywhere else they answer 403 and one warning says so at start, so that a pod
  or container listening on ``0.0.0.0`` for its probes never exposes them by default.

Explain is further bounded: its body (``ROUTEIQ_ADMIN_EXPLAIN_MAX_BYTES``, 1 MiB by
default) and how many run at once (``ROUTEIQ_ADMIN_EXPLAIN_CONCURRENCY``); past that a
caller gets 429 with ``Retry-After`` at once instead of queueing work on the loop that
serves traffic, and one explain gets at most ``ROUTEIQ_ADMIN_EXPLAIN_TIMEOUT_S``.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from extproc.config.settings import Settings
from extproc.server.admin_http import Request, Response, error_response

DEFAULT_EXPLAIN_MAX_BYTES = 1024 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost, "" or "0.0.0.0"-like: assume reachable


@dataclass(frozen=True, slots=True)
class AdminAccess:
    """The admin port's access rules and explain bounds (from the process settings)."""

    token: bytes | None = None
    explain_max_bytes: int = DEFAULT_EXPLAIN_MAX_BYTES
    explain_concurrency: int = 2
    explain_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminAccess:
        secret = settings.admin_token
        token = secret.get_secret_value().encode() if secret is not None else None
        return cls(
            token=token or None,
            explain_max_bytes=settings.admin_explain_max_bytes,
            explain_concurrency=settings.admin_explain_concurrency,
            explain_timeout_s=settings.admin_explain_timeout_s,
        )


class Guard:
    """Checks guarded routes for one bound address (see the module docstring)."""

    __slots__ = ("_loopback", "_token")

    def __init__(self, access: AdminAccess, host: str) -> None:
        self._token = access.token
        self._loopback = is_loopback(host)

    @property
    def disabled(self) -> bool:
        """Guarded routes are off: bound beyond loopback with no token configured."""
        return self._token is None and not self._loopback

    def refusal(self, request: Request) -> Response | None:
        """None when the request may use a guarded route, else the error to answer."""
        if self._token is None:
            if self._loopback:
                return None
            return error_response(
                403,
                "This admin route is disabled: the admin port is not bound to loopback and "
                "no admin token is configured (ROUTEIQ_ADMIN_TOKEN).",
                "admin_token_not_configured",
            )
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value.strip().encode("latin-1", "replace")
        if scheme.lower() == "bearer" and hmac.compare_digest(given, self._token):
            return None
        return error_response(
            401,
            "A valid admin bearer token is required (Authorization: Bearer <token>).",
            "invalid_admin_token",
            (("WWW-Authenticate", 'Bearer realm="routeiq-admin"'),),
        )


class Slots:
    """At most ``size`` explains at once; no waiting (the event loop is single-threaded,
    so a plain counter is exact)."""

    __slots__ = ("busy", "size")

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.busy = 0

    def acquire(self) -> bool:
        if self.busy >= self.size:
            return False
        self.busy += 1
        return True

    def release(self) -> None:
        self.busy = max(0, self.busy - 1)


def busy_response(size: int) -> Response:
    return error_response(
        429,
        f"Too many explain requests in flight (at most {size}); retry shortly.",
        "explain_busy",
        (("Retry-After", "1"),),
    )
