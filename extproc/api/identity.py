"""Who is calling: team, user and a hash of the API key, from sources the operator trusts.

Sources, in this order (``spec.identity``):

1. **Verified JWT claims** (``jwt``): the bearer token's signature, expiry, issuer and
   audience are checked (``extproc.api.jwt_auth``); its claims name team and user.
2. **Issued API keys** (``apiKeys``): a file of the SHA-256 of every key the
   operator issued, with its team and user (``extproc.api.api_keys``). Holding the key
   is the proof; a key not listed names nobody.
3. **Trusted headers** (``trustedHeaders``): headers that an authenticating hop in
   front of RouteIQ sets on every request after removing whatever a client sent. They
   fill only what the claims left out. None is trusted unless declared: a client can
   put any ``x-team`` on its request.
4. **The body's ``user`` field**: written by the client, so a user only with
   ``bodyUser: fallback`` (an application that is itself trusted to name its end
   users); ignored otherwise (policies still see it in ``parsed_body.user``).

Anything not named by these is **anonymous**: budgets put such callers in one shared
bucket per limit (``whenMissing: shared``), so omitting or rotating a header escapes
nothing. With ``jwt`` configured but not ``required``, a request without a token (or
with an opaque API key) is anonymous, never named by an untrusted header.

The raw API key never leaves this module: policies, budgets and logs see only a short
SHA-256 prefix, enough to tell keys apart and useless to replay. The key is whatever
the client sent; it identifies a caller only as far as something validates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from extproc.api.api_keys import ApiKeyTable, key_digest
from extproc.api.jwt_auth import JwtSpec, JwtVerifier
from extproc.config.base import Spec

_HEADER_NAME = r"^[a-z0-9-]+$"
_RENAMED = {
    "teamHeader": "team",
    "team_header": "team",
    "userHeader": "user",
    "user_header": "user",
}

Source = Literal["jwt", "api_key", "headers", "body", "anonymous"]


class TrustedHeaders(Spec):
    """Identity headers set by an authenticating hop in front of RouteIQ (lower-case names).

    Declare a header only if that hop (the mesh's authentication: Envoy ``jwt_authn``
    with ``claim_to_headers``, an ``ext_authz`` service, an API gateway) sets it on
    every request and removes any value a client sent; the shipped Envoy configs
    remove ``x-team`` and ``x-user-id`` from client requests for that reason.
    """

    team: str | None = Field(default=None, pattern=_HEADER_NAME)
    user: str | None = Field(default=None, pattern=_HEADER_NAME)


class IdentitySpec(Spec):
    """Who is calling: verified JWT claims, then trusted headers, else anonymous.

    ``apiKeyHeaders``: where the API key is read (hashed; the first present wins).
    ``bodyUser``: ``ignore`` (default) or ``fallback``: the OpenAI ``user`` body field
    names the user when nothing trusted does.
    """

    jwt: JwtSpec | None = Field(
        default=None, description="Verify a bearer token; its claims then name team and user."
    )
    api_keys: str | None = Field(
        default=None,
        description="File (relative to the config) listing the SHA-256 of each API key you "
        "issued with its team and user; a request holding a listed key is that caller.",
    )
    trusted_headers: TrustedHeaders | None = Field(
        default=None,
        description="Headers set by your mesh's authentication (and stripped from clients); "
        "unset: no client header names a caller.",
    )
    body_user: Literal["ignore", "fallback"] = "ignore"
    api_key_headers: tuple[str, ...] = ("authorization", "x-api-key", "api-key")

    @model_validator(mode="before")
    @classmethod
    def _renamed_fields(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for old, new in _RENAMED.items():
                if old in data:
                    raise ValueError(
                        f"'{old}' was replaced by 'trustedHeaders.{new}': declare a header "
                        "there only if your mesh's authentication sets it and removes it "
                        "from client requests (client-sent identity headers are not trusted)"
                    )
        return data


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller of one request. ``source`` says which source named team or user:
    ``jwt``, ``headers`` (trusted), ``body`` (``bodyUser: fallback``) or ``anonymous``."""

    team: str | None
    user: str | None
    api_key_hash: str | None
    claims: Mapping[str, Any] | None = None  # verified JWT claims (policy input only)
    source: Source = "anonymous"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "team": self.team,
            "user": self.user,
            "api_key_hash": self.api_key_hash,
            "source": self.source,
        }


def hash_api_key(value: str) -> str:
    """The short hash of a key that policies, budgets and logs see."""
    return key_digest(value)[:16]


def _api_key_digest(headers: Mapping[str, str], spec: IdentitySpec) -> str | None:
    for name in spec.api_key_headers:
        value = headers.get(name)
        if value:
            return key_digest(value)
    return None


def identify(
    headers: Mapping[str, str],
    spec: IdentitySpec,
    body_user: str | None,
    verifier: JwtVerifier | None = None,
    keys: ApiKeyTable | None = None,
) -> Caller:
    """The caller of a request, from the sources in the module docstring, in order.

    ``body_user`` is the body's ``user`` field (used only with ``bodyUser: fallback``).
    With a ``verifier``, a token that does not verify raises a 401 ``ApiError``; no
    token (when not required) leaves the claims empty.
    """
    claims = verifier.claims(headers) if verifier is not None else None
    digest = _api_key_digest(headers, spec)
    team = user = None
    source: Source = "anonymous"
    if claims is not None and verifier is not None:
        team, user = verifier.team_and_user(claims)
        source = "jwt"
    if keys is not None and digest is not None and team is None and user is None:
        owner = keys.owner(digest)
        if owner is not None:
            team, user, source = owner.team, owner.user, "api_key"
    trusted = spec.trusted_headers
    if trusted is not None:
        if team is None and trusted.team is not None:
            team = headers.get(trusted.team) or None
        if user is None and trusted.user is not None:
            user = headers.get(trusted.user) or None
        if source == "anonymous" and (team or user):
            source = "headers"
    if user is None and body_user and spec.body_user == "fallback":
        user = body_user
        if source == "anonymous":
            source = "body"
    return Caller(team, user, digest[:16] if digest else None, claims, source)
