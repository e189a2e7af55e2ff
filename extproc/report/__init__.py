"""``routeiq report``: what the decision logs say about routing, spend and refusals.

``reader`` streams lines from plain and gzip files (rotated ones in age order),
``aggregate.ReportBuilder`` folds one line at a time into counters (only the overhead
latencies are kept, as a float array, for exact percentiles), and ``text``, ``html``
render the result; ``--format json`` prints the builder's document as is.
"""
