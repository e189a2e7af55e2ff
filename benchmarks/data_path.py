"""Benchmark: Envoy straight to the upstream vs Envoy through RouteIQ (explicit model).

One run, same machine, same upstream, same load (wrk, fixed connections). The
baseline is measured first, then each RouteIQ variant; every row is printed with its
ratio to the baseline. Variants (name=config:workers):

- ``default``: ``config/routeiq.yaml`` as shipped: embedded Rego policies, an
  in-memory budget, backend health, decision headers (3 ext_proc messages/request).
- ``lean``: ``benchmarks/lean.yaml``: no policy, no health, headers copied by Envoy
  (2 ext_proc messages/request).
- ``lean-2w``: the same with ``--workers 2``.

    .venv/bin/python benchmarks/data_path.py [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import REPO, ensure_wrk, proxy_config, run_wrk, start_upstream

from extproc.demo.processes import free_port, start_envoy, start_routeiq, wait_for_port

BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
    }
)
VARIANTS = [
    f"default={REPO / 'config' / 'routeiq.yaml'}:1",
    f"lean={REPO / 'benchmarks' / 'lean.yaml'}:1",
    f"lean-2w={REPO / 'benchmarks' / 'lean.yaml'}:2",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--variant", action="append", help="name=config.yaml:workers")
    args = parser.parse_args()

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="routeiq-bench-"))
    procs = []
    headers = {"content-type": "application/json"}
    rows = []
    try:
        upstream, up_port = start_upstream(work)
        procs.append(upstream)

        def measure(routeiq_port: int | None) -> object:
            cfg, port, admin = proxy_config(up_port, routeiq_port)
            envoy = start_envoy(cfg, work, admin, concurrency=1)
            try:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                run_wrk(wrk, url, BODY, headers, work, args.connections, 2)  # warm-up
                return run_wrk(wrk, url, BODY, headers, work, args.connections, args.seconds)
            finally:
                envoy.stop()

        base = measure(None)
        rows.append(("envoy -> upstream (baseline)", base))
        for spec in args.variant or VARIANTS:
            name, rest = spec.split("=", 1)
            config, workers = rest.rsplit(":", 1)
            port = free_port()
            env = {
                "ROUTEIQ_WORKERS": workers,
                "ROUTEIQ_DECISION_LOG": "off",
                "ROUTEIQ_LOG_LEVEL": "warning",
                "ROUTEIQ_ADMIN_PORT": str(free_port()),
            }
            proc = start_routeiq(Path(config), port, work, env)
            try:
                if int(workers) > 1:
                    wait_for_port(port, 60)
                    import time

                    time.sleep(3)  # every worker has bound the port
                rows.append((f"envoy -> routeiq[{name}] -> upstream", measure(port)))
            finally:
                proc.stop()
        print(
            f"wrk -c{args.connections} -d{args.seconds}s POST /v1/chat/completions "
            f"(explicit model), Envoy --concurrency 1, {os.cpu_count()} cores"
        )
        print(
            f"{'path':<40}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'ratio req/s':>13}"
        )
        for name, r in rows:
            print(
                f"{name:<40}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.non_2xx:>9}"  # type: ignore[attr-defined]
                f"{r.rps / base.rps:>13.3f}"
            )  # type: ignore[attr-defined]
        return 1 if any(r.non_2xx or r.errors for _, r in rows) else 0  # type: ignore[attr-defined]
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    raise SystemExit(main())
