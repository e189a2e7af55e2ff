"""The embedded engine on the shipped policies, build-time checks and thread affinity."""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path

import pytest

from extproc.config.errors import ConfigError
from extproc.policy import (
    AllowAllEngine,
    EmbeddedEngine,
    PolicyConfigError,
    PolicyEngine,
    PolicySpec,
    build_policy_engine,
)
from tests.policy.conftest import REPO, SHIPPED, request_doc


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def test_engine_none_allows_everything() -> None:
    engine = build_policy_engine(PolicySpec(), REPO)
    assert isinstance(engine, AllowAllEngine) and isinstance(engine, PolicyEngine)
    result = await engine.evaluate(request_doc())
    assert result.allowed and result.engine == "none" and result.allowed_backends is None


async def test_shipped_allow_with_constraints(shipped: EmbeddedEngine) -> None:
    assert shipped.mode == "vm", shipped.vm_fallback
    result = await shipped.evaluate(request_doc("support", "auto"))
    assert result.allowed and result.http_status == 200
    assert result.allowed_models == frozenset({"gpt-4o-mini"})
    assert result.max_tier == "eco"
    assert result.rule_ids == ("team-max-tier", "team-model-allowlist")
    assert 0 < result.latency_s < 0.05


async def test_shipped_deny_gives_status_message_and_openai_error(shipped: EmbeddedEngine) -> None:
    result = await shipped.evaluate(request_doc("support", "gpt-4o"))
    assert not result.allowed and result.http_status == 403
    assert result.message == "Team 'support' may not use model 'gpt-4o'."
    error = result.api_error()
    assert error.status == 403 and error.code == "policy_denied"
    assert b"may not use model" in error.body()


async def test_confidential_header_requires_in_cluster(shipped: EmbeddedEngine) -> None:
    doc = request_doc(headers={"x-data-classification": "restricted"})
    result = await shipped.evaluate(doc)
    assert result.allowed and result.require_in_cluster
    assert result.headers == (("x-routeiq-confidential", "true"),)
    assert result.allowed_backends is None


async def test_team_pinned_backend(shipped: EmbeddedEngine) -> None:
    result = await shipped.evaluate(request_doc("finance"))
    assert result.allowed_backends == frozenset({"local"})


async def test_token_ceiling(shipped: EmbeddedEngine) -> None:
    result = await shipped.evaluate(request_doc(prompt_tokens=31_000, max_tokens=2_000))
    assert not result.allowed and result.rule_ids == ("token-ceiling",)


async def test_spec_dry_run_turns_deny_into_reported_allow() -> None:
    engine = build_policy_engine(SHIPPED.model_copy(update={"dry_run": True}), REPO)
    result = await engine.evaluate(request_doc("support", "gpt-4o"))
    assert result.allowed and result.http_status == 200
    assert result.dry_run is not None and result.dry_run.would_deny
    assert result.dry_run.http_status == 403
    assert result.dry_run.rule_ids == ("team-max-tier", "team-model-allowlist")
    engine.close()


async def test_data_dry_run_switch(tmp_path: Path) -> None:
    _write(tmp_path, "data/dry.yaml", "routeiq_data:\n  dry_run: true\n")
    spec = PolicySpec(
        engine="embedded",
        modules=(str(REPO / "policies"),),
        data=(str(REPO / "policies/data"), "data/dry.yaml"),
    )
    with pytest.raises(ConfigError, match="already set by another data document"):
        build_policy_engine(spec, tmp_path)


async def test_plain_boolean_policy(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "p/allow.rego",
        "package envoy.authz\nimport rego.v1\ndefault allow := false\n"
        'allow if input.attributes.request.http.method == "POST"\n',
    )
    spec = PolicySpec(
        engine="embedded", modules=("p",), query="data.envoy.authz.allow", deny_status=451
    )
    engine = build_policy_engine(spec, tmp_path)
    assert (await engine.evaluate(request_doc())).allowed
    doc = request_doc()
    doc["attributes"]["request"]["http"]["method"] = "GET"
    denied = await engine.evaluate(doc)
    assert not denied.allowed and denied.http_status == 451
    engine.close()


def test_broken_rego_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "p/ok.rego", "package routeiq\nimport rego.v1\ndecision := true\n")
    _write(tmp_path, "p/broken.rego", "package routeiq\nimport rego.v1\n\nx := {\n")
    spec = PolicySpec(engine="embedded", modules=("p",))
    with pytest.raises(PolicyConfigError) as info:
        build_policy_engine(spec, tmp_path)
    message = str(info.value)
    assert "broken.rego:" in message and "Rego error in" in message
    assert "Stack backtrace" not in message
    assert isinstance(info.value, ConfigError)


