"""A deterministic corpus of policy inputs and data variants for the differential test.

Inputs vary everything the shipped policies branch on: teams (listed, pinned, empty
allow-list, unknown, missing), models (allowed, not allowed, profiles), token counts
around each ceiling, max_tokens present or null, classification headers in several
spellings, and detector findings; data variants flip default-deny, dry-run and the
in-cluster backend list.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from extproc.policy.bundle import PolicyBundle
from tests.policy.conftest import request_doc

TEAMS = ["research", "support", "finance", "interns", "marketing", None, ""]
MODELS = ["gpt-4o", "gpt-4o-mini", "o3-mini", "auto", "eco", "premium", "llama-3-70b"]
TOKENS = [0, 5, 900, 7_999, 8_000, 8_001, 31_999, 32_000, 32_001, 63_000, 64_001, 250_000]
HEADERS = [
    {},
    {"x-data-classification": "confidential"},
    {"x-data-classification": "CONFIDENTIAL"},
    {"x-data-classification": "Restricted"},
    {"x-data-classification": "public"},
    {"x-team": "spoofed", "content-type": "application/json"},
]
FINDING_KINDS = ["email", "payment_card", "secret", "private_key"]

DATA_VARIANTS: list[dict[str, Any]] = [
    {},
    {"default_deny": True},
    {"dry_run": True},
    {
        "default_deny": True,
        "dry_run": True,
        "confidential": {"in_cluster_backends": ["local", "gpu"]},
    },
]


def inputs(count: int, seed: int = 20240611) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(count):
        findings = {k: rng.randint(1, 3) for k in FINDING_KINDS if rng.random() < 0.2}
        max_tokens = rng.choice([None, 0, 1, 256, 4_096, 40_000])
        doc = request_doc(
            rng.choice(TEAMS),
            rng.choice(MODELS),
            prompt_tokens=rng.choice(TOKENS),
            max_tokens=max_tokens,
            headers=dict(rng.choice(HEADERS)),
            findings=findings,
        )
        doc["routeiq"]["stream"] = rng.random() < 0.3
        yield doc


def with_data(bundle: PolicyBundle, overrides: dict[str, Any]) -> PolicyBundle:
    data = copy.deepcopy(dict(bundle.data))
    section = data["routeiq_data"]
    for key, value in overrides.items():
        if isinstance(value, dict):
            section[key] = {**section.get(key, {}), **value}
        else:
            section[key] = value
    return PolicyBundle(bundle.modules, bundle.tests, data)
