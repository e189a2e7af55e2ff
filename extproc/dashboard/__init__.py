"""The admin dashboard at ``/dashboard``: static assets shipped in the package, read-only
JSON and server-sent-event endpoints over what the process already has.

- ``assets``: the HTML, JS and CSS (package data, loaded once; no CDN, works offline);
- ``summary``: the aggregated panels, computed from the admin port's Prometheus text,
  so a supervisor of N workers shows the whole group exactly like ``/metrics``;
- ``feed``: the live decision stream, from the decision log's in-memory ring, rendered
  by the decision log itself (same redaction);
- ``routes``: the handlers and the access rule (the admin token, Basic or Bearer).
"""
