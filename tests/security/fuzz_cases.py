"""Seeded adversarial requests for the fuzz tests: headers, paths and bodies.

``case_for(seed, index)`` always builds the same request, so a failure is reproduced
from two integers. Each case starts from a plausible OpenAI request for the demo
config (config/routeiq.yaml) and applies a few mutations drawn from families an
attacker would try: spoofed ``x-routeiq-*`` and identity headers (any case,
duplicated, huge, not UTF-8), paths spelled to dodge an exact-string match
(percent-encoding, dot segments, doubled slashes, case, absolute form, ``;params``),
and bodies that are not what a parser expects (invalid JSON, deep nesting, huge
strings, odd types in every field, lone surrogates, NUL, big numbers, duplicate keys).
``note`` lists the mutations applied, for the report.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Every header value a client sends to impersonate RouteIQ carries this marker, so a
# spoofed value is recognised wherever it turns up.
SPOOF = "spoofed-by-client"
ROUTE_HEADER = "x-routeiq-cluster"
SPOOF_NAMES = (
    ROUTE_HEADER,
    "x-routeiq-backend",
    "x-routeiq-category",
    "x-routeiq-confidential",
    "x-routeiq-decision-id",
    "x-routeiq-tier",
    "x-routeiq-profile",
    "x-routeiq-overhead-ms",
    "x-routeiq-",
    "x-routeiq-anything",
)
CLUSTERS = ("demo_eco", "demo_premium", "demo_local")
MODELS = (
    "gpt-4o", "gpt-4o-mini", "o3", "llama-3.1-8b", "gpt4", "mini",
    "auto", "eco", "premium", "free", "standard", "reasoning",
    "GPT-4O", " gpt-4o", "gpt-4o\u0000", "o3-2025-04-16", "meta-llama/Llama-3.1-8B-Instruct",
    "unknown-model", "", "a" * 257, "\u202egpt-4o", "gpt-4o/../o3",
)  # fmt: skip
ENDPOINTS = ("chat/completions", "completions", "embeddings", "responses")
ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, -1e308, 1e308, 2**63, -(2**63) - 1, 10**30,
    "", "x", "\u0000", "\ud800", "\U0001f600" * 3, [], {}, [None], [[]], {"a": {"b": []}},
    [1, "two", None], {"role": "user"}, "a" * 5000,
)  # fmt: skip
TEAMS = ("research", "support", "finance", "interns", "nobody", "", "RESEARCH")


@dataclass(frozen=True, slots=True)
class Case:
    """One request as Envoy would hand it to ext_proc, plus the upstream's answer."""

    seed: int
    index: int
    method: str
    path: str
    headers: tuple[tuple[str, bytes], ...]
    body: bytes
    upstream_status: int
    upstream_body: bytes
    note: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return f"case_for({self.seed}, {self.index}) [{', '.join(self.note)}]"

    def client_routeiq_names(self, route_header: str = ROUTE_HEADER) -> set[str]:
        """Lower-cased names of every header that claims to come from RouteIQ."""
        names = {k.lower() for k, _ in self.headers}
        return {n for n in names if n.startswith("x-routeiq-") or n == route_header}


# -- paths -----------------------------------------------------------------------------


def _encode_some(rng: random.Random, path: str) -> str:
    out = []
    for ch in path:
        if ch.isalnum() and rng.random() < 0.3:
            out.append(f"%{ord(ch):02{rng.choice('xX')}}")
        else:
            out.append(ch)
    return "".join(out)


_PATH_MUTATIONS: dict[str, Callable[[random.Random, str], str]] = {
    "pct": _encode_some,
    "pct-slash": lambda r, p: (
        p.replace("/", r.choice(["%2F", "%2f", "%5C"]), 2)
        if r.random() < 0.5
        else p.replace("/", "%2F")
    ),
    "dot": lambda r, p: p.replace("/v1/", r.choice(["/v1/./", "/v1/x/../", "/x/../v1/"])),
    "dot-enc": lambda r, p: p.replace(
        "/v1/", r.choice(["/v1/%2e/", "/v1/x/%2E%2E/", "/v1/.%2e/v1/"])
    ),
    "double-enc": lambda r, p: p.replace("c", "%2563", 1),
    "slashes": lambda r, p: p.replace("/", "//", r.randint(1, 3)),
    "case": lambda r, p: "".join(c.upper() if r.random() < 0.5 else c for c in p),
    "query": lambda r, p: p + r.choice(["?", "?a=b", "?model=o3#frag", "#x", "?x=%2F..%2F"]),
    "trailing": lambda r, p: p + r.choice(["/", "//", "/.", ";x=1", "%00", "%", "%zz", " "]),
    "params": lambda r, p: p.replace("/chat", "/chat;v=1", 1).replace("/v1", "/v1;x", 1),
    "absolute": lambda r, p: r.choice(["http://gw", "https://evil.example:8443", "HTTP://x"]) + p,
    "backslash": lambda r, p: p.replace("/", "\\", r.randint(1, 2)),
    "unicode": lambda r, p: p + r.choice(["/\u00e9", "%C3%A9", "/\u0000", "\u202e"]),
    "long": lambda r, p: p + "/" + "a" * r.choice([256, 4096, 16384]),
    "outside": lambda r, p: r.choice(["/", "/v2/chat/completions", "/v1x/chat", "*", ""]),
    "prefix-only": lambda r, p: r.choice(["/v1", "/v1/", "/v1/models", "/v1/models/gpt-4o"]),
}


