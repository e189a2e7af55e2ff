"""``PolicyResult``: what a policy decided about one request, as a frozen value.

The decision document a Rego query returns is validated and flattened here once, so
``decide()`` and the selector read typed fields instead of poking into JSON. The
document may be a plain boolean (``true`` allows) or an object with the fields listed
in ``docs/policy.md``; OPA Envoy plugin names (``response_headers_to_add``) are read
too, so existing OPA Envoy policies work with little change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from extproc.api.errors import ApiError

UNAVAILABLE_REASON = "policy engine unavailable"
DEFAULT_DENY_MESSAGE = "The request was denied by policy."
UNAVAILABLE_MESSAGE = (
    "The request could not be checked against the gateway's policy (policy engine "
    "unavailable). Please retry later."
)


class DecisionError(ValueError):
    """A decision document that does not have the documented shape."""


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a dry-run policy would have done: logged, never enforced."""

    would_deny: bool
    http_status: int
    message: str
    rule_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One policy decision.

    Routing constraints: ``None`` means "no constraint"; an empty set means "nothing
    is allowed" (the selector then finds no backend). ``require_in_cluster`` asks the
    selector to keep only backends with ``inCluster: true``.
    ``engine_unavailable`` is set when the engine could not answer and the
    operator's failure mode decided instead (fail-open results are ``allowed``).
    ``latency_s`` is the engine time (evaluation, or the remote round trip).
    ``decision`` is the raw decision document, for the decision log and explain.
    """

    allowed: bool
    http_status: int = 200
    message: str = ""
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()
    allowed_backends: frozenset[str] | None = None
    denied_backends: frozenset[str] = frozenset()
    allowed_models: frozenset[str] | None = None
    force_model: str | None = None
    profile: str | None = None
    max_tier: str | None = None
    require_in_cluster: bool = False
    cache: bool | None = None  # the answer cache for this request: on, off, None = config
    reason: str = ""
    rule_ids: tuple[str, ...] = ()
    dry_run: DryRun | None = None
    engine: str = "none"
    engine_unavailable: bool = False
    latency_s: float = 0.0
    decision: Any = None

    def with_latency(self, latency_s: float) -> PolicyResult:
        return replace(self, latency_s=latency_s)

    def api_error(self) -> ApiError:
        """The OpenAI-style error a denied request gets.

        A decision's ``body`` is sent as the whole response body instead (verbatim when
        the policy gave a string, JSON-encoded when it gave an object); status,
        ``message`` (for logs) and response headers are the same either way.
        """
        unavailable = self.engine_unavailable
        return ApiError(
            self.http_status,
            self.message or DEFAULT_DENY_MESSAGE,
            "service_unavailable" if unavailable else "permission_denied",
            "policy_unavailable" if unavailable else "policy_denied",
            None,
            self.response_headers,
            raw=self.body.encode() if self.body is not None and not unavailable else None,
        )

    def explain(self) -> dict[str, Any]:
        """The policy part of ``routeiq explain``: JSON-ready, no secrets (inputs are redacted)."""
        out: dict[str, Any] = {
            "engine": self.engine,
            "allowed": self.allowed,
            "http_status": self.http_status,
            "reason": self.reason,
            "rule_ids": list(self.rule_ids),
            "latency_us": round(self.latency_s * 1e6, 1),
        }
        if not self.allowed:
            out["message"] = self.message or DEFAULT_DENY_MESSAGE
        constraints = {
            "allowed_backends": _sorted(self.allowed_backends),
            "denied_backends": _sorted(self.denied_backends) or None,
            "allowed_models": _sorted(self.allowed_models),
            "force_model": self.force_model,
            "profile": self.profile,
            "max_tier": self.max_tier,
            "require_in_cluster": self.require_in_cluster or None,
            "cache": self.cache,
        }
        out["constraints"] = {k: v for k, v in constraints.items() if v is not None}
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.response_headers:
            out["response_headers"] = dict(self.response_headers)
        if self.dry_run is not None:
            out["dry_run"] = {
                "would_deny": self.dry_run.would_deny,
                "http_status": self.dry_run.http_status,
                "message": self.dry_run.message,
                "rule_ids": list(self.dry_run.rule_ids),
            }
        if self.engine_unavailable:
            out["engine_unavailable"] = True
        return out


def _sorted(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


# Policy-written text quoted in an error stays short: it may carry request values.
_QUOTE_MAX = 200


def policy_config_error(rule: str, message: str) -> ApiError:
    """The 500 for a decision that cannot be carried out (a ``force_model`` or
    ``profile`` naming nothing this config serves): the policy's mistake, not the
    client's, so a server error that names the rule (``rule_ids`` joined, or empty)
    and says what is wrong. Count it (``code`` ``policy_config_error``)."""
    text = message if len(message) <= _QUOTE_MAX else message[: _QUOTE_MAX - 3] + "..."
    who = f"rule '{rule[:64]}'" if rule else "the policy decision"
    return ApiError(
        500,
        f"The gateway's policy is misconfigured: {who}: {text}",
        "server_error",
        "policy_config_error",
    )


def allow_all(engine: str = "none") -> PolicyResult:
    return PolicyResult(allowed=True, engine=engine)


def unavailable(engine: str, *, fail_open: bool, detail: str) -> PolicyResult:
    """The result the operator's failure mode gives when the engine cannot answer.

    ``detail`` (exception class, "timeout"...) goes to ``reason`` for logs; it must not
    carry request content.
    """
    reason = f"{UNAVAILABLE_REASON}: {detail}"
    if fail_open:
        return PolicyResult(allowed=True, reason=reason, engine=engine, engine_unavailable=True)
    return PolicyResult(
        allowed=False,
        http_status=503,
        message=UNAVAILABLE_MESSAGE,
        reason=reason,
        engine=engine,
        engine_unavailable=True,
    )


def _json_text(value: Any, name: str) -> str:
    """``value`` as JSON text; a value JSON cannot carry is a malformed decision."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise DecisionError(f"'{name}' cannot be encoded as JSON: {exc}") from None