def test_missing_path_and_undefined_query_and_bad_decision(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_policy_engine(PolicySpec(engine="embedded", modules=("nope",)), tmp_path)
    _write(tmp_path, "p/a.rego", "package other\nimport rego.v1\nx := 1\n")
    with pytest.raises(ConfigError, match="undefined for a sample request"):
        build_policy_engine(PolicySpec(engine="embedded", modules=("p",)), tmp_path)
    _write(tmp_path, "q/a.rego", 'package routeiq\nimport rego.v1\ndecision := {"allowed": 1}\n')
    with pytest.raises(ConfigError, match="'allowed' must be a boolean"):
        build_policy_engine(PolicySpec(engine="embedded", modules=("q",)), tmp_path)
    _write(tmp_path, "d/bad.yaml", "routeiq_data: [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        build_policy_engine(
            PolicySpec(engine="embedded", modules=(str(REPO / "policies"),), data=("d",)), tmp_path
        )


async def test_runtime_error_follows_failure_mode(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "p/a.rego",
        "package routeiq\nimport rego.v1\n"
        'decision := {"allowed": x} if { x := input.routeiq.flag }\n'
        'decision := {"allowed": true} if not input.routeiq.flag\n',
    )
    for mode, allowed, status in (("open", True, 200), ("closed", False, 503)):
        spec = PolicySpec(engine="embedded", modules=("p",), failure_mode=mode)
        engine = build_policy_engine(spec, tmp_path)
        doc = request_doc()
        doc["routeiq"]["flag"] = "yes"  # a string where a boolean is needed
        result = await engine.evaluate(doc)
        assert result.engine_unavailable and result.allowed is allowed
        assert result.http_status == status
        assert result.reason.startswith("policy engine unavailable")
        engine.close()


def test_per_thread_evaluators_and_close_from_another_thread() -> None:
    """Evaluate on several threads, close and free the engine on yet another thread:
    no regorus panic, no wrong-thread drop (pytest turns those into errors)."""
    first = build_policy_engine(SHIPPED, REPO)
    assert isinstance(first, EmbeddedEngine)
    holder = [first]
    del first
    results: list[bool] = []
    gate = threading.Barrier(3)

    def worker() -> None:
        gate.wait()
        for _ in range(50):
            results.append(holder[0].decide(request_doc("support", "gpt-4o")).allowed)
        # a later engine on the same thread sweeps the closed one's evaluator
        gate.wait()
        gate.wait()
        other.decide(request_doc())

    other = build_policy_engine(SHIPPED, REPO)
    assert isinstance(other, EmbeddedEngine)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    gate.wait()
    gate.wait()
    closer = threading.Thread(target=holder[0].close)
    closer.start()
    closer.join()
    gate.wait()
    for t in threads:
        t.join()
    holder.clear()  # the last reference goes on the main thread
    gc.collect()
    assert results == [False] * 100
    other.close()


# A rule whose builtin panics inside regorus (a Rust panic is a BaseException in Python,
# not an Exception) when a client sends a huge max_tokens.
PANICKY = (
    "package routeiq\nimport rego.v1\n"
    'default decision := {"allowed": true}\n'
    'decision := {"allowed": count(numbers.range(1, input.routeiq.max_tokens)) > 0} if {\n'
    "    input.routeiq.max_tokens > 1000000\n}\n"
)


@pytest.mark.parametrize("evaluator", ["vm", "interpreter"])
@pytest.mark.parametrize(
    ("mode", "allowed", "status"), [("open", True, 200), ("closed", False, 503)]
)
async def test_an_engine_panic_stays_inside_the_failure_mode(
    tmp_path: Path, evaluator: str, mode: str, allowed: bool, status: int
) -> None:
    _write(tmp_path, "p/a.rego", PANICKY)
    spec = PolicySpec(engine="embedded", modules=("p",), failure_mode=mode, evaluator=evaluator)
    engine = build_policy_engine(spec, tmp_path)
    doc = request_doc()
    doc["routeiq"]["max_tokens"] = 10**18
    result = await engine.evaluate(doc)
    assert result.engine_unavailable and result.allowed is allowed
    assert result.http_status == status and "PanicException" in result.reason
    # the thread's evaluator was rebuilt: the next ordinary request is answered normally
    ok = await engine.evaluate(request_doc())
    assert ok.allowed and not ok.engine_unavailable
    engine.close()


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_an_unencodable_input_stays_inside_the_failure_mode(
    shipped: EmbeddedEngine, mode: str
) -> None:
    spec = SHIPPED.model_copy(update={"failure_mode": mode})
    engine = build_policy_engine(spec, REPO)
    deep: object = 1
    for _ in range(300):  # past orjson's 255 levels: what the parser's limits now prevent
        deep = [deep]
    doc = request_doc()
    doc["parsed_body"]["deep"] = deep
    result = await engine.evaluate(doc)
    assert result.engine_unavailable and result.allowed is (mode == "open")
    engine.close()


async def test_a_policy_that_fails_to_compile_leaves_no_engine_behind(tmp_path: Path) -> None:
    """A failed build in a worker thread (as the reload watcher runs it) must not keep a
    regorus object alive in the exception it raises: freed on the event loop's thread,
    it would log "Engine is unsendable, but is being dropped on another thread" (pytest
    turns that unraisable error into a failure)."""
    _write(tmp_path, "p/ok.rego", "package routeiq\nimport rego.v1\ndecision := true\n")
    _write(tmp_path, "p/broken.rego", "package routeiq\nimport rego.v1\n\nx := {\n")
    _write(tmp_path, "q/a.rego", "package other\nimport rego.v1\nx := 1\n")
    _write(
        tmp_path,
        "r/a.rego",
        "package routeiq\nimport rego.v1\n"  # panics on the probes
        'decision := {"allowed": n > 0} if {\n'
        "    n := count(numbers.range(1, input.routeiq.prompt_tokens + 1e18))\n}\n",
    )
    errors = []
    for module in ("p", "q", "r"):
        spec = PolicySpec(engine="embedded", modules=(module,), evaluator="interpreter")
        try:
            await asyncio.to_thread(build_policy_engine, spec, tmp_path)
        except ConfigError as exc:
            errors.append(str(exc))
        gc.collect()  # the error (and anything it references) is freed on this thread
    assert len(errors) == 3 and "broken.rego" in errors[0]
