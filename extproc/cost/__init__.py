"""Cost accounting: what a served request cost, and what it would have cost elsewhere.

``prices.usage_cost`` is the price arithmetic; ``accountant.CostBook`` (one per
process) prices a response from its decision and usage into a ``CostRecord`` that
telemetry counts (``routeiq_cost_usd_total``, ``routeiq_cost_saved_usd_total``...) and
the decision log writes on the usage line; ``spec.CostAccountingSpec`` is the
``spec.costAccounting`` section of the RoutingConfig. Nothing is imported here, so the
config schema can import the spec without a cycle.
"""