def _str_set(doc: Mapping[str, Any], name: str) -> frozenset[str] | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise DecisionError(f"'{name}' must be a list of strings")


def _opt_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None or isinstance(value, str):
        return value or None
    raise DecisionError(f"'{name}' must be a string")


def _opt_bool(doc: Mapping[str, Any], name: str) -> bool | None:
    value = doc.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise DecisionError(f"'{name}' must be a boolean")


def _header_pairs(doc: Mapping[str, Any], *names: str) -> tuple[tuple[str, str], ...]:
    for name in names:
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise DecisionError(f"'{name}' must be an object of header names to values")
        pairs = []
        for key, val in value.items():
            text = val if isinstance(val, str) else _json_text(val, name)
            pairs.append((str(key).lower(), text))
        return tuple(sorted(pairs))
    return ()


def _status(doc: Mapping[str, Any], default: int) -> int:
    value = doc.get("http_status", doc.get("status"))
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 200 <= value <= 599:
        raise DecisionError("'http_status' must be an HTTP status code")
    return int(value)


def parse_decision(
    value: Any, *, engine: str, deny_status: int, dry_run: bool = False, latency_s: float = 0.0
) -> PolicyResult:
    """Validate a decision document into a ``PolicyResult``.

    ``deny_status`` is the status of a deny that does not name one. With ``dry_run``
    (the spec's switch) a deny is turned into an allow that carries the would-be
    denial; a policy can also report its own dry run with a ``dry_run`` object.
    Raises ``DecisionError`` on a malformed document (the caller treats it as an
    engine failure). ``latency_s`` is carried into the result as is.
    """
    if isinstance(value, bool):
        if value:
            return PolicyResult(allowed=True, engine=engine, decision=value, latency_s=latency_s)
        doc: Mapping[str, Any] = {"allowed": False}
    elif isinstance(value, Mapping):
        doc = value
    else:
        kind = type(value).__name__
        raise DecisionError(f"the decision must be a boolean or an object, not {kind}")

    allowed = doc.get("allowed", doc.get("allow"))
    if not isinstance(allowed, bool):
        raise DecisionError("'allowed' must be a boolean")
    rule_ids = doc.get("rule_ids", ())
    if not isinstance(rule_ids, list | tuple) or not all(isinstance(r, str) for r in rule_ids):
        raise DecisionError("'rule_ids' must be a list of strings")
    body = doc.get("body")
    if body is not None and not isinstance(body, str):
        body = _json_text(body, "body")
    message = _opt_str(doc, "message") or ""
    reason = _opt_str(doc, "reason") or ""
    status = _status(doc, 200 if allowed else deny_status)
    policy_dry = doc.get("dry_run")
    dry: DryRun | None = None
    if isinstance(policy_dry, Mapping) and policy_dry.get("would_deny"):
        ids = policy_dry.get("rule_ids", ())
        dry = DryRun(
            would_deny=True,
            http_status=_status(policy_dry, deny_status),
            message=str(policy_dry.get("message") or DEFAULT_DENY_MESSAGE),
            rule_ids=tuple(str(i) for i in ids) if isinstance(ids, list | tuple) else (),
        )
    if dry_run and not allowed:
        dry = DryRun(True, status, message or DEFAULT_DENY_MESSAGE, tuple(rule_ids))
        allowed, status = True, 200
    return PolicyResult(
        allowed=allowed,
        http_status=status,
        message=message or ("" if allowed else reason or DEFAULT_DENY_MESSAGE),
        body=body,
        headers=_header_pairs(doc, "headers", "request_headers_to_add"),
        response_headers=_header_pairs(doc, "response_headers", "response_headers_to_add"),
        allowed_backends=_str_set(doc, "allowed_backends"),
        denied_backends=_str_set(doc, "denied_backends") or frozenset(),
        allowed_models=_str_set(doc, "allowed_models"),
        force_model=_opt_str(doc, "force_model"),
        profile=_opt_str(doc, "profile"),
        max_tier=_opt_str(doc, "max_tier"),
        require_in_cluster=doc.get("require_in_cluster") is True,
        cache=_opt_bool(doc, "cache"),
        reason=reason,
        rule_ids=tuple(rule_ids),
        dry_run=dry,
        engine=engine,
        decision=value,
        latency_s=latency_s,
    )
