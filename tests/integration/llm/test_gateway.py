"""The gateway against real OpenAI-compatible upstreams (uvicorn servers on loopback): fallback,
retries, timeouts, the circuit breaker, streaming, embeddings, API keys and personal data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from prometheus_client import REGISTRY
from tests.integration.llm.conftest import dead_url, upstream_backend
from tests.integration.llm.upstream import UpstreamServer
from tests.support.governance import open_governance

from shopops.core.errors import ConfigError
from shopops.core.registry import BackendSelection
from shopops.governance.model import make_principal
from shopops.llm.errors import BackendsUnavailableError, ModelNotFoundError, UpstreamRejectedError
from shopops.llm.model import ChatCompletionRequest, parse_chat_request, parse_embedding_request
from shopops.llm.service import LlmGateway

T = TypeVar("T")
Upstreams = Callable[[str], UpstreamServer]
Gateway = Callable[..., LlmGateway]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def ask(content: str = "hello", model: str = "chat", **extra: Any) -> ChatCompletionRequest:
    return parse_chat_request({"model": model, "messages": [{"role": "user", "content": content}], **extra})


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_falls_back_when_the_first_upstream_refuses_connections(
    upstreams: Upstreams, gateway: Gateway
) -> None:
    second = upstreams("second")
    gw = gateway(upstream_backend("first", dead_url()), upstream_backend("second", second.base_url))
    before = metric("shopops_llm_fallbacks_total", backend="first", reason="connect")
    result = run(gw.chat(ask("where is my parcel?")))
    assert result.backend == "second"
    assert [(a.backend, a.reason) for a in result.attempts] == [("first", "connect")]
    completion = result.completion
    assert completion.choices[0].message.content == "second heard: where is my parcel?"
    assert completion.model == "chat"  # the public name, not the upstream's
    assert completion.system_fingerprint == "shopops:second"
    assert second.state.received("chat")[0]["body"]["model"] == "up-model"
    assert metric("shopops_llm_fallbacks_total", backend="first", reason="connect") == before + 1


def test_5xx_is_retried_then_falls_back(upstreams: Upstreams, gateway: Gateway) -> None:
    first, second = upstreams("first"), upstreams("second")
    gw = gateway(
        upstream_backend("first", first.base_url), upstream_backend("second", second.base_url), retries=2
    )
    first.state.fail_next(2, status=503)  # two failures, then it recovers: the retries absorb them
    assert run(gw.chat(ask())).backend == "first"
    assert len(first.state.received("chat")) == 3
    first.state.fail_next(10, status=500)  # down for good: three attempts, then the next backend
    result = run(gw.chat(ask()))
    assert result.backend == "second"
    assert result.attempts[0].reason == "status"
    assert "HTTP 500" in result.attempts[0].detail
    assert len(first.state.received("chat")) == 6


def test_rate_limits_and_timeouts_fall_back_without_retrying(upstreams: Upstreams, gateway: Gateway) -> None:
    first, second = upstreams("first"), upstreams("second")
    gw = gateway(
        upstream_backend("first", first.base_url, timeout_s=0.3),
        upstream_backend("second", second.base_url),
        retries=3,
    )
    first.state.fail_next(1, status=429)
    assert run(gw.chat(ask())).backend == "second"
    assert len(first.state.received("chat")) == 1
    first.state.delay_s = 2.0
    started = time.monotonic()
    result = run(gw.chat(ask()))
    assert result.backend == "second"
    assert result.attempts[0].reason == "timeout"
    assert time.monotonic() - started < 1.5  # one attempt of 0.3 s, not four
    assert len(first.state.received("chat")) == 2


def test_the_circuit_opens_then_a_probe_closes_it(upstreams: Upstreams, gateway: Gateway) -> None:
    first, second = upstreams("first"), upstreams("second")
    gw = gateway(
        upstream_backend("first", first.base_url),
        upstream_backend("second", second.base_url),
        retries=0,
        breaker_failures=2,
        breaker_cooldown_s=0.5,
    )
    first.state.fail_next(1000, status=500)
    for _ in range(2):
        assert run(gw.chat(ask())).backend == "second"
    assert metric("shopops_llm_breaker_state", backend="first") == 2
    assert gw.status()[0]["circuit"] == "open"
    received = len(first.state.received("chat"))
    skipped = run(gw.chat(ask()))
    assert skipped.backend == "second"
    assert [(a.backend, a.reason) for a in skipped.attempts] == [("first", "circuit_open")]
    assert len(first.state.received("chat")) == received  # an open circuit sends nothing
    first.state.fail_next(0)
    time.sleep(0.55)
    assert gw.status()[0]["circuit"] == "half_open"
    assert run(gw.chat(ask())).backend == "first"  # the probe succeeds
    assert gw.status()[0]["circuit"] == "closed"
    assert metric("shopops_llm_breaker_state", backend="first") == 0


def test_every_backend_down_is_a_503_with_what_happened(upstreams: Upstreams, gateway: Gateway) -> None:
    first = upstreams("first")
    gw = gateway(upstream_backend("first", first.base_url), upstream_backend("second", dead_url()), retries=0)
    first.state.fail_next(5, status=502)
    with pytest.raises(BackendsUnavailableError) as caught:
        run(gw.chat(ask()))
    error = caught.value
    assert error.http_status == 503
    assert [a["backend"] for a in error.details["attempts"]] == ["first", "second"]
    assert "first: status" in error.message
    assert "second: connect" in error.message
    assert error.to_openai()["error"]["code"] == "backends_unavailable"


def test_a_request_the_upstream_refuses_is_passed_back_not_retried(
    upstreams: Upstreams, gateway: Gateway
) -> None:
    first, second = upstreams("first"), upstreams("second")
    gw = gateway(
        BackendSelection(type="openai", name="first", base_url=first.base_url, models={"*": "*"}),
        BackendSelection(type="openai", name="second", base_url=second.base_url, models={"*": "*"}),
    )
    with pytest.raises(UpstreamRejectedError) as caught:
        run(gw.chat(ask(model="reject-me")))
    assert caught.value.http_status == 404
    assert caught.value.to_openai()["error"]["code"] == "model_not_found"
    assert "model reject-me does not exist" in caught.value.message
    assert second.state.received("chat") == []
    assert gw.status()[0]["circuit"] == "closed"


def test_an_unknown_model_names_the_known_ones(gateway: Gateway) -> None:
    gw = gateway(BackendSelection(type="offline"))
    with pytest.raises(ModelNotFoundError, match="known models: shopops-offline"):
        run(gw.chat(ask(model="gpt-9")))


async def _collect(gw: LlmGateway, request: ChatCompletionRequest) -> tuple[str, list[str], list[Any]]:
    stream = await gw.stream(request)
    raw = [piece async for piece in stream.body]
    events = [r.decode() for r in raw]
    data = [orjson.loads(e[6:]) for e in events if not e.startswith("data: [DONE]")]
    return stream.backend, events, data


def test_streams_pass_through_and_fall_back_before_the_first_chunk(
    upstreams: Upstreams, gateway: Gateway
) -> None:
    second = upstreams("second")
    gw = gateway(upstream_backend("first", dead_url()), upstream_backend("second", second.base_url))
    backend, events, chunks = run(
        _collect(gw, ask("stream me", stream=True, stream_options={"include_usage": True}))
    )
    assert backend == "second"
    assert all(e.endswith("\n\n") and e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]\n\n"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip() == "second heard: stream me"
    assert all(c["system_fingerprint"] == "shopops:second" and c["model"] == "chat" for c in chunks)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 11
    # without stream_options the usage chunk is not sent
    _, _, plain = run(_collect(gw, ask("again", stream=True)))
    assert all(c["choices"] for c in plain)


def test_a_stream_broken_after_its_first_chunk_ends_with_an_error_event(
    upstreams: Upstreams, gateway: Gateway
) -> None:
    first, second = upstreams("first"), upstreams("second")
    gw = gateway(upstream_backend("first", first.base_url), upstream_backend("second", second.base_url))
    first.state.break_stream = True
    backend, events, chunks = run(_collect(gw, ask("break", stream=True)))
    assert backend == "first"  # committed at the first chunk: no fallback after that
    assert "[DONE]" not in events[-1]
    assert chunks[-1]["error"]["code"] == "backends_unavailable"
    assert "failed mid-stream" in chunks[-1]["error"]["message"]
    assert gw.status()[0]["consecutive_failures"] == 1


def test_upstream_tool_calls_and_streamed_tool_calls(upstreams: Upstreams, gateway: Gateway) -> None:
    first = upstreams("first")
    gw = gateway(upstream_backend("first", first.base_url))
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    result = run(gw.chat(ask("please lookup", tools=tools)))
    calls = result.completion.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "lookup"
    assert first.state.received("chat")[0]["body"]["tools"] == tools


def test_embeddings_from_an_upstream_with_fallback(upstreams: Upstreams, gateway: Gateway) -> None:
    second = upstreams("second")
    gw = gateway(
        BackendSelection(type="openai", name="first", base_url=dead_url(), embedding_models={"emb": "e1"}),
        BackendSelection(
            type="openai", name="second", base_url=second.base_url, embedding_models={"emb": "e2"}
        ),
    )
    request = parse_embedding_request({"model": "emb", "input": ["a", "b"], "encoding_format": "base64"})
    result = run(gw.embeddings(request))
    assert result.backend == "second"
    assert result.body["model"] == "emb"
    assert len(result.body["data"]) == 2
    assert isinstance(result.body["data"][0]["embedding"], str)
    assert second.state.received("embeddings")[0]["body"]["model"] == "e2"


def test_the_api_key_comes_from_the_secret_provider(
    upstreams: Upstreams, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = upstreams("first")
    with pytest.raises(ConfigError, match="SHOPOPS_SECRET_UPSTREAM_KEY"):
        gateway(upstream_backend("first", first.base_url, api_key_secret="upstream_key"), governance=None)
    monkeypatch.setenv("SHOPOPS_SECRET_UPSTREAM_KEY", "sk-upstream-123")
    gw = gateway(upstream_backend("first", first.base_url, api_key_secret="upstream_key"))
    run(gw.chat(ask()))
    assert first.state.received("chat")[0]["authorization"] == "Bearer sk-upstream-123"


PII_MESSAGE = "I am jane.doe@example.com, my card 4111 1111 1111 1111 was charged twice"


def test_personal_data_is_redacted_before_an_external_upstream_by_policy(
    upstreams: Upstreams, gateway: Gateway, tmp_path: Path
) -> None:
    governance = open_governance(tmp_path)
    try:
        external, internal, elsewhere, raw = (
            upstreams("ext"),
            upstreams("int"),
            upstreams("sg"),
            upstreams("raw"),
        )
        gw = gateway(
            BackendSelection(type="openai", name="ext", base_url=external.base_url, models={"ext": "m"}),
            BackendSelection(
                type="openai",
                name="int",
                base_url=internal.base_url,
                models={"int": "m"},
                external=False,
                region="vn",
            ),
            BackendSelection(
                type="openai",
                name="sg",
                base_url=elsewhere.base_url,
                models={"sg": "m"},
                external=False,
                region="sg",
            ),
            BackendSelection(
                type="openai", name="raw", base_url=raw.base_url, models={"raw": "m"}, redact_pii="never"
            ),
            governance=governance,
        )
        sam = make_principal("user", "sam", ["support"], "vn")
        email_only = "I am jane.doe@example.com, where is my order?"

        def sent(server: UpstreamServer) -> str:
            return str(server.state.received("chat")[-1]["body"]["messages"][0]["content"])

        run(gw.chat(ask(email_only, model="ext"), sam))
        assert sent(external) == "I am [redacted email], where is my order?"
        run(gw.chat(ask(email_only, model="int"), sam))
        assert sent(internal) == email_only  # internal, same region: permitted in clear
        run(gw.chat(ask(email_only, model="sg"), sam))
        assert sent(elsewhere) == "I am [redacted email], where is my order?"  # residency
        run(gw.chat(ask(PII_MESSAGE, model="int"), sam))
        assert sent(internal) == "I am [redacted email], my card [redacted card] was charged twice"
        run(gw.chat(ask(email_only, model="int")))  # no principal: no one to permit it
        assert "[redacted email]" in sent(internal)
        run(gw.chat(ask(PII_MESSAGE, model="raw"), sam))
        assert sent(raw) == PII_MESSAGE  # redact_pii = "never"
        assert metric("shopops_llm_pii_redactions_total", backend="ext", kind="email") >= 1
        decisions = [r for r in governance.audit.records() if r.action == "send_pii"]
        assert {(r.resource, r.decision) for r in decisions} >= {
            ('LlmBackend::"ext"', "deny"),
            ('LlmBackend::"int"', "allow"),
            ('LlmBackend::"sg"', "deny"),
        }
    finally:
        governance.close()


def test_a_bad_chain_is_refused_at_start_up(gateway: Gateway) -> None:
    with pytest.raises(ConfigError, match=r"llm.backends\[0\].*base_url"):
        gateway(BackendSelection(type="openai", name="x", models={"a": "b"}))
    with pytest.raises(ConfigError, match="unique"):
        gateway(BackendSelection(type="offline"), BackendSelection(type="offline"))
    with pytest.raises(ConfigError, match="known types: offline, openai"):
        gateway(BackendSelection(type="vllm", name="x"))
    with pytest.raises(ConfigError, match="give 'models'"):
        gateway(BackendSelection(type="openai", name="x", base_url="http://h/v1"))


def test_concurrent_requests_all_answered_and_one_probe_at_a_time(
    upstreams: Upstreams, gateway: Gateway
) -> None:
    flaky, steady = upstreams("flaky"), upstreams("steady")
    gw = gateway(
        upstream_backend("flaky", flaky.base_url),
        upstream_backend("steady", steady.base_url),
        retries=0,
        breaker_failures=3,
        breaker_cooldown_s=0.3,
    )
    flaky.state.fail_next(10_000, status=500)

    async def burst(n: int) -> list[str]:
        results = await asyncio.gather(*(gw.chat(ask(f"q{i}")) for i in range(n)))
        return [r.backend for r in results]

    assert run(burst(20)) == ["steady"] * 20  # nothing lost while the first backend fails
    assert gw.status()[0]["circuit"] == "open"
    time.sleep(0.35)
    before = len(flaky.state.received("chat"))
    assert run(burst(20)) == ["steady"] * 20
    assert len(flaky.state.received("chat")) == before + 1  # half-open: a single probe got through
    assert len(steady.state.received("chat")) == 40
