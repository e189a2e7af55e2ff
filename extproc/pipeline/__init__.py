"""The stages of one decision, each a small function with typed input and output.

``extproc.decide.decide`` runs them in order: identify -> resolve -> analyze (content
detectors and classification, off the event loop when they could take long) -> policy
-> route (health, affinity, selection) -> charge (budgets) -> respond (proxy
instructions). A stage that refuses raises :class:`~extproc.pipeline.refusal.Refusal`;
``decide`` turns it into a ``DENIED`` decision. Nothing here speaks gRPC, HTTP or Kong.
"""
