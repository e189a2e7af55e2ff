"""Content detectors before and after the linear-time rewrite, on adversarial prompts.

Run from the repository root::

    .venv/bin/python benchmarks/detectors.py [--sizes 16,64,256] [--old-timeout 30]

For each adversarial shape (one per pattern, plus ordinary prose) and each size in KiB,
it scans the text with the detectors RouteIQ serves with (``Detectors``, cap lifted so
the whole text is scanned) and with the patterns they replaced (kept below, verbatim,
with their substring pre-checks, as the baseline of the same run). Both are timed in a
fresh subprocess as CPU time of the scanning thread, best of ``--repeat`` runs (one run
for the baseline); a baseline run that exceeds ``--old-timeout`` seconds of wall time
is printed as such. It prints per shape and size: the old and new times, old/new, and
the new time per character (flat across sizes when the scan is linear), then the scan
of each shape at the default cap (``spec.policy.detectorMaxChars``), which bounds what
the detectors cost one request.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extproc.policy.spec import DEFAULT_DETECTOR_MAX_CHARS  # noqa: E402

# The patterns served before the rewrite (extproc/policy/detectors.py at 0029cf1).
OLD_PATTERNS = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "payment_card": r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])",
    "secret": (
        r"\b(?:sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}"
        r"|gh[pousr]_[A-Za-z0-9]{36,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})"
    ),
    "private_key": r"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY(?: BLOCK)?-----",
}

# Python expressions of n (characters): the worst shape found for each pattern.
SHAPES = {
    "email: 'a'*n + '@'": "'a' * n + '@'",
    "email: 'a@'*n": "'a@' * (n // 2)",
    "email: 'x@' + 'a.'*n": "'x@' + 'a.' * (n // 2)",
    "card: '4111 1111 1111 1111 '*n": "'4111 1111 1111 1111 ' * (n // 20)",
    "secret: 'sk-'*n": "'sk-' * (n // 3)",
    "key: '-----BEGIN ' + 'A'*n": "'-----BEGIN ' + 'A' * n",
    "prose": "('The quick brown fox writes to alice at example dot com. ' * n)[:n]",
}

# Runs in a subprocess: times ``scan`` on one shape (CPU time of the thread, so other
# load on the machine does not count), prints the best time in seconds. The old scan
# keeps the old pre-checks: a pattern ran only when its marker was in the text.
TIMER = textwrap.dedent(
    """
    import json, re, sys, time
    which, expr, n, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    text = eval(expr, {"n": n})
    if which == "old":
        patterns = {k: re.compile(p) for k, p in json.loads(sys.argv[5]).items()}
        prefixes = ("sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
                    "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "AIza")
        markers = {
            "email": lambda t: "@" in t,
            "payment_card": lambda t: sum(map(t.count, "0123456789")) >= 13,
            "secret": lambda t: any(p in t for p in prefixes),
            "private_key": lambda t: "PRIVATE KEY-----" in t,
        }
        def scan(t):
            return [sum(1 for _ in p.finditer(t)) for k, p in patterns.items() if markers[k](t)]
    else:
        from extproc.policy import Detectors
        scan = Detectors(max_chars=int(sys.argv[5])).scan
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        scan(text)
        best = min(best, time.thread_time() - started)
    print(best)
    """
)


def timed(which: str, expr: str, n: int, repeat: int, extra: str, timeout: float) -> float | None:
    """Best time in seconds, or None when the run exceeded ``timeout``."""
    args = [sys.executable, "-c", TIMER, which, expr, str(n), str(repeat), extra]
    try:
        out = subprocess.run(
            args, capture_output=True, text=True, check=True, timeout=timeout, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        return None
    return float(out.stdout)


def _ms(seconds: float | None, timeout: float) -> str:
    return f">{timeout:.0f} s" if seconds is None else f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="16,64,256", help="text sizes in KiB")
    parser.add_argument("--old-timeout", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) * 1024 for s in args.sizes.split(",")]
    old = json.dumps(OLD_PATTERNS)
    lifted = str(max(sizes) * 4)

    print(f"{'shape':34s} {'KiB':>4s} {'old':>11s} {'new':>10s} {'old/new':>8s} {'ns/char':>8s}")
    for name, expr in SHAPES.items():
        for n in sizes:
            new_s = timed("new", expr, n, args.repeat, lifted, 120.0)
            # One run of the baseline: it may take minutes.
            old_s = timed("old", expr, n, 1, old, args.old_timeout)
            assert new_s is not None
            ratio = f">{args.old_timeout / new_s:.0f}" if old_s is None else f"{old_s / new_s:.1f}"
            print(
                f"{name:34s} {n // 1024:4d} {_ms(old_s, args.old_timeout):>11s} "
                f"{_ms(new_s, 120):>10s} {ratio:>8s} {new_s / n * 1e9:8.1f}"
            )

    cap = DEFAULT_DETECTOR_MAX_CHARS
    print(f"\nat the default cap ({cap} characters; longer text is cut and reported truncated):")
    worst = 0.0
    for name, expr in SHAPES.items():
        seconds = timed("new", expr, cap, args.repeat, str(cap), 120.0)
        assert seconds is not None
        worst = max(worst, seconds)
        print(f"  {name:34s} {seconds * 1000:7.2f} ms")
    print(f"  worst shape: {worst * 1000:.2f} ms per request")


if __name__ == "__main__":
    main()
