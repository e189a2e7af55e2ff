"""Who and what may use the answer cache: bypass rules and the tenant of a request.

Safe by construction: a request whose answer is not a pure function of its text is
never served from the cache nor stored (tools, images, audio, several choices,
log-probabilities, sampling above ``maxTemperature``), and entries are only shared
inside one tenant, named by a trusted identity (``extproc.api.identity``). The
client opts out with standard HTTP request headers: ``cache-control: no-store`` (no
lookup, no store) or ``no-cache`` (no lookup; the fresh answer is stored). RouteIQ's
own ``x-routeiq-*`` request headers are removed by the proxy before RouteIQ sees them,
so they cannot carry the opt-out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.api.identity import Caller
from extproc.api.openai import Endpoint, ParsedRequest
from extproc.cache.spec import CacheSpec

NO_STORE = "no-store"
NO_CACHE = "no-cache"  # skip the lookup, store the fresh answer
_AUDIO_PARTS = ("input_audio", "audio")


def cache_control(headers: Mapping[str, str]) -> str | None:
    """``no-store`` or ``no-cache`` when the request's ``cache-control`` says so."""
    value = headers.get("cache-control")
    if not value:
        return None
    directives = {d.strip().split("=", 1)[0].lower() for d in value.split(",")}
    if NO_STORE in directives:
        return NO_STORE
    return NO_CACHE if NO_CACHE in directives else None


def _has_tool_traffic(body: Mapping[str, Any]) -> bool:
    """Tool calls in earlier turns (assistant ``tool_calls``), not only declared tools."""
    for msg in body.get("messages") or ():
        if isinstance(msg, dict) and (msg.get("tool_calls") or msg.get("function_call")):
            return True
    return False


def _has_audio(body: Mapping[str, Any]) -> bool:
    if body.get("audio") is not None or "audio" in (body.get("modalities") or ()):
        return True
    for msg in body.get("messages") or ():
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in _AUDIO_PARTS:
                    return True
    return False


def _temperature(body: Mapping[str, Any], spec: CacheSpec) -> float | None:
    """The sampling temperature (the configured default when absent); None: unreadable."""
    value = body.get("temperature")
    if value is None:
        return spec.default_temperature
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def content_bypass(request: ParsedRequest) -> str | None:
    """Why this request's content excludes it from the cache (None: it does not)."""
    if request.endpoint is not Endpoint.CHAT_COMPLETIONS:
        return "endpoint"
    if cache_control(request.headers) == NO_STORE:
        return NO_STORE
    body = request.body
    if (
        request.tool_count
        or request.tool_message_count
        or body.get("tool_choice") is not None
        or _has_tool_traffic(body)
    ):
        return "tools"
    if request.has_images:
        return "images"
    if _has_audio(body):
        return "audio"
    n = body.get("n")
    if n is not None and n != 1:
        return "n"
    if body.get("logprobs") or body.get("top_logprobs"):
        return "logprobs"
    return None


def request_bypass(request: ParsedRequest, spec: CacheSpec) -> str | None:
    """Why this request must not use the cache (None: it may): its content, then its
    sampling temperature against ``maxTemperature``."""
    reason = content_bypass(request)
    if reason is not None:
        return reason
    temperature = _temperature(request.body, spec)
    if temperature is None or temperature > spec.max_temperature:
        return "temperature"
    return None


def policy_bypass(decided: bool | None, spec: CacheSpec) -> str | None:
    """The policy's ``cache`` decision (None: it said nothing) against ``byDefault``."""
    if decided is False or (decided is None and not spec.by_default):
        return "policy"
    return None


def tenant(caller: Caller | None, spec: CacheSpec) -> str | None:
    """The partition a caller's entries live in; None: the caller may not use the cache.

    Only identities RouteIQ trusts count: the team and user come from verified sources
    (JWT, issued API keys, declared trusted headers); an API key's hash stands for the
    holder of that key. Anonymous callers share one partition only when allowed.
    """
    if caller is not None:
        if spec.partition == "team" and caller.team:
            return f"team:{caller.team}"
        if caller.user:
            return f"user:{caller.user}"
        if caller.api_key_hash:
            return f"key:{caller.api_key_hash}"
    return "anonymous" if spec.anonymous == "shared" else None


def input_view(request: ParsedRequest) -> dict[str, Any]:
    """``input.routeiq.cache`` of the policy input: ``bypass`` names the content rule
    that excludes the request (None: eligible by content; the temperature rule depends
    on the config and reads ``parsed_body.temperature``), ``cache_control`` the client's
    opt-out (``no-store``, ``no-cache`` or None)."""
    return {"bypass": content_bypass(request), "cache_control": cache_control(request.headers)}
