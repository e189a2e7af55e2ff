"""OpenAI's rate-limit headers and 429 body, from a ``ConsumeResult``.

OpenAI sends ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` on every
response; clients and SDKs read them (and ``Retry-After`` on a 429) to back off.
With several buckets per request the headers describe, per dimension, the bucket with
the fewest remaining units: the one a client will hit first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from extproc.api.errors import ApiError
from extproc.state.types import BucketStatus, ConsumeResult


def format_reset(seconds: float) -> str:
    """A duration the way OpenAI writes it (Go style): ``20ms``, ``1s``, ``1.5s``, ``6m0s``."""
    ms = max(0, math.ceil(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _tightest(statuses: Sequence[BucketStatus], tokens: bool) -> BucketStatus | None:
    best: BucketStatus | None = None
    for s in statuses:
        remaining = s.tokens_remaining if tokens else s.requests_remaining
        if remaining is None:
            continue
        best_remaining = (
            None if best is None else (best.tokens_remaining if tokens else best.requests_remaining)
        )
        if best_remaining is None or remaining < best_remaining:
            best = s
    return best


def ratelimit_headers(statuses: Sequence[BucketStatus]) -> tuple[tuple[str, str], ...]:
    """``x-ratelimit-*`` headers for a response (empty when no limit applied)."""
    out: list[tuple[str, str]] = []
    req = _tightest(statuses, tokens=False)
    if req is not None and req.bucket.requests is not None:
        out += [
            ("x-ratelimit-limit-requests", str(req.bucket.requests)),
            ("x-ratelimit-remaining-requests", str(req.requests_remaining)),
            ("x-ratelimit-reset-requests", format_reset(req.reset_requests_s)),
        ]
    tok = _tightest(statuses, tokens=True)
    if tok is not None and tok.bucket.tokens is not None:
        out += [
            ("x-ratelimit-limit-tokens", str(tok.bucket.tokens)),
            ("x-ratelimit-remaining-tokens", str(tok.tokens_remaining)),
            ("x-ratelimit-reset-tokens", format_reset(tok.reset_tokens_s)),
        ]
    return tuple(out)


def rate_limit_error(result: ConsumeResult, requested_tokens: int) -> ApiError:
    """The 429 OpenAI would send: ``type`` ``requests`` or ``tokens``, code
    ``rate_limit_exceeded``, ``Retry-After`` (whole seconds, rounded up) unless the
    request can never fit, plus the ``x-ratelimit-*`` headers."""
    refused = [s for s in result.statuses if s.refused] or list(result.statuses)
    first = refused[0]
    b = first.bucket
    by_requests = first.requests_remaining is not None and first.requests_remaining < 1
    headers = list(ratelimit_headers(result.statuses))
    if result.retry_after_s is None:
        message = (
            f"Request too large for limit '{b.limit}': it needs {requested_tokens} tokens, "
            f"more than the {b.tokens} tokens per {format_reset(b.window_ms / 1000)} allowed."
        )
        return ApiError(429, message, "tokens", "rate_limit_exceeded", None, tuple(headers))
    wait = format_reset(result.retry_after_s)
    if by_requests:
        kind = "requests"
        detail = f"Limit {b.requests}, Remaining {first.requests_remaining}, Requested 1"
    else:
        kind = "tokens"
        detail = (
            f"Limit {b.tokens}, Remaining {first.tokens_remaining}, Requested {requested_tokens}"
        )
    headers.insert(0, ("retry-after", str(max(1, math.ceil(result.retry_after_s)))))
    message = (
        f"Rate limit reached for limit '{b.limit}' on {kind} per "
        f"{format_reset(b.window_ms / 1000)}: {detail}. Please try again in {wait}."
    )
    return ApiError(429, message, kind, "rate_limit_exceeded", None, tuple(headers))


def limits_document(statuses: Sequence[BucketStatus]) -> dict[str, dict[str, float | int | None]]:
    """The caller's limits as policy input (``input.routeiq.limits``), keyed by limit name:
    ``{"team-min": {"requests_limit": 600, "requests_remaining": 12, ...}}``."""
    return {
        s.bucket.limit: {
            "requests_limit": s.bucket.requests,
            "requests_remaining": s.requests_remaining,
            "tokens_limit": s.bucket.tokens,
            "tokens_remaining": s.tokens_remaining,
            "reset_requests_s": s.reset_requests_s,
            "reset_tokens_s": s.reset_tokens_s,
            "window_s": s.bucket.window_ms / 1000,
        }
        for s in statuses
    }
