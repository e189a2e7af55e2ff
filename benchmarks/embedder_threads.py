"""Embedder session: intra-op threads x idle spinning, wall time and CPU per embedding.

    .venv/bin/python benchmarks/embedder_threads.py [--calls 200] [--gap-ms 5]

One onnxruntime session per setting (the shipped int8 MiniLM, the server's options
otherwise), a short and a ~450-token prompt (cut at 128 tokens, as served). Calls are
spaced ``--gap-ms`` apart, as requests arriving at 100-200/s are, so that idle pool
threads have time to spin between them. CPU is the process's (every thread), from
``time.process_time`` around the calls; the last column is CPU per call relative to
1 thread without spinning, measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from routing_latency import SHORT, long_prompt

from extproc.routing.embedder import ALLOW_SPINNING, load_embedder

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "models" / "embedder" / "manifest.json"


def session(model: Path, threads: int, spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry(ALLOW_SPINNING, "1" if spinning else "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def measure(
    sess: ort.InferenceSession, feeds: dict[str, np.ndarray], calls: int, gap_s: float
) -> tuple[float, float]:
    """Wall p50 (ms) and CPU per call (ms)."""
    for _ in range(20):
        sess.run(None, feeds)
    walls = []
    cpu = 0.0
    for _ in range(calls):
        c0, t0 = time.process_time(), time.perf_counter()
        sess.run(None, feeds)
        walls.append(time.perf_counter() - t0)
        time.sleep(gap_s)  # spinning threads burn CPU here, so it is counted
        cpu += time.process_time() - c0
    return float(np.percentile(walls, 50)) * 1e3, cpu / calls * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    args = parser.parse_args()
    embedder = load_embedder(MANIFEST)  # verifies the artefacts and names the model file
    model = MANIFEST.parent / embedder.model
    tokenizer = Tokenizer.from_file(str(MANIFEST.parent / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=embedder.max_tokens)
    prompts = {"short": SHORT, "~450 tokens": long_prompt(450)}
    rows = []
    for threads in (1, 2):
        for spinning in (False, True):
            sess = session(model, threads, spinning)
            names = {i.name for i in sess.get_inputs()}
            for label, text in prompts.items():
                enc = tokenizer.encode(text)
                feeds = {
                    "input_ids": np.asarray([enc.ids], dtype=np.int64),
                    "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
                }
                if "token_type_ids" in names:
                    feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
                wall, cpu = measure(sess, feeds, args.calls, args.gap_ms / 1000)
                rows.append((threads, spinning, label, wall, cpu))
    base = {label: cpu for t, s, label, _, cpu in rows if t == 1 and not s}
    print(f"{embedder.model}, {args.calls} calls {args.gap_ms:g} ms apart per row")
    print(f"{'threads':>7} {'spinning':>8} {'prompt':<12}{'wall p50 ms':>12}{'CPU ms':>8}", end="")
    print(f"{'CPU x':>7}")
    for threads, spinning, label, wall, cpu in rows:
        print(
            f"{threads:>7} {str(spinning).lower():>8} {label:<12}{wall:>12.2f}{cpu:>8.2f}"
            f"{cpu / base[label]:>7.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
