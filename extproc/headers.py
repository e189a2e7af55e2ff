"""Header names RouteIQ sets or reads: one place, imported by every adapter and stage.

Every name RouteIQ sets starts with ``x-routeiq-``; a client-sent header with that
prefix is never trusted as a routing instruction (adapters strip it before the
request goes upstream). ``PROFILE`` and ``CACHE`` are the only client hints RouteIQ
reads, and they never reach a backend either.
"""

from __future__ import annotations

PREFIX = "x-routeiq-"
BACKEND = "x-routeiq-backend"
DECISION_ID = "x-routeiq-decision-id"
CATEGORY = "x-routeiq-category"
# The tier of the backend that served the request.
TIER = "x-routeiq-tier"
# The tier the request needed (classification, profile and cost-quality bar).
NEEDED_TIER = "x-routeiq-needed-tier"
# The cost-quality rule's verdict: predicted need for a stronger tier, the bars, the tier.
QUALITY = "x-routeiq-quality"
ROUTED_PROFILE = "x-routeiq-routed-profile"
OVERHEAD_MS = "x-routeiq-overhead-ms"
PROFILE = "x-routeiq-profile"
