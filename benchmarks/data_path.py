"""Benchmark: Envoy straight to the upstream vs Envoy through RouteIQ (explicit model).

One run, same machine, same upstream, same load (wrk, fixed connections): prints
requests/s, p50 and p99 of both paths and their ratio.

    .venv/bin/python benchmarks/data_path.py [--seconds 10] [--connections 16] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import REPO, ensure_wrk, proxy_config, run_wrk, start_upstream  # noqa: E402

from extproc.demo.processes import free_port, start_envoy, start_routeiq  # noqa: E402

BODY = json.dumps({"model": "gpt-4o-mini",
                   "messages": [{"role": "user", "content": "Say hello to the benchmark."}]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="RouteIQ server processes")
    parser.add_argument("--config", default=str(REPO / "config" / "routeiq.yaml"))
    args = parser.parse_args()

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="routeiq-bench-"))
    procs = []
    try:
        upstream, up_port = start_upstream(work)
        procs.append(upstream)
        rq_port = free_port()
        env = {"ROUTEIQ_WORKERS": str(args.workers), "ROUTEIQ_DECISION_LOG": "off",
               "ROUTEIQ_LOG_LEVEL": "warning", "ROUTEIQ_ADMIN_PORT": str(free_port())}
        procs.append(start_routeiq(Path(args.config), rq_port, work, env))
        results = {}
        for name, rq in (("envoy -> upstream", None), ("envoy -> routeiq -> upstream", rq_port)):
            cfg, port, admin = proxy_config(up_port, rq)
            envoy = start_envoy(cfg, work, admin, concurrency=1)
            procs.append(envoy)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            headers = {"content-type": "application/json"}
            run_wrk(wrk, url, BODY, headers, work, args.connections, 2)  # warm-up
            results[name] = run_wrk(wrk, url, BODY, headers, work, args.connections, args.seconds)
            envoy.stop()
        print(f"wrk -c{args.connections} -d{args.seconds}s, Envoy --concurrency 1, "
              f"RouteIQ workers={args.workers}, {os.cpu_count()} cores")
        print(f"{'path':<32}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}{'errors':>8}")
        for name, r in results.items():
            print(f"{name:<32}{r.rps:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}"
                  f"{r.non_2xx:>9}{r.errors:>8}")
        base, routed = results["envoy -> upstream"], results["envoy -> routeiq -> upstream"]
        print(f"ratio routed/baseline: req/s {routed.rps / base.rps:.3f}, "
              f"p50 x{routed.p50_ms / base.p50_ms:.2f}, p99 x{routed.p99_ms / base.p99_ms:.2f}")
        return 1 if routed.non_2xx or base.non_2xx else 0
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    raise SystemExit(main())
