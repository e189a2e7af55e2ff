"""Who is calling: team, user and a hash of the API key, from configurable headers.

The raw key never leaves this module: policies, budgets and logs see only a short
SHA-256 prefix, enough to tell keys apart and useless to replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from extproc.api.jwt_auth import JwtSpec, JwtVerifier
from extproc.config.base import Spec


class IdentitySpec(Spec):
    """Headers (lower-case) that name the caller. Put your gateway's authenticated ones here."""

    team_header: str = Field("x-team", pattern=r"^[a-z0-9-]+$")
    user_header: str = Field("x-user-id", pattern=r"^[a-z0-9-]+$")
    api_key_headers: tuple[str, ...] = ("authorization", "x-api-key", "api-key")
    jwt: JwtSpec | None = Field(
        default=None, description="Verify a bearer token; its claims then name team and user."
    )


@dataclass(frozen=True, slots=True)
class Caller:
    team: str | None
    user: str | None
    api_key_hash: str | None
    claims: Mapping[str, Any] | None = None  # verified JWT claims (policy input only)

    def as_dict(self) -> dict[str, str | None]:
        return {"team": self.team, "user": self.user, "api_key_hash": self.api_key_hash}


def hash_api_key(value: str) -> str:
    token = value.removeprefix("Bearer ").removeprefix("bearer ").strip()
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def identify(
    headers: Mapping[str, str],
    spec: IdentitySpec,
    body_user: str | None,
    verifier: JwtVerifier | None = None,
) -> Caller:
    """The caller of a request; ``body_user`` (OpenAI's ``user`` field) is the user fallback.

    With a ``verifier``, verified claims name the team and user (headers only fill what
    the claims leave out); a token that does not verify raises a 401 ``ApiError``.
    """
    key_hash = None
    for name in spec.api_key_headers:
        value = headers.get(name)
        if value:
            key_hash = hash_api_key(value)
            break
    claims = verifier.claims(headers) if verifier is not None else None
    team = user = None
    if claims is not None and verifier is not None:
        team, user = verifier.team_and_user(claims)
    return Caller(
        team=team or headers.get(spec.team_header) or None,
        user=user or headers.get(spec.user_header) or body_user or None,
        api_key_hash=key_hash,
        claims=claims,
    )
