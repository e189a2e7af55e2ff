"""Operations through the real Envoy: hot reload under load, bad config kept out,
SIGTERM drains the streams in flight."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.fixtures.configs import embedded_policy, write_config
from tests.fixtures.stack import REPO, Backends, envoy_for, routeiq_server

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
FAST_RELOAD = {"ROUTEIQ_RELOAD_INTERVAL_MS": "100", "ROUTEIQ_RELOAD_DEBOUNCE_MS": "100"}


def body(model: str, **extra: object) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "a b c d e f g h"}], **extra}
    ).encode()


@pytest.mark.parametrize("with_policy", [False, True], ids=["no-policy", "embedded-rego"])
def test_reload_under_load_and_bad_config_kept_out(
    workdir: Path, backends: Backends, tmp_path: Path, with_policy: bool
) -> None:
    extra = {"policy": embedded_policy()} if with_policy else {}
    config = write_config(tmp_path / "routeiq.yaml", **extra)
    with routeiq_server(config, workdir, FAST_RELOAD) as (proc, port):
        stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, backends)
        seen: list[tuple[int, str]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                status, headers, _ = stack.post(CHAT, body("gpt4"))
                seen.append((status, headers.get("x-routeiq-backend", "")))

        threads = [threading.Thread(target=load) for _ in range(4)]
        try:
            for t in threads:
                t.start()
            time.sleep(0.5)
            doc = yaml.safe_load(config.read_text())
            doc["spec"]["aliases"]["gpt4"] = "gpt-4o-mini"  # re-point the alias
            config.write_text(yaml.safe_dump(doc))
            deadline = time.monotonic() + 15
            while not any(b == "eco" for _, b in seen[-5:]) and time.monotonic() < deadline:
                time.sleep(0.05)
            config.write_text("spec: {backends: [")  # broken: must be rejected
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            stack.envoy.stop()
        statuses = {s for s, _ in seen}
        backends_seen = [b for _, b in seen]
        assert statuses == {200}, f"failed requests during reload: {statuses}"
        assert backends_seen[0] == "premium" and backends_seen[-1] == "eco"
        assert len(seen) > 50
        assert "config reload rejected" in proc.output()


def test_sigterm_drains_streams_in_flight(
    workdir: Path, backends: Backends, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "routeiq.yaml")
    with routeiq_server(config, workdir, {"ROUTEIQ_GRACE_PERIOD_S": "10"}) as (proc, port):
        stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, backends)
        try:

            def stream(_: int) -> tuple[int, bytes]:
                status, _, raw = stack.post(CHAT, body("gpt-4o-mini", stream=True))
                return status, raw

            with ThreadPoolExecutor(6) as pool:
                futures = [pool.submit(stream, i) for i in range(6)]
                time.sleep(0.2)  # the streams are flowing (each takes ~0.5 s)
                proc.signal(signal.SIGTERM)
                results = [f.result(timeout=30) for f in futures]
            assert proc.proc.wait(15) == 0
        finally:
            stack.envoy.stop()
        for status, raw in results:
            assert status == 200
            assert raw.rstrip().endswith(b"data: [DONE]")
        assert "routeiq draining" in proc.output()
