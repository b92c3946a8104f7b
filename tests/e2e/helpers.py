"""End-to-end helpers: the real `shopops` command in subprocesses, a real uvicorn server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SHOPOPS = [sys.executable, "-m", "shopops"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def shopops_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPOPS_")}
    env.update(
        {
            "SHOPOPS_HOME": str(home),
            "SHOPOPS_LOGGING__FORMAT": "json",
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **extra,
        }
    )
    return env


def run_cli(home: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOPOPS, *args],
        env=shopops_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=home.parent,
    )


class Server:
    def __init__(self, home: Path, port: int, **env: str) -> None:
        self.home, self.port, self.url = home, port, f"http://127.0.0.1:{port}"
        self.log_path = home.parent / f"up-{port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*SHOPOPS, "up", "--port", str(port)],
            env=shopops_env(home, **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=home.parent,
        )

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"shopops up exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"shopops up not healthy in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def admin_key(self) -> str:
        """The first admin key the demo wrote into the data directory."""
        return (self.home / "admin.key").read_text().strip()

    def client(self) -> httpx.Client:
        """An HTTP client of this server authenticated with the demo's admin key."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key()}"}, timeout=30
        )

    def stop(self) -> int:
        self.proc.terminate()
        try:
            code = self.proc.wait(90)  # a clean stop waits for the knowledge-base round in progress
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._log.close()
        return code
