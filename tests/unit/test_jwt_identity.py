"""Verified JWT claims as the caller: team and user from the token, bad tokens refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from extproc.api.openai import Endpoint, parse_request
from extproc.config.errors import ConfigError
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.decide import decide
from extproc.decision import Outcome

CONFIG = """
apiVersion: routeiq.dev/v1alpha1
kind: RoutingConfig
spec:
  backends:
    - {name: a, cluster: ca, models: [m1]}
  identity:
    jwt:
      publicKeys: [{keys}]
      issuer: https://idp.test
      audience: routeiq
      teamClaim: org.team
      required: {required}
  policy:
    engine: embedded
    modules: [p.rego]
"""
# The policy admits only callers whose verified claims carry the "llm" scope.
REGO = """package routeiq
default decision := {"allowed": false, "message": "no llm scope"}
decision := {"allowed": true} if { "llm" in input.routeiq.caller.claims.scope }
"""


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write(tmp_path: Path, key: Any, *, jwks: bool, required: bool = False) -> Path:
    public = key.public_key()
    if jwks:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        (tmp_path / "keys.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
        keys = "keys.json"
    else:
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (tmp_path / "key.pem").write_bytes(pem)
        keys = "key.pem"
    (tmp_path / "p.rego").write_text(REGO)
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("{keys}", keys).replace("{required}", str(required).lower()))
    return path


def token(key: Any, alg: str = "RS256", kid: str | None = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://idp.test",
        "aud": "routeiq",
        "sub": "alice",
        "exp": now + 60,
        "org": {"team": ["research"]},
        "scope": ["llm"],
        **overrides,
    }
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid} if kid else None)


async def run(snapshot: Snapshot, headers: dict[str, str]) -> Any:
    body = json.dumps({"model": "m1", "messages": [{"role": "user", "content": "x"}]})
    req = parse_request(
        Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", headers, body.encode()
    )
    return await decide(req, snapshot)


@pytest.mark.parametrize("jwks", [True, False], ids=["jwks", "pem"])
async def test_claims_name_the_caller_and_reach_the_policy(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, jwks: bool
) -> None:
    snapshot = build_snapshot(write(tmp_path, rsa_key, jwks=jwks), with_router=False)
    good = {"authorization": f"Bearer {token(rsa_key)}", "x-team": "spoofed"}
    d = await run(snapshot, good)
    assert d.outcome is Outcome.ROUTED
    assert d.explain["caller"]["team"] == "research"  # the claim, not the header
    assert d.explain["caller"]["user"] == "alice"
    d = await run(snapshot, {"authorization": f"Bearer {token(rsa_key, scope=['read'])}"})
    assert d.error is not None and d.error.status == 403  # policy read the claims


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda k: token(k, exp=int(time.time()) - 3600), "expired"),
        (lambda k: token(k, aud="someone-else"), "InvalidAudienceError"),
        (lambda k: token(k, iss="https://evil.test"), "InvalidIssuerError"),
        (
            lambda k: token(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "InvalidSignatureError",
        ),
        (lambda k: token(k)[:-4] + "AAAA", "InvalidSignatureError"),
        (
            lambda k: jwt.encode(
                {"sub": "x", "exp": int(time.time()) + 60}, "s" * 32, algorithm="HS256"
            ),
            "InvalidAlgorithmError",
        ),
    ],
    ids=["expired", "audience", "issuer", "other-key", "tampered", "hs256"],
)
async def test_a_token_that_does_not_verify_is_401(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, make: Any, message: str
) -> None:
    snapshot = build_snapshot(write(tmp_path, rsa_key, jwks=True), with_router=False)
    d = await run(snapshot, {"authorization": f"Bearer {make(rsa_key)}"})
    assert d.error is not None
    assert (d.error.status, d.error.code) == (401, "invalid_token")
    assert message.lower() in d.error.message.lower()
    assert ("www-authenticate", "Bearer") in d.error.headers


async def test_missing_token_only_refused_when_required(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    optional = build_snapshot(write(tmp_path, rsa_key, jwks=True), with_router=False)
    d = await run(optional, {"x-team": "research"})
    assert d.error is not None and d.error.status == 403  # no claims: the policy says no
    required = build_snapshot(write(tmp_path, rsa_key, jwks=True, required=True), with_router=False)
    d = await run(required, {"x-team": "research"})
    assert d.error is not None and d.error.status == 401


def test_symmetric_algorithms_and_missing_keys_are_config_errors(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = write(tmp_path, rsa_key, jwks=True)
    path.write_text(path.read_text().replace("audience: routeiq", "algorithms: [HS256]"))
    with pytest.raises(ConfigError, match="asymmetric"):
        build_snapshot(path, with_router=False)
    path = write(tmp_path, rsa_key, jwks=True)
    path.write_text(path.read_text().replace("keys.json", "nope.json"))
    with pytest.raises(ConfigError, match="cannot read"):
        build_snapshot(path, with_router=False)


async def test_ec_keys_work_too(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = write(
        tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=2048), jwks=False
    )
    (tmp_path / "key.pem").write_bytes(pem)
    snapshot = build_snapshot(path, with_router=False)
    d = await run(snapshot, {"authorization": f"Bearer {token(key, alg='ES256', kid=None)}"})
    assert d.outcome is Outcome.ROUTED


async def test_jwt_not_required_and_no_token_is_anonymous_not_the_headers(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """No token (or an opaque API key) with an optional JWT: the caller is anonymous; a
    client's x-team names nobody unless trustedHeaders declares it."""
    path = write(tmp_path, rsa_key, jwks=True)
    path.write_text(path.read_text().replace("modules: [p.rego]", "modules: [open.rego]"))
    (tmp_path / "open.rego").write_text("package routeiq\ndefault decision := true\n")
    snapshot = build_snapshot(path, with_router=False)
    for headers in ({"x-team": "research"}, {"authorization": "Bearer sk-opaque", "x-team": "r"}):
        d = await run(snapshot, headers)
        assert d.outcome is Outcome.ROUTED
        assert d.explain["caller"]["team"] is None and d.explain["caller"]["user"] is None
        assert d.explain["caller"]["source"] == "anonymous"
    trusting = path.read_text().replace(
        "  identity:\n", "  identity:\n    trustedHeaders: {team: x-team}\n"
    )
    path.write_text(trusting)
    snapshot = build_snapshot(path, with_router=False)
    d = await run(snapshot, {"x-team": "research"})
    assert (d.explain["caller"]["team"], d.explain["caller"]["source"]) == ("research", "headers")
    d = await run(snapshot, {"authorization": f"Bearer {token(rsa_key)}", "x-team": "spoofed"})
    assert (d.explain["caller"]["team"], d.explain["caller"]["source"]) == ("research", "jwt")
