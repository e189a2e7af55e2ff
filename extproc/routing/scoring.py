"""Batch classification for the offline tools (score, eval, replay), and where their router
comes from.

* :func:`routing_source`: the ``spec.routing`` of a RoutingConfig (``--config``; by
  default the shipped ``config/routeiq.yaml`` of the source tree, else the built-in
  defaults), with the command-line overrides (``--strategy``, ``--models-dir``), and the
  directory relative paths are resolved against.
* :func:`load_router`: that router, with the ``auto`` knob moved by ``--premium-share``.
* :func:`classify_many`: classifications of many requests through
  ``Router.classify_batch``, several calls in parallel on single-threaded onnxruntime
  runs (``load_router(..., batch_workers=True)``), results returned in input order;
  progress on a terminal.
* :func:`as_traffic`: those classifications' tiers as the router would serve a stream of
  them (``calibration: traffic`` calibrates the share bars on the batch itself).
* :func:`read_prompt_lines` / :func:`request_of`: the ``routeiq score`` input
  (``{"id", "prompt"}`` or an OpenAI request body per line).

Every mistake is a ``ToolError`` (or a ``ConfigError``) with a one-line message.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
from pydantic import ValidationError

import extproc
from extproc.api.errors import ApiError, bad_request
from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.errors import ConfigError
from extproc.routing.progress import Progress
from extproc.routing.quality import MIN_CALIBRATION
from extproc.routing.router import Classification, Router, build_router
from extproc.routing.spec import RoutingSpec

# Requests per classify_batch call. 1: the int8 model's dynamic quantisation scales each
# batch as a whole, so a text embedded in a batch of 4-8 got another category than the
# serving path for 6% of MMLU prompts, and batches cost no less CPU per prompt here (11-12
# ms at 1-8, 15-17 ms at 32-64). Throughput comes from the parallel workers instead
# (docs/routing.md, "Scoring prompts").
CHUNK = 1


class ToolError(Exception):
    """A mistake in what the operator gave an offline tool; the message is one line.

    ``code`` is the exit code: 1 for bad input data, 2 for a bad option.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def one_line(message: str) -> str:
    """A possibly multi-line error message folded onto one line."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


@dataclass(frozen=True, slots=True)
class RoutingSource:
    """The routing section a tool uses, where it came from, and its base directory."""

    spec: RoutingSpec
    base_dir: Path
    origin: str


def default_workers() -> int:
    """Parallel workers of the offline tools by default: one per CPU."""
    return os.cpu_count() or 1


def default_config_path() -> Path | None:
    """``config/routeiq.yaml`` of the source tree (a checkout or editable install)."""
    path = Path(extproc.__file__).resolve().parent.parent / "config" / "routeiq.yaml"
    return path if path.is_file() else None


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def routing_source(
    config: Path | None, strategy: str | None = None, models_dir: str | None = None
) -> RoutingSource:
    """``spec.routing`` of ``config`` (default: the shipped one) with CLI overrides."""
    from extproc.config.snapshot import load_config

    path = config if config is not None else default_config_path()
    if path is None:
        spec, base_dir, origin = RoutingSpec(), Path.cwd(), "built-in defaults"
    else:
        routing_config, _ = load_config(path)
        spec, base_dir, origin = routing_config.spec.routing, path.resolve().parent, _shown(path)
    overrides: dict[str, Any] = {}
    if strategy is not None:
        overrides["strategy"] = strategy
    if models_dir is not None:
        overrides["models_dir"] = str(Path(models_dir).resolve())
    if overrides:
        try:
            spec = RoutingSpec.model_validate({**spec.model_dump(), **overrides})
        except ValidationError as exc:
            messages = (str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ConfigError("; ".join(messages)) from None
    return RoutingSource(spec, base_dir, origin)


def load_router(
    source: RoutingSource, premium_share: float | None = None, *, batch_workers: bool = False
) -> Router:
    """Build the router (ConfigError on a bad artefact); move the ``auto`` knob if asked.

    ``batch_workers``: the router is for :func:`classify_many` with several workers, each
    running onnxruntime on one thread: several single-threaded runs in parallel use the
    cores better than one run split across intra-op threads.
    """
    spec = source.spec
    if batch_workers:
        spec = spec.model_copy(update={"threads": 1})
    router = build_router(spec, source.base_dir)
    return router if premium_share is None else with_share(router, premium_share)


def with_share(router: Router, premium_share: float) -> Router:
    """``router`` with its ``auto`` premium share set (ToolError when it has no knob)."""
    if not 0.0 <= premium_share <= 1.0:
        raise ToolError(f"--premium-share must be within 0..1, got {premium_share}", code=2)
    try:
        return router.with_knob(premium_share=premium_share)
    except ValueError as exc:
        raise ToolError(f"--premium-share: {one_line(str(exc))}", code=2) from None


def classify_many(
    router: Router,
    requests: Sequence[ParsedRequest],
    *,
    profile: str | None = None,
    label: str = "classify",
    workers: int = 1,
    chunk: int | None = None,
) -> list[Classification]:
    """Classifications of ``requests`` in their order: sorted by prompt length (chunks
    larger than one then pad little), cut into chunks of ``chunk`` (default
    :data:`CHUNK`), each chunk one ``Router.classify_batch`` call, ``workers`` chunks at a
    time (onnxruntime runs outside the GIL). With chunks of one the results are those of
    the serving path, ``Router.classify``, exactly."""
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].last_user_text))
    size = chunk or CHUNK
    chunks = [order[start : start + size] for start in range(0, len(order), size)]
    out: list[Classification | None] = [None] * len(requests)

    def batch(idx: list[int]) -> list[Classification]:
        return router.classify_batch([requests[i] for i in idx], profile=profile)

    with Progress(label, len(requests)) as progress, ThreadPoolExecutor(workers) as pool:
        for idx, results in zip(chunks, pool.map(batch, chunks), strict=True):
            for i, result in zip(idx, results, strict=True):
                out[i] = result
            progress.advance(len(idx))
    return [c for c in out if c is not None]


def takes_batch_as_traffic(router: Router, n: int) -> bool:
    """Whether a batch of ``n`` is calibrated on itself (:func:`as_traffic`)."""
    rule = router.quality
    return rule is not None and rule.window is not None and n >= MIN_CALIBRATION


def as_traffic(router: Router, results: Sequence[Classification]) -> list[Classification]:
    """``results`` with their tiers under the bars ``router`` would serve them with.

    With ``calibration.source: traffic`` and at least :data:`MIN_CALIBRATION` results
    (the least ``referencePrompts`` accepts), the batch is the traffic: the share bars
    are calibrated on the batch's own needs (what a serving window full of such traffic
    converges to), so ``premiumShare`` of the batch goes to premium. Otherwise the bars
    are the router's reference bars. Nothing is re-embedded.
    """
    if not takes_batch_as_traffic(router, len(results)):
        return [router.retier(c) for c in results]
    needs = np.array([c.quality.need for c in results if c.quality is not None])
    settled = router.calibrated_on(needs)
    return [settled.retier(c) for c in results]


def request_of(line: dict[str, Any]) -> ParsedRequest:
    """A ParsedRequest for a scoring line: an OpenAI body, or ``{"prompt": ...}``."""
    if "messages" in line:
        endpoint, body = Endpoint.CHAT_COMPLETIONS, line
    elif "input" in line:
        endpoint, body = Endpoint.RESPONSES, line
    else:
        prompt = line.get("prompt", line.get("query"))
        if not isinstance(prompt, str):
            raise bad_request("the line needs 'prompt' or an OpenAI request body")
        endpoint = Endpoint.CHAT_COMPLETIONS
        body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
    body = {"model": "auto", **{k: v for k, v in body.items() if k != "id"}}
    return parse_request(endpoint, "POST", f"/v1/{endpoint.value}", {}, orjson.dumps(body))


def open_input(path: str) -> IO[str]:
    """``path`` for reading; ``-`` is stdin (refused when it is a terminal)."""
    if path == "-":
        if sys.stdin.isatty():
            raise ToolError("--input - reads stdin, but stdin is a terminal: pipe a file in", 2)
        return sys.stdin
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"cannot read {path}: {exc.strerror}") from None


def read_prompt_lines(path: str) -> tuple[list[Any], list[ParsedRequest]]:
    """Ids and requests of every non-empty line (id: the line's ``id``, else its number)."""
    name = "stdin" if path == "-" else path
    ids: list[Any] = []
    requests: list[ParsedRequest] = []
    fh = open_input(path)
    try:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ToolError(f"{name}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(line, dict):
                raise ToolError(f"{name}:{n}: a line must be a JSON object")
            try:
                requests.append(request_of(line))
            except ApiError as exc:
                raise ToolError(f"{name}:{n}: {exc.message}") from None
            ids.append(line.get("id", n))
    except UnicodeDecodeError:
        raise ToolError(f"{name}: not UTF-8 text") from None
    finally:
        if fh is not sys.stdin:
            fh.close()
    if not requests:
        raise ToolError(f"{name}: no input lines")
    return ids, requests


def score_record(line_id: Any, result: Classification) -> dict[str, Any]:
    """One ``routeiq score`` output line."""
    return {
        "id": line_id,
        "category": result.category,
        "tier": result.tier,
        "score": round(result.score, 6),
    }


def write_lines(path: str, records: Sequence[dict[str, Any]]) -> None:
    """JSON lines to ``path`` (``-``: stdout); written only once everything is computed."""
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise ToolError(f"cannot write {path}: {exc.strerror}") from None
