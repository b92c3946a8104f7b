"""A real registry server for the end-to-end tests: `shopops schemas serve` in a subprocess (uvicorn)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.helpers import SHOPOPS, free_port, shopops_env


class RegistryServer:
    """`shopops schemas serve` on a free port, with its own data directory."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home.parent / f"registry-{self.port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*SHOPOPS, "schemas", "serve", "--port", str(self.port)],
            env=shopops_env(home, **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=home.parent,
        )
        self._wait()

    def _wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"schemas serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"schemas serve not up in {timeout} s:\n{self.output()}")

    @property
    def admin_key(self) -> str:
        """The first admin key the registry wrote into its data directory (demo profile)."""
        return (self.home / "admin.key").read_text().strip()

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def client_config(self) -> dict[str, str]:
        """A Confluent SchemaRegistryClient configuration: HTTP Basic with the key as password."""
        return {"url": self.url, "basic.auth.user.info": f"admin:{self.admin_key}"}

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """One registry server per test module (tests use their own subjects); small body limit."""
    home = tmp_path_factory.mktemp("registry") / "home"
    home.mkdir()
    server = RegistryServer(home, SHOPOPS_SCHEMAS__MAX_REQUEST_BYTES="65536")
    try:
        yield server
    finally:
        server.stop()
