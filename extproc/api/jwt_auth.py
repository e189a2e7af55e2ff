"""Verified JWT claims as the caller's identity.

Headers such as ``x-team`` are only as trustworthy as whatever sets them (and are
ignored unless ``spec.identity.trustedHeaders`` declares them). When the operator
configures ``spec.identity.jwt``, a bearer token is verified (signature with the
configured public keys, expiry, issuer, audience) and its claims name the team and the
user; a token that fails verification is refused with a 401, never ignored. Without
``required``, a request with no token, or with an opaque API key in the same header,
is anonymous. Keys are read once per config snapshot (JWKS or PEM files next to the
YAML); nothing is fetched at run time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import get_default_algorithms
from pydantic import Field

from extproc.api.errors import ApiError
from extproc.config.base import Spec
from extproc.config.errors import ConfigError


class JwtSpec(Spec):
    """Verify a bearer token and take the caller from its claims.

    ``publicKeys``: JWKS (``.json``) or PEM files, relative to the config file; a token's
    ``kid`` selects the key when the JWKS has several. ``teamClaim``/``userClaim`` are
    dotted paths into the claims (a list value gives its first item). With
    ``required``, a request without a token is refused; a token that does not verify
    is always refused.
    """

    header: str = Field(default="authorization", pattern=r"^[a-z0-9-]+$")
    public_keys: tuple[str, ...] = Field(min_length=1)
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    issuer: str | None = None
    audience: str | None = None
    team_claim: str = "team"
    user_claim: str = "sub"
    required: bool = False
    leeway_seconds: float = Field(default=30.0, ge=0, le=600)


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        message,
        "invalid_request_error",
        "invalid_token",
        headers=(("www-authenticate", "Bearer"),),
    )


def _claim(claims: Mapping[str, Any], path: str) -> str | None:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


class JwtVerifier:
    """Built once per snapshot; ``claims(headers)`` per request."""

    def __init__(self, spec: JwtSpec, base_dir: Path) -> None:
        self.spec = spec
        self._keys: dict[str | None, Any] = {}
        algorithms = get_default_algorithms()
        unknown = set(spec.algorithms) - set(algorithms)
        if unknown or any(a.upper().startswith("HS") or a == "none" for a in spec.algorithms):
            raise ConfigError(
                f"identity.jwt.algorithms: only asymmetric algorithms are accepted, got "
                f"{sorted(spec.algorithms)}"
            )
        for rel in spec.public_keys:
            path = base_dir / rel
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigError(f"identity.jwt: cannot read {path}: {exc.strerror}") from None
            try:
                if path.suffix == ".json":
                    for jwk in json.loads(text).get("keys", []):
                        key = jwt.PyJWK(jwk)
                        self._keys[jwk.get("kid")] = key.key
                else:
                    self._keys[None] = serialization.load_pem_public_key(text.encode())
            except (ValueError, jwt.PyJWTError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(
                    f"identity.jwt: {path} holds no usable public key: {exc}"
                ) from None
        if not self._keys:
            raise ConfigError("identity.jwt: no public key loaded")

    def claims(self, headers: Mapping[str, str]) -> dict[str, Any] | None:
        """The verified claims, None when no token was sent (and none is required);
        raises a 401 ``ApiError`` for a token that does not verify."""
        raw = headers.get(self.spec.header, "")
        token = raw[7:].strip() if raw[:7].lower() == "bearer " else raw.strip()
        if not token or token.count(".") != 2:
            if self.spec.required:
                raise unauthorized("A valid bearer token is required.")
            return None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) or (self._keys.get(None) if kid is None else None)
            if key is None and len(self._keys) == 1:
                key = next(iter(self._keys.values()))
            if key is None:
                raise unauthorized("The token was signed with an unknown key.")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.spec.algorithms),
                issuer=self.spec.issuer,
                audience=self.spec.audience,
                leeway=self.spec.leeway_seconds,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("The token has expired.") from None
        except jwt.PyJWTError as exc:
            # The exception names what failed (signature, audience...), never the token.
            raise unauthorized(f"The token is not valid: {type(exc).__name__}.") from None
        return claims

    def team_and_user(self, claims: Mapping[str, Any]) -> tuple[str | None, str | None]:
        return _claim(claims, self.spec.team_claim), _claim(claims, self.spec.user_claim)
