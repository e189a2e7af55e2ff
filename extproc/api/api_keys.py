"""API keys the operator issued, as an identity source: key -> team and user.

The operator lists issued keys by their SHA-256 (hex) in a YAML file next to the
config (``spec.identity.apiKeys``), never the keys themselves, like a virtual-key table
of an LLM gateway::

    keys:
      - sha256: 5e8848...   # echo -n "$KEY" | sha256sum
        team: support
        user: alice          # optional

A request whose API key (``apiKeyHeaders``; ``Bearer`` stripped) hashes to a listed
entry is that team and user: the client proves it holds the key, so unlike a plain
``x-team`` header it cannot claim another team. A key not in the table names nobody.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pydantic import Field, ValidationError

from extproc.config.base import Spec
from extproc.config.errors import ConfigError
from extproc.config.safe_yaml import load_yaml, read_bounded


class IssuedKey(Spec):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    team: str | None = Field(default=None, min_length=1, max_length=128)
    user: str | None = Field(default=None, min_length=1, max_length=128)


class IssuedKeys(Spec):
    keys: tuple[IssuedKey, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyOwner:
    team: str | None
    user: str | None


def key_digest(header_value: str) -> str:
    """SHA-256 hex of the key in an API-key header value (``Bearer`` prefix removed)."""
    token = header_value.removeprefix("Bearer ").removeprefix("bearer ").strip()
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyTable:
    """Issued keys by digest; built once per snapshot."""

    owners: Mapping[str, KeyOwner]

    def owner(self, digest: str) -> KeyOwner | None:
        return self.owners.get(digest)


def load_api_keys(path: Path) -> ApiKeyTable:
    """Read and check an issued-keys file; a one-line ``ConfigError`` when unusable."""
    doc = load_yaml(read_bounded(path), str(path))
    try:
        issued = IssuedKeys.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    owners: dict[str, KeyOwner] = {}
    for key in issued.keys:
        if key.sha256 in owners:
            raise ConfigError(f"{path}: key {key.sha256[:12]}... is listed twice")
        owners[key.sha256] = KeyOwner(key.team, key.user)
    return ApiKeyTable(MappingProxyType(owners))
