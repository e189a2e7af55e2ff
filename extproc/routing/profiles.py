"""Profiles: what the client (or a policy) asked for instead of a concrete model.

``auto`` classifies the prompt and picks the tier its category needs. ``eco``,
``premium``, ``free`` and ``reasoning`` bias the choice whatever the prompt says.
A profile is named by the request's model (``auto``, ``eco``, ``routeiq/eco``), by
the ``x-routeiq-profile`` header when the model is ``auto``, or by a policy.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Profile(enum.StrEnum):
    AUTO = "auto"
    ECO = "eco"
    PREMIUM = "premium"
    FREE = "free"
    REASONING = "reasoning"

    @property
    def classifies(self) -> bool:
        """Whether the prompt's category matters for this profile."""
        return self in (Profile.AUTO, Profile.ECO)


PROFILE_HEADER = "x-routeiq-profile"
_PREFIX = "routeiq/"


def profile_from_model(model: str) -> Profile | None:
    """The profile a model name asks for (``auto``, ``eco``, ``routeiq/premium``...)."""
    name = model.removeprefix(_PREFIX)
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
