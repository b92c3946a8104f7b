"""``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/chat/backends`` in the platform app:
authentication and policy, OpenAI-style errors, the backend named in every answer, metrics."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.integration.llm.conftest import dead_url
from tests.integration.llm.upstream import UpstreamServer
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import build_platform
from shopops.core.registry import BackendSelection
from shopops.core.settings import LlmSettings, Settings

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def api(
    tmp_path: Path, upstreams: Callable[[str], UpstreamServer]
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    up = upstreams("up")
    llm = LlmSettings(
        backends=[
            BackendSelection(type="openai", name="down", base_url=dead_url(), models={"chat": "m"}),
            BackendSelection(type="openai", name="up", base_url=up.base_url, models={"chat": "m"}),
            BackendSelection(
                type="offline", models={"shopops-offline": "shopops-offline", "chat": "shopops-offline"}
            ),
        ],
        retries=0,
    )
    platform = build_platform(Settings(home=tmp_path, llm=llm))
    governance = platform.governance
    keys = {role: key_for(governance, role) for role in ("support", "finance", "ml_engineer")}
    with TestClient(create_app(platform=platform)) as client:
        yield client, keys
    platform.close()


def test_a_chat_completion_names_its_backend_and_the_ones_that_failed(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = api
    response = client.post("/v1/chat/completions", json=CHAT, headers=bearer(keys["support"]))
    assert response.status_code == 200, response.text
    assert response.headers["x-shopops-backend"] == "up"
    assert response.headers["x-shopops-fallbacks"] == "down=connect"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["system_fingerprint"] == "shopops:up"
    assert body["choices"][0]["message"]["content"] == "up heard: hi"
    assert body["usage"]["total_tokens"] > 0


def test_a_streamed_completion_is_server_sent_events(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    with client.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=bearer(keys["support"])
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-shopops-backend"] == "up"
        text = "".join(response.iter_text())
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks).strip() == "up heard: hi"


def test_the_offline_model_streams_too(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    body = {
        "model": "shopops-offline",
        "messages": [{"role": "user", "content": "Who won the 2018 world cup?"}],
    }
    response = client.post(
        "/v1/chat/completions", json={**body, "stream": True}, headers=bearer(keys["support"])
    )
    assert response.headers["x-shopops-backend"] == "offline"
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    text = "".join(
        orjson.loads(e[6:])["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if orjson.loads(e[6:])["choices"]
    )
    assert text.startswith("I don't know")


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({**CHAT, "n": 3}, 400, "invalid_value", "n"),
        ({"model": "chat"}, 400, "invalid_value", "messages"),
        ({**CHAT, "model": "gpt-9"}, 404, "model_not_found", "model"),
    ],
)
def test_errors_answer_in_openai_shape(
    api: tuple[TestClient, dict[str, str]], body: dict[str, object], status: int, code: str, param: str
) -> None:
    client, keys = api
    response = client.post("/v1/chat/completions", json=body, headers=bearer(keys["support"]))
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_a_body_that_is_not_json_is_a_400(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    response = client.post(
        "/v1/chat/completions",
        content=b"{oops",
        headers={**bearer(keys["support"]), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_keys_and_policies_guard_the_gateway(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 401
    assert client.post("/v1/chat/completions", json=CHAT, headers=bearer(keys["finance"])).status_code == 403
    assert (
        client.post(
            "/v1/embeddings", json={"model": "x", "input": "y"}, headers=bearer(keys["finance"])
        ).status_code
        == 403
    )
    assert client.get("/v1/chat/backends", headers=bearer(keys["ml_engineer"])).status_code == 200


def test_backends_show_their_circuits(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    client.post("/v1/chat/completions", json=CHAT, headers=bearer(keys["support"]))
    rows = client.get("/v1/chat/backends", headers=bearer(keys["support"])).json()
    assert [(r["name"], r["type"], r["circuit"]) for r in rows] == [
        ("down", "openai", "closed"),
        ("up", "openai", "closed"),
        ("offline", "offline", "closed"),
    ]
    assert rows[0]["consecutive_failures"] >= 1
    metrics = client.get("/metrics").text
    assert 'shopops_llm_requests_total{backend="up",model="chat",outcome="ok"}' in metrics
    assert 'shopops_llm_fallbacks_total{backend="down",reason="connect"}' in metrics
    assert 'shopops_llm_breaker_state{backend="down"}' in metrics
    assert "shopops_llm_request_duration_seconds_bucket" in metrics
    assert 'shopops_llm_tokens_total{backend="up",kind="prompt",model="chat"}' in metrics


def test_embeddings_floats_and_base64(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    headers = bearer(keys["ml_engineer"])
    floats = client.post(
        "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "refunds"}, headers=headers
    )
    assert floats.status_code == 200, floats.text
    assert floats.headers["x-shopops-backend"] == "offline"
    vector = floats.json()["data"][0]["embedding"]
    packed = client.post(
        "/v1/embeddings",
        json={"model": "all-MiniLM-L6-v2", "input": ["refunds"], "encoding_format": "base64"},
        headers=headers,
    ).json()["data"][0]["embedding"]
    assert list(struct.unpack("<384f", base64.b64decode(packed))) == pytest.approx(vector, abs=1e-6)
    wrong = client.post(
        "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 10}, headers=headers
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "dimensions"


def test_the_routes_are_in_the_openapi_document(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    paths = client.get("/openapi.json", headers=bearer(keys["support"])).json()["paths"]
    assert {"/v1/chat/completions", "/v1/embeddings", "/v1/chat/backends"} <= set(paths)
