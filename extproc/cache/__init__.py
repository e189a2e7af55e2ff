"""The answer cache: exact and semantic matches of repeated requests, per tenant.

Modules: ``spec`` (the ``spec.cache`` section), ``rules`` (who and what may use the
cache), ``keys`` (normalised request keys), ``types`` (entries and results), ``memory``
and ``redis_store`` (stores), ``guard`` (a failing store is skipped), ``sse``
(streams reassembled and replayed), ``service`` (the process's cache), ``metrics``.
Nothing is imported here, so that the config schema can import ``spec`` alone.
"""
