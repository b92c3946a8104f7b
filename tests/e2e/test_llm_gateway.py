"""The LLM gateway of a running platform (``shopops up`` under uvicorn) used by real OpenAI
clients: the ``openai`` package and LangChain's ``ChatOpenAI``.

Two OpenAI-compatible upstreams run beside it (uvicorn, loopback); a third address has nothing
listening. The chain for ``shopops-chat`` is [dead, flaky, steady, offline]: the dead one refuses
connections, the flaky one answers 500 when told to, and the built-in offline model is last.
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.e2e.helpers import SHOPOPS, free_port, shopops_env
from tests.integration.llm.knowledge import write_knowledge
from tests.integration.llm.upstream import UpstreamServer

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up an order by its id: status, payment and shipment.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "order id"}},
            "required": ["order_id"],
        },
    },
}


class Platform:
    def __init__(self, home: Path, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.home, self.url, self.proc, self.log = home, url, proc, log

    @property
    def key(self) -> str:
        return (self.home / "admin.key").read_text().strip()

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, timeout=120, max_retries=0)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Platform, UpstreamServer, UpstreamServer]]:
    root = tmp_path_factory.mktemp("llm-e2e")
    home = root / "home"
    home.mkdir()
    knowledge = write_knowledge(root / "knowledge")
    flaky, steady = UpstreamServer("flaky").start(), UpstreamServer("steady").start()
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = home / "shopops.toml"
    config.write_text(
        f"""
[llm]
retries = 0
breaker_failures = 2
breaker_cooldown_s = 300

[[llm.backends]]
name = "dead"
base_url = "{dead}"
models = {{ "shopops-chat" = "m", "dead-first" = "m" }}

[[llm.backends]]
name = "flaky"
base_url = "{flaky.base_url}"
models = {{ "shopops-chat" = "m" }}

[[llm.backends]]
name = "steady"
base_url = "{steady.base_url}"
models = {{ "shopops-chat" = "m", "dead-first" = "m" }}

[[llm.backends]]
type = "offline"
models = {{ "shopops-offline" = "shopops-offline", "shopops-chat" = "shopops-offline" }}

