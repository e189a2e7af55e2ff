"""Errors that RouteIQ answers itself, in OpenAI's error format.

Every request RouteIQ refuses gets a body like the one OpenAI sends, so that the
official clients raise the matching exception type (``BadRequestError``,
``PermissionDeniedError``, ``NotFoundError``, ``RateLimitError``...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    """A refusal with an HTTP status and an OpenAI-style error document.

    ``raw`` replaces the whole body when set (a policy's own deny body); ``message``
    still names the refusal in logs and metrics.
    """

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    raw: bytes | None = None

    def body(self) -> bytes:
        """``raw`` if set, else ``{"error": {"message", "type", "param", "code"}}``."""
        if self.raw is not None:
            return self.raw
        return json.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                }
            },
            separators=(",", ":"),
        ).encode()


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, message, "invalid_request_error", "unsupported_media_type")


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"Request body is larger than the {limit} bytes this gateway accepts.",
        "invalid_request_error",
        "request_too_large",
    )


def model_not_found(model: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
        "model",
    )


def internal_error(message: str = "RouteIQ could not process the request.") -> ApiError:
    return ApiError(500, message, "server_error", "routeiq_internal_error")
