"""A typed, counted face on the Kong PDK object kong-pdk hands to each handler.

Every call here is one round trip to Kong over the plugin server's Unix socket (the
handler's request goes out as a ``Step`` answer and Kong's next ``plugin.Step`` brings
the result back), so the plugin calls as few as it can and this wrapper counts them.

kong-pdk has two calling conventions: Lua style (the default) returns ``(data, err)``
tuples, Python style (``--no-lua-style``) returns data and raises ``PDKException``.
Results decoded from MessagePack are never tuples, so a tuple means Lua style; both
are normalised to "return data or raise ``PdkError``", whichever way the plugin server
was started.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PdkError(Exception):
    """Kong answered a PDK call with an error (``plugin.StepError``)."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.message = message


def _is_pdk_exception(exc: Exception) -> bool:
    return type(exc).__name__ == "PDKException"


class Pdk:
    """The PDK calls the plugin makes, one method each; ``calls`` counts round trips."""

    __slots__ = ("_kong", "calls")

    def __init__(self, kong: Any) -> None:
        self._kong = kong
        self.calls = 0

    def _call(self, method: str, *args: Any) -> Any:
        target = self._kong
        for part in method.split(".")[1:]:  # "kong.request.get_path" -> kong.request.get_path
            target = getattr(target, part)
        self.calls += 1
        try:
            result = target(*args)
        except Exception as exc:
            if _is_pdk_exception(exc):
                raise PdkError(method, str(exc)) from None
            raise
        if isinstance(result, tuple):
            data, err = (*result, None, None)[:2]
            if err:
                raise PdkError(method, str(err))
            return data
        return result

    # -- access phase: the client's request -------------------------------------------

    def get_path(self) -> str:
        return str(self._call("kong.request.get_path") or "")

    def get_method(self) -> str:
        return str(self._call("kong.request.get_method") or "")

    def get_headers(self) -> dict[str, str]:
        """Lower-cased names, first value of a repeated header (Kong sends lists)."""
        raw = self._call("kong.request.get_headers") or {}
        headers: dict[str, str] = {}
        if isinstance(raw, Mapping):
            for name, value in raw.items():
                if isinstance(value, list):
                    value = value[0] if value else ""
                headers.setdefault(str(name).lower(), str(value))
        return headers

    def get_raw_body(self) -> bytes:
        body = self._call("kong.request.get_raw_body")
        if body is None:
            return b""
        return body if isinstance(body, bytes) else str(body).encode()

    # -- access phase: what Kong does with it -----------------------------------------

    def set_upstream(self, name: str) -> None:
        self._call("kong.service.set_upstream", name)

    def set_target(self, host: str, port: int) -> None:
        self._call("kong.service.set_target", host, port)

    def set_raw_body(self, body: bytes) -> None:
        self._call("kong.service.request.set_raw_body", body)

    def set_upstream_headers(self, headers: Mapping[str, str]) -> None:
        self._call("kong.service.request.set_headers", dict(headers))

    def clear_upstream_header(self, name: str) -> None:
        self._call("kong.service.request.clear_header", name)

    def set_response_headers(self, headers: Mapping[str, str]) -> None:
        self._call("kong.response.set_headers", dict(headers))

    def enable_buffering(self) -> None:
        self._call("kong.service.request.enable_buffering")

    def ctx_set(self, key: str, value: str) -> None:
        self._call("kong.ctx.shared.set", key, value)

    def exit(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        """Answer the client now; kong-pdk does not wait for a reply to this one."""
        self._call("kong.response.exit", status, body, dict(headers))

    # -- log phase --------------------------------------------------------------------

    def ctx_get(self, key: str) -> Any:
        return self._call("kong.ctx.shared.get", key)

    def upstream_status(self) -> int | None:
        status = self._call("kong.service.response.get_status")
        return status if isinstance(status, int) else None

    def upstream_raw_body(self) -> bytes | None:
        body = self._call("kong.service.response.get_raw_body")
        if body is None:
            return None
        return body if isinstance(body, bytes) else str(body).encode()