[rag]
knowledge_dir = "{knowledge}"
interval_s = 0
"""
    )
    port = free_port()
    log = root / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*SHOPOPS, "up", "--port", str(port), "--no-seed-demo"],
            env=shopops_env(home, SHOPOPS_CONFIG=str(config)),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    running = Platform(home, f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"shopops up exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if (
                httpx.get(f"{running.url}/healthz", timeout=1).status_code == 200
                and (home / "admin.key").exists()
            ):
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"shopops up not healthy in 120 s:\n{log.read_text()}")
        time.sleep(0.2)
    try:
        yield running, flaky, steady
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        flaky.stop()
        steady.stop()


Running = tuple[Platform, UpstreamServer, UpstreamServer]


def test_chat_falls_back_past_a_refused_connection(platform: Running) -> None:
    running, _, steady = platform
    raw = running.client().chat.completions.with_raw_response.create(
        model="dead-first", messages=[{"role": "user", "content": "where is my parcel?"}]
    )
    completion = raw.parse()
    assert raw.headers["x-shopops-backend"] == "steady"
    assert raw.headers["x-shopops-fallbacks"] == "dead=connect"
    assert completion.system_fingerprint == "shopops:steady"
    assert completion.model == "dead-first"
    assert completion.choices[0].message.content == "steady heard: where is my parcel?"
    assert steady.state.received("chat")[-1]["body"]["model"] == "m"


def test_500s_fall_back_and_open_the_circuit(platform: Running) -> None:
    running, flaky, _ = platform
    client = running.client()
    flaky.state.fail_next(1000, status=500)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="shopops-chat", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-shopops-backend"] == "steady"
        assert "flaky=status" in raw.headers["x-shopops-fallbacks"]
    calls = len(flaky.state.received("chat"))
    raw = client.chat.completions.with_raw_response.create(
        model="shopops-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-shopops-backend"] == "steady"
    assert raw.headers["x-shopops-fallbacks"] == "dead=circuit_open, flaky=circuit_open"
    assert len(flaky.state.received("chat")) == calls  # an open circuit sends nothing upstream
    with running.http() as http:
        circuits = {b["name"]: b["circuit"] for b in http.get("/v1/chat/backends").json()}
        assert circuits == {"dead": "open", "flaky": "open", "steady": "closed", "offline": "closed"}
        metrics = http.get("/metrics").text
    assert 'shopops_llm_breaker_state{backend="flaky"} 2.0' in metrics
    assert 'shopops_llm_fallbacks_total{backend="flaky",reason="status"} 2.0' in metrics


def test_streaming_through_the_openai_client(platform: Running) -> None:
    running, _, _ = platform
    stream = running.client().chat.completions.create(
        model="dead-first",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "steady heard: stream please"
    assert {c.system_fingerprint for c in chunks} == {"shopops:steady"}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0


def test_the_offline_model_calls_a_tool_then_answers_from_its_result(platform: Running) -> None:
    running, _, _ = platform
    client = running.client()
    question = {"role": "user", "content": "Where is my order vn-o-000000123?"}
    first = client.chat.completions.create(model="shopops-offline", messages=[question], tools=[SEARCH_TOOL])
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_order_status"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"order_id": "vn-o-000000123"}  # type: ignore[union-attr]
    second = client.chat.completions.create(
        model="shopops-offline",
        messages=[
            question,
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped", "carrier": "GHN"}'},
        ],
        tools=[SEARCH_TOOL],
    )
    content = second.choices[0].message.content or ""
    assert "- status: shipped" in content
    assert "[1] tool get_order_status(order_id=vn-o-000000123)" in content
    assert second.system_fingerprint == "shopops:offline"
    # streamed, the tool call arrives in pieces the client reassembles
    pieces = list(
        client.chat.completions.create(
            model="shopops-offline", messages=[question], tools=[SEARCH_TOOL], stream=True
        )
    )
    streamed = [p.choices[0].delta.tool_calls for p in pieces if p.choices and p.choices[0].delta.tool_calls]
    assert streamed[0][0].function.name == "get_order_status"  # type: ignore[union-attr]
    assert json.loads("".join(t[0].function.arguments or "" for t in streamed)) == {
        "order_id": "vn-o-000000123"
    }  # type: ignore[union-attr]


def test_the_offline_model_answers_from_the_knowledge_base(platform: Running) -> None:
    running, _, _ = platform
    client = running.client()
    deadline = time.monotonic() + 90  # the knowledge folder is ingested in the background at start
    content = ""
    while time.monotonic() < deadline:
        reply = client.chat.completions.create(
            model="shopops-offline", messages=[{"role": "user", "content": "How do I rotate an API key?"}]
        )
        content = reply.choices[0].message.content or ""
        if not content.startswith("I don't know"):
            break
        time.sleep(2)
    assert content.startswith("To rotate an API key, create a new key with the same roles"), content
    assert "api-keys.md — API keys > Rotating a key" in content


def test_embeddings_through_the_openai_client(platform: Running) -> None:
    running, _, _ = platform
    client = running.client()
    result = client.embeddings.create(
        model="all-MiniLM-L6-v2", input=["refund policy", "chính sách hoàn tiền"]
    )
    assert [len(d.embedding) for d in result.data] == [384, 384]
    assert sum(x * x for x in result.data[0].embedding) == pytest.approx(1.0, abs=1e-4)
    raw = client.embeddings.with_raw_response.create(
        model="all-MiniLM-L6-v2", input="x", encoding_format="base64"
    )
    assert raw.headers["x-shopops-backend"] == "offline"
    packed = raw.http_response.json()["data"][0]["embedding"]
    assert len(struct.unpack("<384f", base64.b64decode(packed))) == 384


def test_errors_reach_the_client_as_openai_exceptions(platform: Running) -> None:
    running, _, _ = platform
    client = running.client()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="shopops-offline", messages=[{"role": "user", "content": "x"}], n=2
        )
    assert "n=2 is not supported" in str(bad.value)
    with pytest.raises(openai.NotFoundError, match="known models"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    wrong = openai.OpenAI(base_url=f"{running.url}/v1", api_key="sk_000000000000_wrongwrongwrongwrongwrong")
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="shopops-offline", messages=[{"role": "user", "content": "x"}])


def test_langchain_chat_openai_with_a_bound_tool(platform: Running) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_order_status(order_id: str) -> str:
        """Look up an order by its id: status, payment and shipment."""
        return "shipped"

    running, _, _ = platform
    model = ChatOpenAI(
        model="shopops-offline",
        base_url=f"{running.url}/v1",
        api_key=running.key,
        timeout=120,
        max_retries=0,  # type: ignore[arg-type]
    )
    message: Any = model.bind_tools([get_order_status]).invoke("What is the status of order vn-o-000000042?")
    assert message.tool_calls == [
        {
            "name": "get_order_status",
            "args": {"order_id": "vn-o-000000042"},
            "id": message.tool_calls[0]["id"],
            "type": "tool_call",
        }
    ]
    assert message.response_metadata["system_fingerprint"] == "shopops:offline"
