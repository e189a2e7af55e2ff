"""``extproc.api.paths``: one canonical reading of every request path, and its verdict."""

from __future__ import annotations

import random
import string

import pytest
from pydantic import ValidationError

from extproc.api.openai import Endpoint
from extproc.api.paths import (
    DEFAULT_PASSTHROUGH,
    MAX_ECHO,
    PassthroughPath,
    Route,
    canonical_path,
    match_endpoint,
    match_request,
    split_target,
)
from extproc.config.schema import RoutingConfig

CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        (CHAT, CHAT),
        ("/v1/%63hat/completions", CHAT),
        ("/v1/%43HAT/completions", CHAT),
        ("/%76%31/chat/completions", CHAT),
        ("/v1//chat///completions", CHAT),
        ("//v1/chat/completions", CHAT),
        ("/v1/./chat/./completions", CHAT),
        ("/v1/x/y/../../chat/completions", CHAT),
        ("/v1/chat/x/%2e%2E/completions", CHAT),
        ("/v1/chat/completions/", CHAT),
        ("/v1/chat/completions/.", CHAT),
        ("/v1/chat%2Fcompletions", CHAT),
        ("/v1/chat%2fcompletions", CHAT),
        ("/v1%2Fchat%2Fcompletions", CHAT),
        ("/v1/chat%5Ccompletions", CHAT),
        ("/v1/chat\\completions", CHAT),
        ("\\v1\\chat\\completions", CHAT),
        ("/V1/CHAT/Completions", CHAT),
        ("/v1/chat/completions;x=1", CHAT),
        ("/v1/chat;a=b/completions;", CHAT),
        ("/v1;/chat/completions", CHAT),
        ("/v1/chat/..;/chat/completions", CHAT),
        ("/../../v1/chat/completions", CHAT),
        ("/x/../v1/chat/completions", CHAT),
        ("/v1/chat/completions%3Bx", "/v1/chat/completions%3bx"),
        ("/v1/chat/completions%3fa=b", "/v1/chat/completions%3fa=b"),
        ("/v1/chat/completions%20", "/v1/chat/completions%20"),
        ("/v1/chat/completions%252F", "/v1/chat/completions%252f"),
        ("/v1/%7Euser", "/v1/~user"),
        ("/", "/"),
        ("/..", "/"),
        ("*", None),
        ("", None),
        ("v1/chat/completions", None),
        ("%2Fv1/chat/completions", CHAT),
        ("%5cv1/chat/completions", CHAT),
    ],
)
def test_canonical_path(path: str, canonical: str | None) -> None:
    assert canonical_path(path) == canonical


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/v1/chat/completions?a=b#f", "/v1/chat/completions", "a=b"),
        ("/v1/chat/completions?", "/v1/chat/completions", ""),
        ("/v1/chat/completions#x?y", "/v1/chat/completions", ""),
        ("http://gw.example:8080/v1/chat/completions?q", "/v1/chat/completions", "q"),
        ("HTTPS://gw/v1/x", "/v1/x", ""),
    ],
)
def test_split_target(target: str, path: str, query: str) -> None:
    assert split_target(target) == (path, query)


@pytest.mark.parametrize(
    ("target", "upstream"),
    [
        (CHAT, CHAT),
        ("/V1/chat/completions", CHAT),
        ("/v1/%63hat/completions?api-version=1", CHAT + "?api-version=1"),
        ("/v1/chat/completions?", CHAT),
        ("http://gw/v1/chat/completions", CHAT),
        ("/v1/completions;x", "/v1/completions"),
        ("/v1/EMBEDDINGS", "/v1/embeddings"),
        ("/v1/responses/", "/v1/responses"),
    ],
)
def test_inference_paths_get_their_canonical_upstream_target(target: str, upstream: str) -> None:
    match = match_request("POST", target)
    assert match.route is Route.INFERENCE
    assert match.upstream_target == upstream
    assert match.error is None


@pytest.mark.parametrize(
    ("method", "target", "status", "code"),
    [
        ("POST", "/v1/files", 404, "unknown_path"),
        ("POST", "/v1", 404, "unknown_path"),
        ("POST", "/v1/", 404, "unknown_path"),
        ("POST", "/v1/chat", 404, "unknown_path"),
        ("POST", "/v1/chat/completions/x", 404, "unknown_path"),
        ("POST", "/v1/chat/completions%3Bx", 404, "unknown_path"),
        ("POST", "/v1/chat/completions%20", 404, "unknown_path"),
        ("POST", "/v1/models", 404, "unknown_path"),  # the default rule admits GET only
        ("PUT", "/v1/models", 404, "unknown_path"),
        ("GET", CHAT, 405, "method_not_allowed"),
        ("post", CHAT, 405, "method_not_allowed"),
        ("DELETE", "/V1/Chat/Completions", 405, "method_not_allowed"),
        ("POST", "/v1/chat/completions%2525", 400, "invalid_path"),
        ("POST", "/v1/%252e%252e/x", 400, "invalid_path"),
        ("POST", "/v1/chat/%zz", 400, "invalid_path"),
        ("POST", "/v1/chat/completions%", 400, "invalid_path"),
    ],
)
def test_refusals(method: str, target: str, status: int, code: str) -> None:
    match = match_request(method, target)
    assert match.route is Route.REFUSED
    assert match.error is not None
    assert (match.error.status, match.error.code) == (status, code)
    if status == 405:
        assert ("allow", "POST") in match.error.headers


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/v1/models"),
        ("HEAD", "/v1/models"),
        ("GET", "/v1/models/gpt-4o"),
        ("GET", "/V1/Models/"),
        ("GET", "/v1/models/org/some-model"),
    ],
)
def test_default_passthrough_is_read_only_models(method: str, target: str) -> None:
    assert match_request(method, target).route is Route.PASSTHROUGH


