"""Profiles: what the client (or a policy) asked for instead of a concrete model.

``auto`` classifies the prompt and picks the tier its category needs; ``eco`` does the
same but never above the eco tier. ``free``, ``standard`` and ``premium`` ask for that
tier whatever the prompt says; ``reasoning`` asks for the premium tier, prefers
backends with the ``reasoning`` capability, and on each backend the model marked
``reasoning: true`` (else the backend's first model). A profile is named by the
request's model (``auto``, ``eco``, ``routeiq/eco``), by the ``x-routeiq-profile``
header when the model is ``auto``, or by a policy.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from extproc.config.backend import Backend, ServedModel


class Profile(enum.StrEnum):
    AUTO = "auto"
    ECO = "eco"
    STANDARD = "standard"
    PREMIUM = "premium"
    FREE = "free"
    REASONING = "reasoning"

    @property
    def classifies(self) -> bool:
        """Whether the prompt's category matters for this profile."""
        return self in (Profile.AUTO, Profile.ECO)


PROFILE_HEADER = "x-routeiq-profile"
PREFIX = "routeiq/"


def profile_from_model(model: str) -> Profile | None:
    """The profile a model name asks for (``auto``, ``eco``, ``routeiq/premium``...)."""
    name = model.removeprefix(PREFIX)
    try:
        return Profile(name)
    except ValueError:
        return None


def profile_from_header(headers: Mapping[str, str]) -> Profile | None:
    value = headers.get(PROFILE_HEADER)
    if not value:
        return None
    try:
        return Profile(value.strip().lower())
    except ValueError:
        return None


def profile_model(backend: Backend, profile: Profile) -> ServedModel:
    """The model ``backend`` serves a ``profile`` request with: for ``reasoning`` its
    first model marked ``reasoning: true``, otherwise (and when none is) its first model."""
    if profile is Profile.REASONING:
        for model in backend.models:
            if model.reasoning:
                return model
    return backend.default_model
