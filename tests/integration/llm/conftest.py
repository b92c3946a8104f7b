"""Fixtures of the gateway's integration tests: real upstream servers, a real knowledge base."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.llm.knowledge import write_knowledge
from tests.integration.llm.upstream import UpstreamServer, free_port

from shopops.bootstrap import build_llm
from shopops.core.registry import BackendSelection
from shopops.core.settings import LlmSettings, Settings
from shopops.governance.service import GovernanceService
from shopops.llm.service import LlmGateway


@pytest.fixture(scope="session")
def knowledge_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The platform's real retrieval service over a few documents (English and Vietnamese)."""
    from shopops.rag.service import build_rag_service

    home = tmp_path_factory.mktemp("rag-home")
    folder = write_knowledge(tmp_path_factory.mktemp("knowledge") / "knowledge")
    service = build_rag_service(Settings(home=home))
    service.ingest(folder)
    yield service
    service.close()


@pytest.fixture
def upstreams() -> Iterator[Callable[[str], UpstreamServer]]:
    """Starts named upstream servers; stops them after the test."""
    started: list[UpstreamServer] = []

    def start(name: str) -> UpstreamServer:
        server = UpstreamServer(name).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def dead_url() -> str:
    """A URL nothing listens on (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}/v1"


def upstream_backend(name: str, base_url: str, **options: Any) -> BackendSelection:
    return BackendSelection(
        type="openai", name=name, base_url=base_url, models={"chat": "up-model"}, **options
    )


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., LlmGateway]]:
    """Builds gateways the way the platform does (settings → registry → chain)."""
    built: list[LlmGateway] = []

    def build(
        *backends: BackendSelection,
        governance: GovernanceService | None = None,
        rag: Any = None,
        **section: Any,
    ) -> LlmGateway:
        llm = LlmSettings(backends=list(backends), **{"retry_backoff_s": 0.01, **section})
        gw = build_llm(Settings(home=tmp_path, llm=llm), rag=rag, governance=governance)
        built.append(gw)
        return gw

    yield build
    for gw in built:
        gw.close()
