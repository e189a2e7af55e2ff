"""The Kong plugin: the same ``Runtime.decide`` as the Envoy ext_proc server, on Kong's PDK.

Contract, per request:

``access`` (before Kong proxies)
    The path is classified like the ext_proc server does (``extproc.api.paths``): paths
    outside ``spec.pathPrefix`` and those a ``spec.passthroughPaths`` rule names pass
    untouched, except that client-sent ``x-routeiq-*`` headers are removed; any other
    path below the prefix is refused (404, 405 for a method other than POST on an
    inference endpoint, 400 for an unreadable path). Inference calls, in whatever
    spelling, get the ext_proc server's checks (415 content type, 413 size from
    ``content-length`` then from the body, 400 empty or malformed body), then
    ``Runtime.decide``:

    - ROUTED / FAILED_OPEN: ``kong.service.set_upstream(name)`` or ``set_target(host,
      port)`` per the backend's ``kong`` settings (a backend without them goes to the
      Kong upstream named like its ``cluster``), the body with the rewritten ``model``
      when the backend knows the model by another name, the decision headers upstream
      in one ``set_headers``, the decision headers for the client in one
      ``kong.response.set_headers``;
    - DENIED: ``kong.response.exit(status, OpenAI error JSON, headers)``;
    - CACHED: ``kong.response.exit(200, the cached answer, headers)`` (JSON, or an SSE
      replay for a stream); nothing reaches a backend.

    A failure while deciding (bug, timeout) follows the config's ``failureMode``:
    ``closed`` answers 500, ``open`` routes to the default backend.

``log`` (after the response went to the client)
    The upstream status and, for buffered non-streaming responses, the ``usage`` of
    the body go to ``Runtime.on_response`` (health, budgets, decision log); a cache
    miss's buffered answer goes to ``Runtime.store_answer`` (streams are not stored:
    an external plugin never sees a streamed body; gzip bodies are not decoded). The
    Decision is kept between the phases in a process-local table keyed by decision id,
    the id travelling in ``kong.ctx.shared``; entries whose log phase never comes are
    dropped after ``PENDING_TTL_S``.

No routing or policy logic here: everything is ``Runtime.decide``/``on_response``, so
what the Runtime learns (policy, classifiers, budgets) reaches Kong unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from extproc.api.admission import admit_headers, admit_path, check_body
from extproc.api.errors import ApiError, internal_error, too_large
from extproc.api.openai import ParsedRequest, parse_request, patch_body
from extproc.api.paths import INFERENCE_METHOD, Route, match_request
from extproc.api.usage import Usage, usage_from_json
from extproc.cache.capture import Captured, ResponseCapture
from extproc.config.errors import ConfigError
from extproc.config.snapshot import Snapshot
from extproc.decide import fail_open_decision
from extproc.decision import Decision, Outcome
from extproc.headers import OVERHEAD_MS as OVERHEAD_HEADER
from extproc.kong.host import RuntimeHost
from extproc.kong.pdk import Pdk, PdkError
from extproc.runtime import Runtime
from extproc.vocabulary import FailureMode

logger = logging.getLogger("routeiq.kong")

CTX_KEY = "routeiq_decision_id"
PRIORITY = 790  # after auth (>= 1000), rate limiting (910), request-transformer (801)
CONFIG_RETRY_S = 5.0

# Kong plugin schema: the fields of the plugin's `config` record.
SCHEMA: tuple[dict[str, Any], ...] = (
    {"config_path": {"type": "string", "required": False}},
    {"timeout_ms": {"type": "integer", "default": 2000, "between": [1, 60000]}},
    {"buffer_responses": {"type": "boolean", "default": True}},
)


@dataclass(frozen=True, slots=True)
class PluginConf:
    """The plugin's Kong configuration, as Kong sends it at ``plugin.StartInstance``.

    ``config_path``: the RoutingConfig YAML (else ``ROUTEIQ_CONFIG_PATH``).
    ``timeout_ms``: bound on one ``decide``; past it, the config's ``failureMode``.
    ``buffer_responses``: have Kong buffer non-streaming responses so the log phase
    can read their ``usage`` (streams are never buffered: that would stall them).
    """

    config_path: str | None = None
    timeout_ms: int = 2000
    buffer_responses: bool = True

    @classmethod
    def from_kong(cls, config: Mapping[str, Any]) -> PluginConf:
        path = config.get("config_path")
        timeout = config.get("timeout_ms")
        buffering = config.get("buffer_responses")
        return cls(
            config_path=str(path) if path else None,
            timeout_ms=int(timeout) if isinstance(timeout, int) and timeout > 0 else 2000,
            buffer_responses=buffering if isinstance(buffering, bool) else True,
        )


class RouteIQPlugin:
    """One Kong plugin instance (kong-pdk makes one per config and nginx worker).

    ``host`` is the process's ``RuntimeHost``: instances with the same config path
    share one Runtime. The attribute ``last_pdk_calls`` holds the PDK round trips of
    the last handled phase (for logs and benchmarks).
    """

    def __init__(self, config: Mapping[str, Any], host: RuntimeHost) -> None:
        self.conf = PluginConf.from_kong(config)
        self.host = host
        self.last_pdk_calls = 0
        self._runtime: Runtime | None = None
        self._config_error: str | None = None
        self._retry_at = 0.0
        self._load_runtime()

    def _load_runtime(self) -> Runtime | None:
        try:
            self._runtime = self.host.runtime(self.conf.config_path)
            self._config_error = None
        except ConfigError as exc:
            self._config_error = str(exc)
            self._retry_at = time.monotonic() + CONFIG_RETRY_S
            logger.error("RouteIQ config cannot be loaded: %s", exc)
        return self._runtime

    def _current_runtime(self) -> Runtime | None:
        if self._runtime is None and time.monotonic() >= self._retry_at:
            return self._load_runtime()
        return self._runtime

    # -- access ------------------------------------------------------------------------

    def access(self, kong: Any) -> None:
        pdk = Pdk(kong)
        started = time.perf_counter()
        try:
            self._access(pdk, started)
        except PdkError as exc:
            # Kong refused a call: nothing more can be asked of it reliably for this
            # request. Kong's own error handling applies to what follows.
            logger.error("PDK call failed in access: %s", exc)
        finally:
            self.last_pdk_calls = pdk.calls

    def _access(self, pdk: Pdk, started: float) -> None:
        # The path is read first, before any possible refusal: in gevent mode kong-pdk
        # 0.36 deadlocks the connection when kong.response.exit is the FIRST call of
        # an event (Kong's follow-up Step and the handler's end both block on one channel).
        path = pdk.get_path()
        runtime = self._current_runtime()
        if runtime is None:
            self._refuse(pdk, internal_error("RouteIQ has no valid configuration."))
            return
        snapshot = runtime.snapshot  # pinned: a reload never changes this request's answer
        spec = snapshot.spec
        method = self._method(pdk, path, snapshot)
        verdict = admit_path(method, path, spec)
        if verdict.listing is not None:  # the models the config serves, never a backend's
            listing = verdict.listing
            pdk.exit(listing.status, listing.body, dict(listing.headers))
            return
        if verdict.error is not None:
            self._refuse(pdk, verdict.error)
            return
        headers = pdk.get_headers()
        admission = admit_headers(verdict, headers, spec)
        spoofed = admission.spoofed
        if admission.error is not None:
            self._refuse(pdk, admission.error)
            return
        match = admission.match
        if not admission.inference:
            for name in spoofed:
                pdk.clear_upstream_header(name)
            return
        assert match.endpoint is not None
        endpoint = match.endpoint
        try:
            body = pdk.get_raw_body()
        except PdkError as exc:  # body spilled to a temp file: larger than nginx's buffer
            logger.warning("request body unavailable: %s", exc.message)
            self._refuse(pdk, too_large(spec.max_body_bytes))
            return
        refused = check_body(len(body), spec)
        if refused is not None:
            self._refuse(pdk, refused)
            return
        try:
            parsed = parse_request(endpoint, method, match.upstream_target, headers, body)
        except ApiError as error:
            self._refuse(pdk, error)
            return
        decision = self._decide(runtime, snapshot, parsed, path)
        if decision is None:
            self._refuse(pdk, internal_error())
            return
        if decision.outcome is Outcome.DENIED:
            assert decision.error is not None
            self._refuse(pdk, decision.error, decision.response_headers)
            return
        if decision.outcome is Outcome.CACHED:
            assert decision.cache is not None
            pdk.exit(200, decision.cache.body, dict(decision.response_headers))
            return
        self._route(pdk, snapshot, decision, parsed)
        upstream = dict(decision.upstream_headers)
        if upstream:
            pdk.set_upstream_headers(upstream)
        for name in spoofed:
            if name not in upstream:
                pdk.clear_upstream_header(name)
        response = dict(decision.response_headers)
        if spec.response_headers.overhead_ms:
            response[OVERHEAD_HEADER] = f"{(time.perf_counter() - started) * 1000:.2f}"
        if response:
            pdk.set_response_headers(response)
        storing = decision.cache is not None and decision.cache.ticket is not None
        wanted = decision.accounting or storing
        buffered = self.conf.buffer_responses and wanted and not parsed.stream
        pdk.ctx_set(CTX_KEY, decision.id)
        self.host.pending.put(decision, runtime, buffered)
        if buffered:
            pdk.enable_buffering()

    @staticmethod
    def _method(pdk: Pdk, path: str, snapshot: Snapshot) -> str:
        """The request's method, asked of Kong (one more round trip) only when the path
        is below the prefix, where it matters; "" outside it."""
        spec = snapshot.spec
        match = match_request(INFERENCE_METHOD, path, spec.path_prefix, spec.passthrough_paths)
        return "" if match.route is Route.OUTSIDE else pdk.get_method()

    def _decide(
        self, runtime: Runtime, snapshot: Snapshot, parsed: ParsedRequest, path: str
    ) -> Decision | None:
        """``Runtime.decide`` on the host loop; on failure, per ``failureMode``.

        None means: refuse with a 500 (fail-closed).
        """
        try:
            return self.host.run(runtime.decide(parsed, snapshot), self.conf.timeout_ms / 1000)
        except Exception:
            runtime.count_error("kong_decide")
            logger.exception("decide failed for %s", path)
            if snapshot.spec.failure_mode is FailureMode.OPEN:
                return fail_open_decision(snapshot, parsed.model, "internal error, failed open")
            return None

    def _route(
        self, pdk: Pdk, snapshot: Snapshot, decision: Decision, parsed: ParsedRequest
    ) -> None:
        assert decision.backend is not None
        backend = snapshot.backends[decision.backend]
        target = backend.kong
        if target is None:
            pdk.set_upstream(backend.cluster)
        elif target.upstream is not None:
            pdk.set_upstream(target.upstream)
        else:
            assert target.host is not None and target.port is not None
            pdk.set_target(target.host, target.port)
        overrides = dict(decision.body_overrides)
        if decision.strip_usage_chunk:
            # Asking a stream for its usage chunk only helps an adapter that can read the
            # stream and remove the chunk again; a Kong external plugin has no body
            # filter, so the client would see a chunk it never asked for.
            overrides.pop("stream_options", None)
        if overrides:
            pdk.set_raw_body(patch_body(parsed.body, overrides))

    @staticmethod
    def _refuse(pdk: Pdk, error: ApiError, extra: tuple[tuple[str, str], ...] = ()) -> None:
        headers = {"content-type": "application/json", **dict(error.headers), **dict(extra)}
        pdk.exit(error.status, error.body(), headers)

    # -- log ---------------------------------------------------------------------------

    def log(self, kong: Any) -> None:
        pdk = Pdk(kong)
        try:
            self._log(pdk)
        except PdkError as exc:
            logger.warning("PDK call failed in log: %s", exc)
        except Exception:
            logger.exception("response accounting failed")
        finally:
            self.last_pdk_calls = pdk.calls

    def _log(self, pdk: Pdk) -> None:
        decision_id = pdk.ctx_get(CTX_KEY)
        if not isinstance(decision_id, str):
            return  # not routed by RouteIQ (passthrough, refused, another route)
        entry = self.host.pending.pop(decision_id)
        if entry is None:
            return
        status = pdk.upstream_status()
        body = pdk.upstream_raw_body() if entry.buffered and status == 200 else None
        decision = entry.decision
        usage = None
        if entry.buffered and status == 200 and decision.accounting:
            # The processor's rule: no usage in a 200 body still spends the prompt.
            usage = (usage_from_json(body) if body else None) or Usage(
                decision.prompt_tokens, 0, decision.prompt_tokens, estimated=True
            )
        coro = _after_response(
            entry.runtime, decision, status or 0, usage, _answer(decision, body, entry.buffered)
        )
        self.host.run(coro, self.conf.timeout_ms / 1000)


def _answer(decision: Decision, body: bytes | None, buffered: bool) -> Captured | str | None:
    """A cache miss's buffered answer, checked for storing (None: no store due)."""
    ticket = decision.cache.ticket if decision.cache is not None else None
    if ticket is None:
        return None
    if not buffered:  # a stream, or buffer_responses off
        return "not_buffered"
    if not body:
        return "status"
    capture = ResponseCapture(
        stream=False,
        encoding="",
        max_bytes=ticket.spec.max_entry_bytes,
        prompt_tokens=decision.prompt_tokens,
    )
    capture.feed(body)
    return capture.finish()


async def _after_response(
    runtime: Runtime,
    decision: Decision,
    status: int,
    usage: Usage | None,
    answer: Captured | str | None,
) -> None:
    await runtime.on_response(decision, status, usage)
    if answer is not None:
        await runtime.store_answer(decision, answer)
