"""Analyze stage: content detectors and the prompt's classification, off the loop.

Both grow with the input (a regex scan over every prompt text; an embedding of up to
``maxTokens`` tokens), so they run in one job on the ``Offload`` pool unless the job
is known to be cheap: no classification needed, its embedding already cached or the
embedder cheap enough for a text this short (``inline_chars``: the static embedder's
short texts; MiniLM never), and a body small enough to scan inline. A job that cannot
start (pool saturated) or does not finish within the per-request budget degrades
instead of stalling: the request is routed without a classification (the profile's
default tier) and, when detectors were due, the policy sees
``findings.scan_incomplete = 1`` so that it can keep such traffic in-cluster.
``degraded`` names what happened, for metrics and the log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from extproc.api.openai import ParsedRequest
from extproc.config.snapshot import Snapshot
from extproc.pipeline.offload import Offload, OffloadBusy, OffloadTimeout
from extproc.routing.profiles import Profile
from extproc.routing.router import Classification, Router, embedding_text

# Bodies up to this size are scanned on the loop when nothing else needs a thread:
# a linear scan of 8 KiB costs well under a millisecond, less than a thread hop.
INLINE_SCAN_BYTES = 8192
SCAN_INCOMPLETE = "scan_incomplete"

_NO_FINDINGS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the content says: detector counts by kind, and the classification."""

    classification: Classification | None = None
    findings: Mapping[str, int] = field(default_factory=lambda: _NO_FINDINGS)
    degraded: tuple[str, ...] = ()


NOTHING = Analysis()


def _job(
    snapshot: Snapshot,
    request: ParsedRequest,
    router: Router | None,
    text: str,
    sticky_key: str | None,
    scan: bool,
    profile: str | None,
) -> Callable[[], Analysis]:
    def run() -> Analysis:
        findings: Mapping[str, int] = _NO_FINDINGS
        if scan and snapshot.detectors is not None:
            findings = snapshot.detectors.scan_body(request.body)
        classification = (
            router.classify(request, sticky_key, profile=profile, text=text)
            if router is not None
            else None
        )
        return Analysis(classification, findings)

    return run


def _cheap(request: ParsedRequest, router: Router | None, text: str, scan: bool) -> bool:
    if scan and request.body_size > INLINE_SCAN_BYTES:
        return False
    if router is None:
        return True
    return len(text) <= router.embedder.inline_chars or router.embedder.cached(text)


async def analyze(
    snapshot: Snapshot,
    request: ParsedRequest,
    *,
    profile: Profile | None,
    scan: bool,
    sticky_key: str | None,
    offload: Offload,
) -> Analysis:
    """Run the detectors (``scan``) and, for a classifying ``profile``, the router (at
    that profile's cost–quality operating point) as one bounded job."""
    classify = profile is not None and profile.classifies
    router = snapshot.router if classify else None
    scan = scan and snapshot.detectors is not None
    if router is None and not scan:
        return NOTHING
    # The text to embed, worked out once: the cheapness check and the router both read it.
    text = embedding_text(request, router.spec.embedding) if router is not None else ""
    profile_name = profile.value if profile else None
    job = _job(snapshot, request, router, text, sticky_key, scan, profile_name)
    if _cheap(request, router, text, scan):
        return job()
    try:
        return await offload.run(job)
    except (OffloadBusy, OffloadTimeout) as exc:
        kind = "analysis_busy" if isinstance(exc, OffloadBusy) else "analysis_timeout"
        findings = MappingProxyType({SCAN_INCOMPLETE: 1}) if scan else _NO_FINDINGS
        return Analysis(None, findings, (kind,))
