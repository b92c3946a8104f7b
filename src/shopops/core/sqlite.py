"""Opening the SQLite files of the embedded backends: WAL, explicit transactions, busy timeout."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from shopops.core.errors import ConfigError


def connect_wal(
    path: Path, busy_timeout_ms: int, what: str, page_size: int | None = None
) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode with ``synchronous=NORMAL``, shareable across threads.

    Autocommit mode: every transaction is explicit (``BEGIN IMMEDIATE`` ... ``COMMIT``), so a reader
    never holds a snapshot open by accident and never blocks WAL checkpoints. WAL with NORMAL keeps
    every committed transaction across a process kill (SIGKILL included); only a power loss can
    lose the last ones. ``page_size`` only takes effect when the file is created.
    """
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if page_size is not None:
        conn.execute(f"PRAGMA page_size = {int(page_size)}")
    # Switching to WAL needs a moment of exclusive access; several processes opening a fresh
    # file at once can see SQLITE_BUSY here even with a busy timeout, so retry briefly.
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if str(mode).lower() != "wal":
        raise ConfigError(
            f"cannot put {what} {path} in WAL mode (got {mode!r})",
            hint="keep it on a local filesystem (not NFS) that supports shared memory",
        )
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn
