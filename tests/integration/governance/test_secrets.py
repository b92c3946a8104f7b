"""The secret provider port: environment, files, HashiCorp Vault KV v2 — and start-up refusing an
empty or default secret outside the demo profile.

No Vault server can be installed here (no Debian or PyPI package ships one), so the Vault backend
talks, through the real hvac client, to a small HTTP server implementing KV v2's read endpoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shopops.bootstrap import build_governance, build_platform
from shopops.cli.main import app as cli
from shopops.core.errors import BackendUnavailableError, ConfigError
from shopops.core.registry import BackendSelection
from shopops.core.settings import Settings
from shopops.governance.backends import open_secret_provider
from shopops.governance.errors import SecretError

TOKEN = "s.test-token"
ENTRY = {"session_secret": "vault-held-session-secret-0123456789", "api_token": "xyz"}


class FakeKv2(BaseHTTPRequestHandler):
    """``GET /v1/<mount>/data/<path>`` of Vault's KV v2 engine, with token checks."""

    entries: dict[str, dict[str, Any]] = {"secret/shopops": ENTRY}

    def do_GET(self) -> None:
        if self.headers.get("X-Vault-Token") != TOKEN:
            self._answer(403, {"errors": ["permission denied"]})
            return
        path = self.path.split("?", 1)[0].removeprefix("/v1/")
        mount, _, rest = path.partition("/data/")
        data = self.entries.get(f"{mount}/{rest}")
        if data is None:
            self._answer(404, {"errors": []})
            return
        meta = {"created_time": "2026-01-01T00:00:00Z", "deletion_time": "", "destroyed": False, "version": 1}
        self._answer(200, {"data": {"data": data, "metadata": meta}})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def vault_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKv2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_env_and_file_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPOPS_SECRET_SESSION_SECRET", "from-the-environment")
    env = open_secret_provider(BackendSelection(type="env"))
    assert env.get("session_secret").get_secret_value() == "from-the-environment"  # type: ignore[union-attr]
    assert env.get("missing") is None
    (tmp_path / "session_secret").write_text("from-a-file\n")
    files = open_secret_provider(BackendSelection(type="file", dir=str(tmp_path)))
    assert files.get("session_secret").get_secret_value() == "from-a-file"  # type: ignore[union-attr]
    assert files.get("missing") is None
    with pytest.raises(SecretError, match="invalid secret name"):
        files.get("../etc/passwd")


def test_vault_kv2_through_hvac(vault_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    vault = open_secret_provider(BackendSelection(type="vault", url=vault_url))
    assert vault.get("session_secret").get_secret_value() == ENTRY["session_secret"]  # type: ignore[union-attr]
    assert vault.get("absent") is None
    assert "secret/shopops" in vault.describe("session_secret")
    vault.close()

    monkeypatch.setenv("VAULT_TOKEN", "s.wrong")
    refused = open_secret_provider(BackendSelection(type="vault", url=vault_url))
    with pytest.raises(SecretError, match="permission denied"):
        refused.get("session_secret")
    down = open_secret_provider(BackendSelection(type="vault", url="http://127.0.0.1:9", timeout_s=1))
    with pytest.raises(BackendUnavailableError, match="cannot read secrets from Vault"):
        down.get("session_secret")
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(SecretError, match="no Vault token"):
        open_secret_provider(BackendSelection(type="vault", url=vault_url))


def test_production_takes_its_secret_from_vault(
    vault_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "vault_token"
    token_file.write_text(TOKEN)
    settings = Settings(
        home=tmp_path / "home",
        profile="production",
        governance={"secrets": {"url": vault_url, "token_file": str(token_file)}},
    )
    governance = build_governance(settings)
    assert governance.secrets.get("session_secret") is not None
    governance.close()
    # The secret is never shown: not by `config show`, not in the settings' repr.
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    "value", [None, "", "change-me", "short"], ids=["unset", "empty", "default", "short"]
)
def test_production_refuses_a_missing_empty_or_default_secret(tmp_path: Path, value: str | None) -> None:
    governance: dict[str, Any] = {} if value is None else {"session_secret": value}
    settings = Settings(home=tmp_path, profile="production", governance=governance)
    with pytest.raises(ConfigError, match=r"governance\.session_secret") as caught:
        build_platform(settings).governance  # noqa: B018 - opening it is the test
    assert "SHOPOPS_GOVERNANCE__SESSION_SECRET" in (caught.value.hint or "")


def test_the_demo_generates_its_session_secret_once(tmp_path: Path) -> None:
    first = build_governance(Settings(home=tmp_path))
    first.close()
    secret_file = tmp_path / "session_secret.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    content = secret_file.read_text()
    build_governance(Settings(home=tmp_path)).close()
    assert secret_file.read_text() == content


def test_start_up_names_the_secret_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPOPS_HOME", str(tmp_path))
    monkeypatch.setenv("SHOPOPS_PROFILE", "production")
    monkeypatch.setenv("SHOPOPS_GOVERNANCE__SESSION_SECRET", "changeme")
    result = CliRunner().invoke(cli, ["auth", "list"])
    assert result.exit_code == 78
    assert "governance.session_secret" in result.output
