"""The answer cache's counters, and their export as OpenTelemetry observable counters.

Plain counters updated on the request path (a dictionary update each); the metrics
read them only at collection time. Label values come from fixed sets (result, kind,
bypass and skip reasons from code; backend names from the config).

Exported (Prometheus names): ``routeiq_cache_lookups_total{result}`` (hit, miss,
bypass), ``routeiq_cache_hits_total{kind}`` (exact, semantic),
``routeiq_cache_bypasses_total{reason}``, ``routeiq_cache_stored_total``,
``routeiq_cache_store_skipped_total{reason}``, ``routeiq_cache_evicted_total``,
``routeiq_cache_saved_tokens_total{type}`` (input, output),
``routeiq_cache_saved_usd_total{backend}`` (at the answering backend's prices),
``routeiq_cache_errors_total``, ``routeiq_cache_skipped_total`` (calls not attempted
during an outage) and ``routeiq_cache_outages_total``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation


@dataclass(slots=True)
class CacheStats:
    lookups: Counter[str] = field(default_factory=Counter)  # result
    hits: Counter[str] = field(default_factory=Counter)  # kind
    bypasses: Counter[str] = field(default_factory=Counter)  # reason
    store_skipped: Counter[str] = field(default_factory=Counter)  # reason
    saved_tokens: Counter[str] = field(default_factory=Counter)  # input / output
    saved_usd: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    stored: int = 0
    evicted: int = 0
    errors: int = 0
    skipped: int = 0
    outages: int = 0


def _labelled(
    counts: Mapping[str, float], label: str
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {label: k}) for k, v in list(counts.items())]

    return observe


def _single(value: Callable[[], float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value())]

    return observe


def export_stats(meter: Meter, stats: CacheStats) -> None:
    """Register the observable counters that report ``stats`` at each collection."""
    labelled = (
        ("lookups", "result", "{lookup}", "Answer cache lookups by result.", stats.lookups),
        ("hits", "kind", "{hit}", "Answer cache hits by kind (exact/semantic).", stats.hits),
        ("bypasses", "reason", "{request}", "Requests not eligible, by rule.", stats.bypasses),
        ("store.skipped", "reason", "{answer}", "Answers not stored, by reason.",
         stats.store_skipped),
        ("saved.tokens", "type", "{token}", "Tokens not generated thanks to hits.",
         stats.saved_tokens),
        ("saved.usd", "backend", "USD", "Cost of the answers served from the cache.",
         stats.saved_usd),
    )  # fmt: skip
    for name, label, unit, text, counts in labelled:
        meter.create_observable_counter(
            f"routeiq.cache.{name}",
            [_labelled(counts, label)],
            unit=unit,
            description=text,
        )
    singles = (
        ("stored", "{answer}", "Answers stored.", lambda: stats.stored),
        ("evicted", "{answer}", "Entries evicted to stay within limits.", lambda: stats.evicted),
        ("errors", "{error}", "Failed calls to the cache store.", lambda: stats.errors),
        ("skipped", "{call}", "Store calls not attempted during an outage.",
         lambda: stats.skipped),
        ("outages", "{outage}", "Cache store outages (available -> down).", lambda: stats.outages),
    )  # fmt: skip
    for name, unit, text, value in singles:
        meter.create_observable_counter(
            f"routeiq.cache.{name}", [_single(value)], unit=unit, description=text
        )
