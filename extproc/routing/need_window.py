"""The needs of recent traffic, for bars that follow the traffic (``calibration: traffic``).

A share knob (``premiumShare`` 0.3) is only literal for traffic like the prompts it was
calibrated on: on a stream of maths questions the need model rates most prompts above a
bar set on enterprise chat, and far more than 30% would reach premium. ``NeedWindow``
keeps the needs of the last ``size`` distinct prompts the router classified (a repeated
text is observed once, so a client resending one prompt cannot move the bars) in sorted
order, and answers a quantile in constant time, so the bars of every profile can be read
from it per request. Until ``warmup`` needs are in, the caller keeps the reference bars.

The window is per process (each ``--workers`` worker sees its own share of the traffic);
a reload hands it to the new snapshot while its needs still apply (``Router.continuing``).
It is the one piece of mutable routing state: the lock makes ``observe`` safe from the
analysis pool's threads; reads copy nothing.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque


class NeedWindow:
    """The last ``size`` observed needs, kept sorted; quantiles by linear interpolation."""

    def __init__(self, size: int, warmup: int) -> None:
        if size < 1 or not 1 <= warmup <= size:
            raise ValueError(
                f"need window of {size} with warmup {warmup}: need 1 <= warmup <= size"
            )
        self.size = size
        self.warmup = warmup
        self._order: deque[float] = deque()
        self._sorted: list[float] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._order)

    @property
    def warm(self) -> bool:
        """True once ``warmup`` needs are in: the window's bars are then used."""
        return len(self._order) >= self.warmup

    def observe(self, need: float) -> None:
        """Add ``need``; the oldest one leaves once ``size`` are held. A non-finite need
        is ignored: NaN has no place in a sorted list and would corrupt every quantile."""
        if not math.isfinite(need):
            return
        with self._lock:
            self._order.append(need)
            bisect.insort(self._sorted, need)
            if len(self._order) > self.size:
                old = self._order.popleft()
                del self._sorted[bisect.bisect_left(self._sorted, old)]

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the held needs (numpy's default, linear); NaN when empty."""
        with self._lock:
            values = self._sorted
            n = len(values)
            if n == 0:
                return float("nan")
            pos = min(max(q, 0.0), 1.0) * (n - 1)
            low = int(pos)
            if low >= n - 1:
                return values[-1]
            return values[low] + (values[low + 1] - values[low]) * (pos - low)
