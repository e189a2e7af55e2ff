"""A tiny OpenAI-compatible backend for the demo and the end-to-end tests.

It answers chat completions (plain and SSE streaming, with ``usage``), completions,
embeddings and responses, says in every answer which backend it is and which model
it received, and remembers the last requests it got (``GET /__received``) so tests
can prove what reached the upstream. Plain asyncio: no web framework on the path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from typing import Any

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class DemoBackend:
    def __init__(self, name: str, stream_delay_s: float = 0.05, fail_status: int = 0) -> None:
        self.name = name
        self.stream_delay_s = stream_delay_s
        self.fail_status = fail_status
        self.received: deque[dict[str, Any]] = deque(maxlen=50)

    # -- HTTP/1.1 plumbing ------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await self._read_body(reader, headers)
                keep = await self._dispatch(method, target, headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    return b"".join(chunks)
                chunks.append(await reader.readexactly(size))
                await reader.readline()
        length = int(headers.get("content-length", "0") or 0)
        return await reader.readexactly(length) if length else b""

    @staticmethod
    def _head(status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send_json(
        self, writer: asyncio.StreamWriter, status: int, doc: Any, extra: dict[str, str]
    ) -> None:
        body = json.dumps(doc).encode()
        head = {"content-type": "application/json", "content-length": str(len(body)), **extra}
        writer.write(self._head(status, head) + body)
        await writer.drain()

    # -- OpenAI surface ---------------------------------------------------------------

    async def _dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        path = target.split("?", 1)[0]
        if method == "GET" and path == "/__received":
            await self._send_json(writer, 200, list(self.received), {})
            return True
        if method == "GET" and path in ("/health", "/v1/models"):
            await self._send_json(writer, 200, {"object": "list", "data": []}, {})
            return True
        try:
            doc = json.loads(body) if body else {}
        except json.JSONDecodeError:
            doc = {"_raw": body.decode("utf-8", "replace")}
        self.received.append({"path": path, "headers": headers, "body": doc})
        model = str(doc.get("model", "")) if isinstance(doc, dict) else ""
        extra = {"x-demo-backend": self.name, "x-demo-received-model": model}
        if self.fail_status:
            err = {"error": {"message": f"{self.name} failing", "type": "server_error"}}
            await self._send_json(writer, self.fail_status, err, extra)
            return True
        if path.endswith("/chat/completions"):
            if doc.get("stream"):
                await self._stream_chat(writer, doc, model, extra)
                return False  # close-delimited stream
            await self._send_json(writer, 200, self._chat(doc, model), extra)
        elif path.endswith("/completions"):
            await self._send_json(writer, 200, self._completion(model), extra)
        elif path.endswith("/embeddings"):
            # One 384-dimension vector per input, as a real embeddings API answers: a
            # batch of a few thousand inputs makes a response of several MiB.
            inputs = doc.get("input")
            count = len(inputs) if isinstance(inputs, list) and inputs else 1
            vector = [round(0.001 * i, 6) for i in range(384)]
            data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)]
            usage = {"prompt_tokens": 3 * count, "total_tokens": 3 * count}
            await self._send_json(
                writer,
                200,
                {"object": "list", "model": model, "data": data, "usage": usage},
                extra,
            )
        elif path.endswith("/responses"):
            await self._send_json(writer, 200, self._response(model), extra)
        else:
            await self._send_json(writer, 404, {"error": {"message": "no such path"}}, extra)
        return True

    def _text(self, doc: dict[str, Any], model: str) -> str:
        last = ""
        for msg in doc.get("messages") or []:
            if isinstance(msg, dict) and msg.get("role") == "user":
                content = msg.get("content")
                last = content if isinstance(content, str) else json.dumps(content)
        return f"[{self.name}/{model}] you said: {last[:80]}"

    def _chat(self, doc: dict[str, Any], model: str) -> dict[str, Any]:
        text = self._text(doc, model)
        return {
            "id": f"chatcmpl-{self.name}-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22},
        }

    def _completion(self, model: str) -> dict[str, Any]:
        return {
            "id": f"cmpl-{self.name}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "text": f"[{self.name}]", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }

    def _response(self, model: str) -> dict[str, Any]:
        return {
            "id": f"resp_{self.name}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": f"[{self.name}]", "annotations": []}
                    ],
                }
            ],
            "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
        }

    async def _stream_chat(
        self, writer: asyncio.StreamWriter, doc: dict[str, Any], model: str, extra: dict[str, str]
    ) -> None:
        head = {"content-type": "text/event-stream", "cache-control": "no-cache", **extra}
        head["connection"] = "close"
        writer.write(self._head(200, head))
        words = self._text(doc, model).split(" ")
        base = {
            "id": f"chatcmpl-{self.name}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        for i, word in enumerate(words):
            delta: dict[str, Any] = {"content": word if i == 0 else " " + word}
            if i == 0:
                delta["role"] = "assistant"
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await writer.drain()
            await asyncio.sleep(self.stream_delay_s)
        final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        writer.write(f"data: {json.dumps(final)}\n\n".encode())
        opts = doc.get("stream_options") or {}
        if isinstance(opts, dict) and opts.get("include_usage"):
            usage = {
                "prompt_tokens": 10,
                "completion_tokens": len(words),
                "total_tokens": 10 + len(words),
            }
            writer.write(
                f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
            )
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()


async def run_backend(name: str, host: str, port: int, **kwargs: Any) -> asyncio.Server:
    backend = DemoBackend(name, **kwargs)
    return await asyncio.start_server(backend.handle, host, port)


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible demo backend")
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stream-delay", type=float, default=0.05)
    parser.add_argument("--fail-status", type=int, default=0)
    args = parser.parse_args()

    async def _run() -> None:
        server = await run_backend(
            args.name,
            args.host,
            args.port,
            stream_delay_s=args.stream_delay,
            fail_status=args.fail_status,
        )
        print(f"demo backend {args.name} on {args.host}:{args.port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(_run())


if __name__ == "__main__":
    main()