def make_path(rng: random.Random, endpoint: str, note: list[str]) -> str:
    path = f"/v1/{endpoint}"
    for _ in range(rng.choice([0, 0, 0, 0, 0, 0, 1, 1, 2, 3])):
        name = rng.choice(list(_PATH_MUTATIONS))
        note.append(f"path:{name}")
        path = _PATH_MUTATIONS[name](rng, path)
    return path


def make_method(rng: random.Random, note: list[str]) -> str:
    if rng.random() < 0.92:
        return "POST"
    method = rng.choice(["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "post", "PATCH", ""])
    note.append(f"method:{method or 'empty'}")
    return method


# -- headers ---------------------------------------------------------------------------


def _odd_bytes(rng: random.Random) -> bytes:
    return rng.choice(
        [
            b"\xff\xfe\xfd",
            "caf\u00e9".encode("latin-1"),
            b"\xc3\x28",
            b"\xed\xa0\x80",  # an encoded surrogate
            b"a\x00b",
            bytes(rng.randrange(128, 256) for _ in range(16)),
        ]
    )


def _spoof_value(rng: random.Random, name: str) -> bytes:
    if name == ROUTE_HEADER and rng.random() < 0.5:
        return rng.choice(CLUSTERS).encode()  # a real cluster: only removal stops it
    return rng.choice([SPOOF, f"{SPOOF}-premium", f"true;{SPOOF}"]).encode()


def _case_variant(rng: random.Random, name: str) -> str:
    return rng.choice([name, name.upper(), name.title(), name[:2].upper() + name[2:]])


def make_headers(rng: random.Random, note: list[str], body_len: int) -> list[tuple[str, bytes]]:
    headers: list[tuple[str, bytes]] = [(":authority", b"gw"), (":scheme", b"http")]
    content_type = rng.choices(
        [b"application/json", b"application/json; charset=utf-8", b"Application/JSON",
         b"application/vnd.api+json", b"text/plain", b"", b"application/jsonx", None],
        weights=[80, 5, 3, 2, 2, 1, 1, 2],
    )[0]  # fmt: skip
    if content_type is not None:
        headers.append(("content-type", content_type))
    if rng.random() < 0.3:
        length = rng.choice([str(body_len), "0", "1", str(10**12), "-1", "abc", "1e9", ""])
        headers.append(("content-length", length.encode()))
        note.append("hdr:content-length")
    if rng.random() < 0.5:
        for name in rng.sample(SPOOF_NAMES, rng.randint(1, 4)):
            headers.append((_case_variant(rng, name), _spoof_value(rng, name)))
        note.append("hdr:spoof")
    if rng.random() < 0.4:
        headers.append(("x-team", rng.choice(TEAMS).encode()))
    if rng.random() < 0.2:
        headers.append(("x-user-id", rng.choice([b"alice", b"", b"x" * 1024])))
    if rng.random() < 0.2:
        token = rng.choice([b"Bearer sk-test", b"Bearer ", b"bearer a.b.c", b"Basic Zm9vOmJhcg=="])
        headers.append(("authorization", token))
    if rng.random() < 0.15:
        headers.append(("x-data-classification", rng.choice([b"confidential", b"PUBLIC", b""])))
    _odd_headers(rng, headers, note)
    return headers


def _odd_headers(rng: random.Random, headers: list[tuple[str, bytes]], note: list[str]) -> None:
    if rng.random() < 0.1:
        name, value = rng.choice(headers[2:] or headers)
        headers.append((name, value + b"-dup"))
        headers.append((name, _odd_bytes(rng)))
        note.append("hdr:duplicate")
    if rng.random() < 0.05:
        name = rng.choice(["x-team", "x-routeiq-category", "x-padding", "user-agent"])
        headers.append((name, b"v" * rng.choice([8192, 65536])))
        note.append("hdr:huge")
    if rng.random() < 0.1:
        name = rng.choice(["x-team", "x-user-id", "x-routeiq-backend", "x-odd"])
        headers.append((name, _odd_bytes(rng)))
        note.append("hdr:non-utf8")
    if rng.random() < 0.05:
        for _ in range(rng.choice([50, 500])):
            headers.append((f"x-many-{rng.randrange(10**6)}", b"1"))
        note.append("hdr:many")


# -- bodies ----------------------------------------------------------------------------


def _text(rng: random.Random) -> str:
    return rng.choice(
        [
            "hello",
            "Prove that the square root of 2 is irrational, step by step.",
            "write a python function that reverses a list",
            "mail alice@example.com, card 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
            "\u0645\u0631\u062d\u0628\u0627 \U0001f600 \u202e\u0301\u0301",
            "",
        ]
    )


def _messages(rng: random.Random) -> list[Any]:
    messages: list[Any] = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": "Be brief."})
    for _ in range(rng.choice([1, 1, 2, 3])):
        content: Any = _text(rng)
        if rng.random() < 0.15:
            content = [{"type": "text", "text": _text(rng)}]
            if rng.random() < 0.3:
                content.append({"type": "image_url", "image_url": {"url": "data:,x"}})
        messages.append({"role": "user", "content": content})
    return messages


def base_body(rng: random.Random, endpoint: str) -> dict[str, Any]:
    # Mostly models the config serves (so that requests get past the model lookup).
    model = rng.choice(MODELS[:12] if rng.random() < 0.75 else MODELS)
    body: dict[str, Any] = {"model": model}
    if endpoint == "chat/completions":
        body["messages"] = _messages(rng)
    elif endpoint == "completions":
        body["prompt"] = rng.choice([_text(rng), [_text(rng), "b"], [1, 2, 3]])
    elif endpoint == "embeddings":
        body["input"] = rng.choice([_text(rng), [_text(rng)] * 3, [[1, 2], [3]]])
    else:
        body["input"] = rng.choice([_text(rng), _messages(rng)])
        if rng.random() < 0.3:
            body["instructions"] = _text(rng)
    for key, values in _OPTIONAL.items():
        if rng.random() < 0.15:
            body[key] = copy.deepcopy(rng.choice(values))
    return body


_OPTIONAL: dict[str, tuple[Any, ...]] = {
    "stream": (True, False),
    "max_tokens": (1, 100, 4096, 200_000),
    "max_completion_tokens": (16, 100_000),
    "temperature": (0, 0.7, 2),
    "tools": ([{"type": "function", "function": {"name": "f", "parameters": {}}}],),
    "tool_choice": ("auto", "none"),
    "response_format": ({"type": "json_object"}, {"type": "text"}),
    "n": (1, 2),
    "user": ("u1", ""),
    "stream_options": ({"include_usage": True},),
}


# Deep nesting is spliced into the serialized text (json.dumps itself recurses).
DEEP = "__deep_nesting__"


def _nested_text(rng: random.Random, depth: int) -> str:
    if rng.random() < 0.5:
        return "[" * depth + rng.choice(["1", "null", '"x"', "{}"]) + "]" * depth
    return '{"a":' * depth + "null" + "}" * depth


def _field_paths(body: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the body a value can be replaced (keys and list indexes)."""
    paths: list[tuple[Any, ...]] = []
    items = body.items() if isinstance(body, dict) else enumerate(body)
    for key, value in itertools.islice(items, 8):
        paths.append((*prefix, key))
        if isinstance(value, dict | list) and len(prefix) < 4:
            paths.extend(_field_paths(value, (*prefix, key)))
    return paths


def _replace(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _mutate_value(rng: random.Random, body: dict[str, Any], note: list[str]) -> None:
    paths = _field_paths(body)
    if not paths:
        return
    path = rng.choice(paths)
    kind = rng.choices(
        ["odd", "deep", "huge", "many", "unicode", "remove"], weights=[40, 12, 6, 4, 18, 20]
    )[0]
    note.append(f"body:{kind}@{'.'.join(map(str, path))[:40]}")
    if kind == "odd":
        _replace(body, path, copy.deepcopy(rng.choice(ODD_VALUES)))
    elif kind == "deep":
        depth = rng.choice([10, 62, 63, 64, 65, 128, 254, 255, 256, 1000, 5000, 50_000])
        _replace(body, path, f"{DEEP}{depth}")
    elif kind == "huge":
        _replace(body, path, rng.choice("ab@ 1\n") * rng.choice([65_536, 300_000, 900_000]))
    elif kind == "many":
        _replace(body, path, [rng.choice(ODD_VALUES[:8])] * rng.choice([1000, 20_000, 100_001]))
    elif kind == "unicode":
        _replace(
            body, path, rng.choice(["\ud800x", "\udfff", "\u0000\u0000", "\ufeff", "\U0010ffff"])
        )
    elif len(path) == 1:
        del body[path[0]]


def serialize(rng: random.Random, body: Any, note: list[str]) -> bytes:
    ensure_ascii = rng.random() < 0.5
    text = json.dumps(body, ensure_ascii=ensure_ascii)
    while DEEP in text:
        start = text.index(f'"{DEEP}')
        end = text.index('"', start + 1)
        depth = int(text[start + 1 + len(DEEP) : end])
        text = text[:start] + _nested_text(rng, depth) + text[end + 1 :]
    if rng.random() < 0.1:  # duplicate keys: the later one wins in most parsers
        text = text.replace("{", '{"model": "o3", ', 1) if text.startswith("{") else text
        note.append("raw:dup-key")
    return text.encode("utf-8", "surrogatepass")


_RAW_MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "truncate": lambda r, b: b[: r.randrange(len(b))] if b else b,
    "flip": lambda r, b: (
        bytes(c ^ (1 << r.randrange(8)) if r.random() < 0.01 else c for c in b[:4096]) + b[4096:]
    ),
    "bom": lambda r, b: b"\xef\xbb\xbf" + b,
    "trailing": lambda r, b: b + r.choice([b"x", b" {}", b"\x00", b"\n\n", b",]"]),
    "junk": lambda r, b: r.choice(
        [
            b"",
            b"null",
            b"[]",
            b"1",
            b'"x"',
            b"{",
            b"{}",
            b"NaN",
            b"{'model': 'o3'}",
            b'{"model": NaN}',
            b'{"max_tokens": Infinity, "model": "o3"}',
            b"// c\n{}",
            b'{"model":"o3","messages":[{"role":"user","content":"hi"}]}\x00',
            b"\x80\x81\x82",
            b"[" * 100_000,
            b'{"a":' * 3000,
        ]
    ),
    "big-number": lambda r, b: b.replace(b"{", b'{"max_tokens": 1' + b"0" * 400 + b", ", 1),
    "float-overflow": lambda r, b: b.replace(b"{", b'{"temperature": 1e999, ', 1),
    "oversize": lambda r, b: b.replace(b"{", b'{"pad": "' + b"p" * 1_050_000 + b'", ', 1),
}


def make_body(rng: random.Random, endpoint: str, note: list[str]) -> bytes:
    body = base_body(rng, endpoint)
    for _ in range(rng.choice([0, 0, 0, 0, 1, 1, 2, 3])):
        _mutate_value(rng, body, note)
    raw = serialize(rng, body, note)
    if rng.random() < 0.15:
        name = rng.choice(list(_RAW_MUTATIONS))
        note.append(f"raw:{name}")
        raw = _RAW_MUTATIONS[name](rng, raw)
    return raw


# -- upstream answers --------------------------------------------------------------------

_UPSTREAM_BODIES = (
    b'{"id":"x","object":"chat.completion","choices":[],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}',
    b'{"usage":{"prompt_tokens":-5,"completion_tokens":1e400,"total_tokens":"x"}}',
    b'data: {"choices":[]}\n\ndata: {"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n",
    b"data: {not json\n\ndata: [DONE]",
    b"\xff\xfe garbage",
    b"",
    b'{"usage":' * 2000,
)


def case_for(seed: int, index: int) -> Case:
    """The request number ``index`` of the fuzz run ``seed`` (deterministic)."""
    rng = random.Random(f"{seed}:{index}")
    note: list[str] = []
    endpoint = rng.choices(ENDPOINTS, weights=[70, 10, 10, 10])[0]
    method = make_method(rng, note)
    path = make_path(rng, endpoint, note)
    body = make_body(rng, endpoint, note)
    headers = make_headers(rng, note, len(body))
    return Case(
        seed=seed,
        index=index,
        method=method,
        path=path,
        headers=tuple(headers),
        body=body,
        upstream_status=rng.choices([200, 429, 500, 503], weights=[90, 4, 3, 3])[0],
        upstream_body=rng.choice(_UPSTREAM_BODIES),
        note=tuple(note),
    )