@pytest.mark.parametrize(
    ("method", "target"),
    [("POST", "/healthz"), ("GET", "/"), ("GET", "/v2/chat/completions"), ("GET", "*"),
     ("POST", "/v1x/chat/completions"), ("POST", "/v1/../chat/completions"),
     ("POST", "/other/%zz")],
)  # fmt: skip
def test_outside_the_prefix(method: str, target: str) -> None:
    assert match_request(method, target).route is Route.OUTSIDE


def test_rules_and_prefix() -> None:
    rules = (
        PassthroughPath(path="files/*", methods=frozenset({"GET", "POST"})),
        PassthroughPath(path="Batches"),
    )
    prefix = "/openai/v1"
    assert match_request("POST", "/openai/v1/files/abc", prefix, rules).route is Route.PASSTHROUGH
    assert match_request("POST", "/openai/v1/files", prefix, rules).route is Route.REFUSED
    assert match_request("GET", "/OPENAI/V1/batches", prefix, rules).route is Route.PASSTHROUGH
    assert match_request("POST", "/openai/v1/batches", prefix, rules).route is Route.REFUSED
    assert match_request("POST", "/v1/chat/completions", prefix, rules).route is Route.OUTSIDE
    chat = match_request("POST", "/openai/v1//chat/completions", prefix, rules)
    assert (chat.route, chat.upstream_target) == (Route.INFERENCE, "/openai/v1/chat/completions")
    # A passthrough rule never covers POST to an inference endpoint, even through dot segments.
    everything = (PassthroughPath(path="*", methods=frozenset({"GET", "POST", "OPTIONS"})),)
    assert match_request("POST", CHAT, "/v1", everything).route is Route.INFERENCE
    assert match_request("POST", "/v1/files/../chat/completions", "/v1", everything).endpoint is (
        Endpoint.CHAT_COMPLETIONS
    )
    assert match_request("GET", CHAT, "/v1", everything).route is Route.PASSTHROUGH
    assert match_request("OPTIONS", "/v1/anything", "/v1", everything).route is Route.PASSTHROUGH


def test_error_messages_echo_a_bounded_path() -> None:
    long = "/v1/" + "a" * 10_000
    match = match_request("POST", long)
    assert match.error is not None
    assert len(match.error.message) < MAX_ECHO + 100
    assert "/v1/" + "a" * (MAX_ECHO - 4) + "..." in match.error.message
    assert len(match_request("X" * 5000, CHAT).error.message) < MAX_ECHO + 100  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "/v1/models"},
        {"path": "models/"},
        {"path": "models*"},
        {"path": "a/*/b"},
        {"path": ""},
        {"path": "models", "methods": ["get"]},
        {"path": "models", "methods": []},
        {"path": "models", "other": 1},
    ],
)
def test_bad_rules_are_refused(rule: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PassthroughPath.model_validate(rule)


def test_rules_in_the_config() -> None:
    doc = {
        "spec": {
            "backends": [{"name": "a", "cluster": "a", "models": ["m"]}],
            "passthroughPaths": [{"path": "files/*", "methods": ["GET", "POST"]}],
        }
    }
    spec = RoutingConfig.model_validate(doc).spec
    assert spec.passthrough_paths == (
        PassthroughPath(path="files/*", methods=frozenset({"GET", "POST"})),
    )
    del doc["spec"]["passthroughPaths"]
    assert RoutingConfig.model_validate(doc).spec.passthrough_paths == DEFAULT_PASSTHROUGH


def test_match_endpoint_compatibility() -> None:
    assert match_endpoint(CHAT) is Endpoint.CHAT_COMPLETIONS
    assert match_endpoint("/v1//%63ompletions") is Endpoint.COMPLETIONS
    assert match_endpoint("/v1/models") is None
    assert match_endpoint("/x/embeddings", "/x") is Endpoint.EMBEDDINGS


def _mutate(rng: random.Random, path: str) -> str:
    """A random spelling of ``path`` that every lenient reader maps back to it."""
    out = []
    for ch in path:
        r = rng.random()
        if ch == "/" and r < 0.2:
            out.append(rng.choice(["//", "/./", "/x/../", "%2F", "%2f", "\\", "/;p=1/"]))
        elif ch.isalnum() and r < 0.2:
            out.append(f"%{ord(ch):02{rng.choice('xX')}}")
        elif ch.isalpha() and r < 0.4:
            out.append(ch.upper())
        else:
            out.append(ch)
    return "".join(out) + rng.choice(["", "/", "?", "?a=b", "#f", ";x", "/."])


def test_seeded_spellings_of_every_endpoint_are_decided() -> None:
    """2,000 random spellings of each endpoint: POST is inference with the canonical
    target, any other method is refused (never passed through undecided)."""
    rng = random.Random(17)
    for endpoint in Endpoint:
        canonical = f"/v1/{endpoint.value}"
        for _ in range(2000):
            target = _mutate(rng, canonical)
            post = match_request("POST", target)
            assert post.route is Route.INFERENCE, target
            assert post.upstream_target.split("?")[0] == canonical, target
            assert match_request("GET", target).route is Route.REFUSED, target


def test_seeded_garbage_never_raises() -> None:
    rng = random.Random(1717)
    alphabet = string.printable + "%%%///..;;\\"
    for _ in range(5000):
        target = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        match = match_request(rng.choice(["GET", "POST", "PUT"]), target)
        assert (match.error is not None) == (match.route is Route.REFUSED)
        if match.route is Route.INFERENCE:
            assert canonical_path(split_target(target)[0]) == canonical_path(
                match.upstream_target.split("?")[0]
            )
