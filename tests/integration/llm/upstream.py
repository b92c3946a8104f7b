"""A small OpenAI-compatible upstream for tests and benchmarks, served by a real uvicorn server.

It answers ``POST /v1/chat/completions`` (plain and streamed) and ``POST /v1/embeddings``, and can
be told to misbehave: ``fail`` the next N requests with a status, answer ``slow``ly, break a stream
after its first chunk, or refuse requests. It records every request it received (``requests``) so a
test can see what reached it — e.g. that personal data was redacted before.

    with UpstreamServer() as upstream:          # a free port on 127.0.0.1
        upstream.base_url                         # "http://127.0.0.1:PORT/v1"
        upstream.state.fail_next(2, status=500)

Run it alone (the benchmark does): ``python -m tests.integration.llm.upstream --port 9001``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse


@dataclass
class UpstreamState:
    """What the upstream does next; changed by tests directly or through ``POST /control``."""

    name: str = "upstream"
    fail_count: int = 0
    fail_status: int = 500
    delay_s: float = 0.0
    break_stream: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 500) -> None:
        with self.lock:
            self.fail_count, self.fail_status = count, status

    def received(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def _take_failure(self) -> int | None:
        with self.lock:
            if self.fail_count > 0:
                self.fail_count -= 1
                return self.fail_status
            return None


def _reply_text(body: dict[str, Any], name: str) -> str:
    last = next((m for m in reversed(body.get("messages") or []) if m.get("role") in ("user", "tool")), {})
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return f"{name} heard: {content}"


def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """Calls the first offered tool whose name appears in the last user message."""
    tools = body.get("tools") or []
    if not tools or body.get("tool_choice") == "none":
        return None
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    if not users or body["messages"][-1].get("role") == "tool":
        return None
    text = str(users[-1].get("content"))
    for tool in tools:
        name = tool["function"]["name"]
        if name in text:
            return {"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": "{}"}}
    return None


def create_upstream_app(state: UpstreamState) -> FastAPI:
    app = FastAPI()

    @app.post("/control")
    async def control(request: Request) -> dict[str, Any]:
        change = orjson.loads(await request.body())
        with state.lock:
            for key in ("fail_count", "fail_status", "delay_s", "break_stream"):
                if key in change:
                    setattr(state, key, change[key])
            if change.get("reset"):
                state.requests.clear()
        return {"ok": True}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        with state.lock:
            return {"requests": len(state.requests)}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        with state.lock:
            state.requests.append(
                {"path": "chat", "body": body, "authorization": request.headers.get("authorization")}
            )
        failure = state._take_failure()
        if failure is not None:
            error = {"error": {"message": f"{state.name} is failing on purpose", "type": "server_error"}}
            return Response(orjson.dumps(error), status_code=failure, media_type="application/json")
        if body.get("model") == "reject-me":
            error = {
                "error": {
                    "message": "model reject-me does not exist",
                    "type": "invalid_request_error",
                    "param": "model",
                    "code": "model_not_found",
                }
            }
            return Response(orjson.dumps(error), status_code=404, media_type="application/json")
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        call = _tool_call(body)
        text = _reply_text(body, state.name)
        created = int(time.time())
        completion_id = "chatcmpl-" + hashlib.sha1(orjson.dumps(body)).hexdigest()[:12]
        message: dict[str, Any] = {"role": "assistant", "content": None if call else text}
        if call:
            message["tool_calls"] = [call]
        usage = {
            "prompt_tokens": 11,
            "completion_tokens": len(text.split()),
            "total_tokens": 11 + len(text.split()),
        }
        if not body.get("stream"):
            return Response(
                orjson.dumps(
                    {
                        "id": completion_id,
                        "object": "chat.completion",
                        "created": created,
                        "model": body.get("model"),
                        "system_fingerprint": "fp_upstream",
                        "choices": [
                            {
                                "index": 0,
                                "message": message,
                                "finish_reason": "tool_calls" if call else "stop",
                            }
                        ],
                        "usage": usage,
                    }
                ),
                media_type="application/json",
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> AsyncIterator[bytes]:
            base = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.get("model"),
            }

            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                return b"data: " + orjson.dumps(data) + b"\n\n"

            yield chunk({"role": "assistant", "content": ""})
            if state.break_stream:
                raise RuntimeError("the upstream breaks the stream on purpose")
            if call:
                yield chunk({"tool_calls": [{"index": 0, **call}]})
            else:
                for word in text.split(" "):
                    yield chunk({"content": word + " "})
                    await asyncio.sleep(0)
            yield chunk({}, "tool_calls" if call else "stop")
            if include_usage:
                yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = orjson.loads(await request.body())
        with state.lock:
            state.requests.append({"path": "embeddings", "body": body})
        failure = state._take_failure()
        if failure is not None:
            return Response(
                b'{"error": {"message": "failing"}}', status_code=failure, media_type="application/json"
            )
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(texts):
            digest = hashlib.sha256(str(text).encode()).digest()
            vector = [b / 255 for b in digest[:8]]
            if body.get("encoding_format") == "base64":
                import base64

                encoded: Any = base64.b64encode(struct.pack("<8f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        return Response(
            orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
                }
            ),
            media_type="application/json",
        )

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class UpstreamServer:
    """The upstream app under a real uvicorn server in a background thread."""

    def __init__(self, name: str = "upstream", port: int | None = None) -> None:
        self.state = UpstreamState(name=name)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            create_upstream_app(self.state),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name=f"upstream-{name}", daemon=True)

    def start(self) -> UpstreamServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the test upstream did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="upstream")
    args = parser.parse_args()
    state = UpstreamState(name=args.name)
    uvicorn.run(
        create_upstream_app(state), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
