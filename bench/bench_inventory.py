"""Inventory reservations: reserve + confirm throughput per backend, through the service and over
HTTP, against a raw Redis Lua loop; and what a read-then-write store oversells under contention.

    python bench/bench_inventory.py [--quick] [--json out.json]

One operation is a reservation of one or two lines (one unit each, 50/50, distinct SKUs drawn
at random from 1,000 SKUs of one warehouse, a 15-minute hold) followed by its confirmation.
Stock (1,000,000 units per SKU) never runs out. Each cell runs for a fixed time after a short
warm-up; ops/s counts the operations that completed inside that window, p50/p99 are their
latencies (reserve + confirm, seen by the client); client CPU/op is the CPU time of the client
processes over the window divided by the operations (the servers' CPU is not in it).

Clients are processes: a pool of 16 worker processes (``spawn`` context) is started once. 1 client
is one process; 16 clients are 16 processes; 64 clients are 16 processes x 4 threads (threads add
concurrency on I/O waits, not CPU). Each process opens its own store and service, shared by its
threads, as an API process does.

- service: ``InventoryService(store, event_log=None)`` per process, each backend at 1, 16 and 64
  clients. Events go to the store's outbox in the same atomic step (that cost is counted);
  publishing them to the event log is not (``event_log=None``), except in the extra row
  "service + inline publish", where each process publishes inline to one SQLite event log.
- http: a real uvicorn server (2 workers, ``create_app(platform=...)`` over a platform whose
  inventory uses the backend, the same service configuration) on a free loopback port, driven by
  16 client processes, each with one ``httpx.Client`` (keep-alive): ``POST /v1/reservations``
  with an ``Idempotency-Key`` header, then ``POST /v1/reservations/{id}/confirm``. The bench
  binds the listening socket itself (see :func:`serve_http`): with ``uvicorn --workers 2`` from
  the command line every response waits ~40 ms for a delayed ACK.
- raw script (the baseline): redis-py (hiredis) calling two minimal Lua scripts by SHA from the
  same client layout and line mix, in the same run: check every line's ``available`` and
  decrement it into ``held`` (recording the hold), then confirm (``held`` into ``committed``).
  It is the ceiling of one script round trip per step: a bare hold hash, no validation, no
  idempotency key, no expiry indexes, no item clock and no outbox. The Redis service cells and
  the raw cells alternate, 3 runs of 2.5 s each at every client count (one with --quick); the
  best run of each is kept, and the median of the per-round ratios is shown beside it.
- contention: 64 clients start at one instant and race for 20 units of each of 3 SKUs (a quarter
  of the carts take two of them) for a fixed time, on the naive read-then-write store
  (``shopops.inventory.naive``) and on each real store. Oversold = units granted to clients
  beyond the units on hand, per SKU, summed; the stores' own counters (committed + held beyond
  on hand) are shown beside it. The naive store waits 1 ms between its read and its write (its
  default ``think_ms``: the application's round trip).

- reserve only: the same service cells with a reserve alone as the operation (a successful
  reserve is one reservation; its hold stays), on stores of their own.
- server CPU: the CPU time, over the same window, of PostgreSQL's backends connected to the bench
  database or of the whole Redis server, per operation.
- raw script, direct: the raw loop sending ``EVALSHA`` on a connection each client thread keeps,
  with the Redis store's own hot-path call (``shopops.inventory.backends.redis.evalsha``: the
  command packed by hiredis in one call) and its numbers as decimal strings, as the store sends
  them; the service's ratio to it isolates what the service and its scripts cost, the client
  library's per-call layer aside.

Targets: Redis through the service >= 0.5x the raw script loop at the same client count, read
against "raw script, direct" (the like-for-like ceiling); PostgreSQL >= 2,000 reservations/s at 16
clients over 1,000 SKUs (a reservation: one successful reserve, one durable transaction; reserve +
confirm is reported beside it); the real stores oversell 0 units.

Redis: 127.0.0.1:6379 (``SHOPOPS_BENCH_REDIS_URL``), keys under unique prefixes, deleted at the
end. PostgreSQL: 127.0.0.1:5432 as user postgres (``SHOPOPS_BENCH_PG_DSN``), in a database the
bench creates and drops. SQLite: files in a temporary directory.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.util
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import redis
from rich.console import Console
from rich.table import Table

from shopops.core.logging import configure_logging
from shopops.core.registry import BackendSelection
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.backends.redis import evalsha
from shopops.inventory.model import InsufficientStockError, StockKey
from shopops.inventory.naive import NaiveReservationStore
from shopops.inventory.service import InventoryService

HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("SHOPOPS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_DSN = os.environ.get("SHOPOPS_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
#: The HTTP server's factory reads what to open from this variable (JSON).
SERVER_ENV = "BENCH_INVENTORY_SERVER"

BACKENDS = ("sqlite", "redis", "postgres")
CLIENT_COUNTS = (1, 16, 64)
PROCESSES = 16
HTTP_CLIENTS = 16
HTTP_WORKERS = 2
SKUS = 1_000
WAREHOUSE = "WH-1"
STOCK = 1_000_000
TTL_MS = 15 * 60 * 1000
TWO_LINE_SHARE = 0.5

CONTENDED_CLIENTS = 64
HOT_SKUS = 3
HOT_UNITS = 20
HOT_TWO_LINE_SHARE = 0.25

REDIS_RATIO_TARGET = 0.5
POSTGRES_TARGET = 2_000.0

#: The path of the cells whose operation is a reserve alone.
RESERVE_ONLY = "service, reserve only"
#: The raw script loop through redis-py's ``Script`` call (the target's ceiling), and the same loop
#: sending ``EVALSHA`` on a kept connection, as the store's hot path does.
RAW = "raw script"
RAW_DIRECT = "raw script, direct"
#: Parts of the run ``--only`` can pick (a full run, the one the docs quote, runs all of them).
SECTIONS = ("sqlite", "redis", "postgres", "reserve", "inline", "http", "contention")

console = Console()
if not console.is_terminal:
    # Logs and CI captures: wide enough that the table does not wrap.
    console = Console(width=150)


def sku_name(i: int) -> str:
    return f"SKU-{i:04d}"


def hot_sku_name(i: int) -> str:
    return f"HOT-{i}"


# --- the raw Redis baseline --------------------------------------------------------------------

# ARGV: prefix, reservation id, n, then n x (item, quantity). Every line is checked before any is
# written, as in the store's script.
RAW_RESERVE = r"""
local P, id, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 0, n - 1 do
  local a = redis.call('HGET', P .. ':s:' .. ARGV[4 + 2 * i], 'available')
  if not a or tonumber(a) < tonumber(ARGV[5 + 2 * i]) then return 0 end
end
local r = P .. ':r:' .. id
redis.call('HSET', r, 'status', 'held')
for i = 0, n - 1 do
  local item, q = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  redis.call('HINCRBY', P .. ':s:' .. item, 'available', -q)
  redis.call('HINCRBY', P .. ':s:' .. item, 'held', q)
  redis.call('HSET', r, 'l:' .. item, q)
end
return 1
"""

# ARGV: prefix, reservation id
RAW_CONFIRM = r"""
local P, id = ARGV[1], ARGV[2]
local r = P .. ':r:' .. id
local v = redis.call('HGETALL', r)
local status
for i = 1, #v, 2 do if v[i] == 'status' then status = v[i + 1] end end
if status ~= 'held' then return 0 end
for i = 1, #v, 2 do
  if string.sub(v[i], 1, 2) == 'l:' then
    local s = P .. ':s:' .. string.sub(v[i], 3)
    redis.call('HINCRBY', s, 'held', -v[i + 1])
    redis.call('HINCRBY', s, 'committed', v[i + 1])
  end
end
redis.call('HSET', r, 'status', 'confirmed')
return 1
"""


# --- jobs and the client processes ---------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What each client process of a cell runs."""

    #: ``service`` | ``naive`` | ``raw`` | ``http``
    kind: str
    backend: str
    tag: str
    threads: int = 1
    #: Store options (a BackendSelection as a dict); for ``raw`` the Redis URL and key prefix.
    selection: dict[str, Any] = field(default_factory=dict)
    home: str = ""
    base_url: str = ""
    #: Race for the hot SKUs from one instant (no warm-up) instead of the 1,000-SKU load.
    contended: bool = False
    #: Publish events inline to a SQLite event log in ``home`` (the platform's default wiring).
    publish_inline: bool = False
    #: One operation is a reserve alone (the hold stays until its TTL), not a reserve + confirm.
    reserve_only: bool = False
    #: HTTP only: the API key the clients send (``Authorization: Bearer``).
    token: str = ""
    #: Raw script only: ``EVALSHA`` sent on a connection each client thread keeps, as the store's
    #: own hot path does, instead of redis-py's ``Script`` call.
    direct: bool = False


@dataclass
class ClientResult:
    latencies: bytes = b""
    refused: int = 0
    errors: int = 0
    first_error: str = ""
    granted: dict[str, int] = field(default_factory=dict)
    #: CPU seconds the whole client process used inside the window (on its first result only).
    cpu_s: float = 0.0


# One operation: hold ``lines`` under ``key`` and confirm; True if granted, False if refused.
Operation = Callable[[list[tuple[str, str, int]], str], bool]


class Driver:
    """Builds one operation per client thread; closes what it opened."""

    def operation(self) -> Operation:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


class ServiceDriver(Driver):
    def __init__(self, job: Job) -> None:
        home = Path(job.home)
        if job.kind == "naive":
            store: Any = NaiveReservationStore(NaiveReservationStore.Config(**job.selection), home)
        else:
            options = dict(job.selection)
            if job.backend == "postgres":
                # One pooled connection per client thread, opened before the clock starts.
                options.update(pool_min_size=job.threads, pool_max_size=job.threads)
            store = open_reservation_store(BackendSelection(**options), home)
        self.event_log: Any = None
        if job.publish_inline:
            from shopops.events.backends import open_event_log

            self.event_log = open_event_log(BackendSelection(type="sqlite"), home)
        self.service = InventoryService(store, self.event_log)
        self.reserve_only = job.reserve_only

    def operation(self) -> Operation:
        service = self.service
        confirm = not self.reserve_only

        def op(lines: list[tuple[str, str, int]], key: str) -> bool:
            try:
                reservation = service.reserve(lines, TTL_MS, key)
            except InsufficientStockError:
                return False
            if confirm:
                service.confirm(reservation.id)
            return True

        return op

    def close(self) -> None:
        self.service.store.close()
        if self.event_log is not None:
            self.event_log.close()


class RawDriver(Driver):
    def __init__(self, job: Job) -> None:
        self.client = redis.Redis.from_url(job.selection["url"], max_connections=job.threads + 1)
        self.prefix = job.selection["key_prefix"]
        self.reserve = self.client.register_script(RAW_RESERVE)
        self.confirm = self.client.register_script(RAW_CONFIRM)
        # Loaded now: the direct variant sends EVALSHA without the Script call's reload on a miss.
        for script in (self.reserve, self.confirm):
            self.client.script_load(script.script)

        self.direct = job.direct
        self.connections: list[Any] = []

    def operation(self) -> Operation:
        prefix, reserve, confirm = self.prefix, self.reserve, self.confirm
        if self.direct:
            conn: Any = self.client.connection_pool.get_connection()
            self.connections.append(conn)

            def call(script: Any, args: list[Any]) -> Any:
                # The Redis store's own hot-path call, on a connection kept by this thread.
                return evalsha(conn, script, args)

        else:

            def call(script: Any, args: list[Any]) -> Any:
                return script(args=args)

        def op(lines: list[tuple[str, str, int]], key: str) -> bool:
            # Numbers as decimal strings, as the store sends them (hiredis packs them faster).
            args: list[Any] = [prefix, key, str(len(lines))]
            for sku, warehouse, quantity in lines:
                args += [f"{sku}|{warehouse}", str(quantity)]
            if not call(reserve, args):
                return False
            if not call(confirm, [prefix, key]):
                raise RuntimeError(f"the raw confirm of {key} found no hold")
            return True

        return op

    def close(self) -> None:
        for conn in self.connections:
            self.client.connection_pool.release(conn)
        self.client.close()


class HttpDriver(Driver):
    def __init__(self, job: Job) -> None:
        self.base_url = job.base_url
        self.headers = {"Authorization": f"Bearer {job.token}"}
        self.clients: list[httpx.Client] = []

    def operation(self) -> Operation:
        client = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=30.0)
        self.clients.append(client)

        def op(lines: list[tuple[str, str, int]], key: str) -> bool:
            body = {
                "lines": [{"sku": s, "warehouse": w, "quantity": q} for s, w, q in lines],
                "ttl_ms": TTL_MS,
            }
            answer = client.post("/v1/reservations", json=body, headers={"Idempotency-Key": key})
            if answer.status_code == 409 and answer.json().get("error") == "insufficient_stock":
                return False
            if answer.status_code != 201:
                raise RuntimeError(f"reserve answered {answer.status_code}: {answer.text[:200]}")
            confirmed = client.post(f"/v1/reservations/{answer.json()['id']}/confirm")
            if confirmed.status_code != 200:
                raise RuntimeError(f"confirm answered {confirmed.status_code}: {confirmed.text[:200]}")
            return True

        return op

    def close(self) -> None:
        for client in self.clients:
            client.close()


def open_driver(job: Job) -> Driver:
    if job.kind in ("service", "naive"):
        return ServiceDriver(job)
    if job.kind == "raw":
        return RawDriver(job)
    if job.kind == "http":
        return HttpDriver(job)
    raise ValueError(f"unknown job kind {job.kind!r}")


def pick_lines(rng: random.Random, contended: bool) -> list[tuple[str, str, int]]:
    if contended:
        count = 2 if rng.random() < HOT_TWO_LINE_SHARE else 1
        return [(hot_sku_name(i), WAREHOUSE, 1) for i in rng.sample(range(HOT_SKUS), count)]
    count = 2 if rng.random() < TWO_LINE_SHARE else 1
    return [(sku_name(i), WAREHOUSE, 1) for i in rng.sample(range(SKUS), count)]


def client_loop(
    op: Operation, job: Job, name: str, seed: int, start_at: float, end_at: float
) -> ClientResult:
    """Run operations until ``end_at``; record those that completed inside [start_at, end_at]
    (completions per second is the throughput; an operation in flight at either edge is counted
    at most once).

    Before ``start_at`` the client warms up (connections, caches), except in a contended run,
    where every client waits for ``start_at`` so that they all race from one instant. Units
    granted count whenever they were granted: an oversell is an oversell at any time."""
    rng = random.Random(seed)
    latencies = array("d")
    result = ClientResult()
    granted: Counter[str] = Counter()
    clock = time.monotonic
    if job.contended:
        time.sleep(max(0.0, start_at - clock()))
    n = 0
    while True:
        began = clock()
        if began >= end_at:
            break
        lines = pick_lines(rng, job.contended)
        n += 1
        try:
            ok = op(lines, f"{name}-{n}")
        except Exception as exc:
            if began >= start_at:
                result.errors += 1
                result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"[:300]
            continue
        ended = clock()
        if ok:
            for sku, _, quantity in lines:
                granted[sku] += quantity
        if start_at <= ended <= end_at:
            if ok:
                latencies.append(ended - began)
            else:
                result.refused += 1
    result.latencies = latencies.tobytes()
    result.granted = dict(granted)
    return result


def run_clients(driver: Driver, job: Job, worker: int, start_at: float, end_at: float) -> list[ClientResult]:
    ops = [driver.operation() for _ in range(job.threads)]
    results: list[ClientResult | None] = [None] * job.threads

    def run(t: int) -> None:
        name = f"{job.tag}-{worker}-{t}"
        # The same line sequence for the same client slot in every cell (raw and service alike).
        seed = zlib.crc32(f"{worker}-{t}-{job.contended}".encode())
        results[t] = client_loop(ops[t], job, name, seed, start_at, end_at)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(job.threads)]
    for thread in threads:
        thread.start()
    # The process's CPU time over the window: what one client process costs per operation.
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu_start = time.process_time()
    time.sleep(max(0.0, end_at - time.monotonic()))
    cpu_s = time.process_time() - cpu_start
    for thread in threads:
        thread.join()
    done = [r for r in results if r is not None]
    if done:
        done[0].cpu_s = cpu_s
    return done


def worker_main(conn: Connection, worker: int) -> None:
    """A client process: runs the jobs the coordinator sends, one at a time, until told to stop."""
    configure_logging("WARNING")
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        driver: Driver | None = None
        try:
            driver = open_driver(job)
        except Exception:
            conn.send(("error", traceback.format_exc()))
            continue
        try:
            conn.send(("ready", None))
            start_at, end_at = conn.recv()
            conn.send(("done", run_clients(driver, job, worker, start_at, end_at)))
        except (EOFError, OSError):
            return
        except Exception:
            conn.send(("error", traceback.format_exc()))
        finally:
            driver.close()


class WorkerPool:
    """Client processes started once (``spawn``) and reused by every cell."""

    def __init__(self, size: int) -> None:
        context = mp.get_context("spawn")
        self.workers: list[tuple[Any, Connection]] = []
        for i in range(size):
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main, args=(child, i), name=f"bench-client-{i}", daemon=True
            )
            process.start()
            child.close()
            self.workers.append((process, parent))

    @staticmethod
    def layout(clients: int) -> tuple[int, int]:
        processes = min(clients, PROCESSES)
        if clients % processes:
            raise ValueError(f"{clients} clients do not split evenly over {processes} processes")
        return processes, clients // processes

    def run(
        self,
        job: Job,
        clients: int,
        warmup_s: float,
        duration_s: float,
        server_cpu: Callable[[], float | None] | None = None,
    ) -> tuple[list[ClientResult], float | None]:
        """Run ``job`` on ``clients`` clients: their results, and the CPU seconds ``server_cpu``
        (a cumulative counter) moved by inside the measured window (None without one)."""
        processes, threads = self.layout(clients)
        conns = [conn for _, conn in self.workers[:processes]]
        for conn in conns:
            conn.send(replace(job, threads=threads))
        ready: list[Connection] = []
        failures: list[str] = []
        for conn in conns:
            status, payload = self._receive(conn, 120.0)
            if status == "ready":
                ready.append(conn)
            else:
                failures.append(str(payload))
        if failures:
            # Let the processes that opened their driver finish at once, then report.
            now = time.monotonic()
            for conn in ready:
                conn.send((now, now))
            for conn in ready:
                self._receive(conn, 60.0)
            raise RuntimeError(f"{job.kind}/{job.backend}: a client process failed to start:\n{failures[0]}")
        start_at = time.monotonic() + warmup_s
        end_at = start_at + duration_s
        for conn in conns:
            conn.send((start_at, end_at))
        server_s: float | None = None
        if server_cpu is not None:
            time.sleep(max(0.0, start_at - time.monotonic()))
            before = server_cpu()
            time.sleep(max(0.0, end_at - time.monotonic()))
            after = server_cpu()
            if before is not None and after is not None:
                server_s = after - before
        results: list[ClientResult] = []
        for conn in conns:
            status, payload = self._receive(conn, duration_s + warmup_s + 120.0)
            if status != "done":
                failures.append(str(payload))
            else:
                results += payload
        if failures:
            raise RuntimeError(f"{job.kind}/{job.backend}: a client process failed:\n{failures[0]}")
        return results, server_s

    @staticmethod
    def _receive(conn: Connection, timeout_s: float) -> tuple[str, Any]:
        if not conn.poll(timeout_s):
            raise TimeoutError(f"a client process did not answer within {timeout_s:.0f} s")
        message: tuple[str, Any] = conn.recv()
        return message

    def close(self) -> None:
        for _, conn in self.workers:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        deadline = time.monotonic() + 10
        for process, conn in self.workers:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(5)
            conn.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the HTTP server -------------------------------------------------------------------------------


def http_app() -> Any:
    """The uvicorn factory: the platform's app over a store described by ``BENCH_INVENTORY_SERVER``."""
    from shopops.api.app import create_app
    from shopops.bootstrap import Platform
    from shopops.core.settings import Settings
    from shopops.events.backends import open_event_log

    configure_logging("WARNING")
    spec = orjson.loads(os.environ[SERVER_ENV])
    home = Path(spec["home"])
    selection = BackendSelection(**spec["store"])
    settings = Settings(home=home, inventory=selection)
    event_log = open_event_log(settings.events, home)
    # As in the service cells: events stay in the store's outbox (written in the same step).
    inventory = InventoryService(open_reservation_store(selection, home), event_log=None)
    platform = Platform(settings=settings, event_log=event_log, inventory=inventory)
    atexit.register(platform.close)
    return create_app(platform=platform)


def checkout_key(home: Path) -> str:
    """A new API key with the ``checkout`` role (reserve, confirm, read stock), in the key store
    the HTTP server over ``home`` reads."""
    from shopops.bootstrap import build_governance
    from shopops.core.settings import Settings

    governance = build_governance(Settings(home=home))
    try:
        issued = governance.create_key(
            kind="service", name="bench-checkout", roles=("checkout",), home_region="vn"
        )
        return issued.token
    finally:
        governance.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_http(port: int) -> None:
    """Run uvicorn with ``HTTP_WORKERS`` workers on ``port`` (the ``--serve-http`` mode)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "bench_inventory:http_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=HTTP_WORKERS,
        access_log=False,
        log_level="warning",
    )
    # The socket is bound here rather than by uvicorn's ``Config.bind_socket()``, which creates it
    # with protocol 0: asyncio then leaves TCP_NODELAY off on the accepted connections, and every
    # response (headers and body written apart) waits ~40 ms for the client's delayed ACK. With
    # the protocol given, the workers set TCP_NODELAY as a single-process uvicorn does.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()


@contextlib.contextmanager
def http_server(store: dict[str, Any], home: Path) -> Iterator[str]:
    """uvicorn on a free loopback port with ``HTTP_WORKERS`` workers; yields its base URL."""
    port = free_port()
    env = {**os.environ, SERVER_ENV: orjson.dumps({"home": str(home), "store": store}).decode()}
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-http", str(port)]
    log_path = home / f"uvicorn-{port}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(server, base_url, log_path)
        yield base_url
    finally:
        stop_process_group(server)


def wait_healthy(server: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    """Wait until every worker has built the app (a request reaches ``/healthz``)."""
    deadline = time.monotonic() + 60
    answered = 0
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while answered < 2 * HTTP_WORKERS:
            if server.poll() is not None:
                raise RuntimeError(
                    f"uvicorn exited with {server.returncode}:\n{log_path.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer within 60 s:\n{log_path.read_text()[-2000:]}")
            try:
                if client.get("/healthz").status_code == 200:
                    answered += 1
                    continue
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    # The workers start one after the other: give the second one time to finish its start-up.
    time.sleep(0.5)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started by this bench (its own session): SIGTERM, then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    # Workers left behind by a killed server share its process group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# --- servers, namespaces and seeding -----------------------------------------------------------------


def check_servers() -> dict[str, Any]:
    """Fail early, with how to start it, when a server does not answer; else what is running."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        info = client.info()
    except redis.exceptions.RedisError as exc:
        raise SystemExit(
            f"Redis does not answer at {REDIS_URL} ({exc}): start it with "
            "`redis-server --daemonize yes --port 6379 --save '' --appendonly no`"
        ) from exc
    finally:
        client.close()
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3) as conn:
            settings: dict[str, Any] = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('server_version', 'synchronous_commit', 'fsync', 'max_connections')"
                ).fetchall()
            )
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"PostgreSQL does not answer at {PG_ADMIN_DSN} ({exc}): start it with "
            "`pg_ctlcluster 15 main start`"
        ) from exc
    return {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "redis_server": info.get("redis_version"),
        "redis_aof_enabled": info.get("aof_enabled"),
        "postgres": settings,
        "redis_py": redis.__version__,
        "hiredis": importlib.util.find_spec("hiredis") is not None,
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
        "httpx": httpx.__version__,
        "uvloop": importlib.util.find_spec("uvloop") is not None,
        "httptools": importlib.util.find_spec("httptools") is not None,
    }


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """A database for this run; dropped at the end (its connections closed by force)."""
    name = f"shopops_bench_inventory_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RedisNamespaces:
    """Unique key prefixes of this run; every key under them is deleted at the end."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.prefixes: list[str] = []

    def new(self, purpose: str) -> str:
        prefix = f"bench-inventory-{self.run}-{purpose}"
        self.prefixes.append(prefix)
        return prefix

    def cleanup(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for prefix in self.prefixes:
                # Store keys are "{prefix}:..."; raw-loop keys too (the prefix is its hash tag).
                batch: list[bytes] = []
                for key in client.scan_iter(match=f"{{{prefix}}}*", count=5_000):
                    batch.append(key)
                    if len(batch) >= 5_000:
                        client.unlink(*batch)
                        batch.clear()
                if batch:
                    client.unlink(*batch)
        finally:
            client.close()


def store_options(
    backend: str, purpose: str, home: Path, dsn: str, namespaces: RedisNamespaces
) -> dict[str, Any]:
    if backend == "sqlite":
        return {"type": "sqlite", "path": str(home / f"inventory-{purpose}.db")}
    if backend == "redis":
        return {"type": "redis", "url": REDIS_URL, "key_prefix": namespaces.new(purpose)}
    if backend == "postgres":
        return {"type": "postgres", "dsn": dsn, "schema_name": f"bench_{purpose}"}
    raise ValueError(backend)


def seed_store(options: dict[str, Any], home: Path, skus: list[str], units: int) -> None:
    service = InventoryService(open_reservation_store(BackendSelection(**options), home), event_log=None)
    try:
        for sku in skus:
            service.set_stock(sku, WAREHOUSE, units, "bench")
    finally:
        service.store.close()


def seed_raw(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(SKUS):
            pipe.hset(
                f"{{{prefix}}}:s:{sku_name(i)}|{WAREHOUSE}",
                mapping={"available": STOCK, "held": 0, "committed": 0},
            )
        pipe.execute()
    finally:
        client.close()


# --- server CPU ------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: str) -> float:
    """User + system CPU seconds of a process, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def postgres_cpu(dsn: str) -> Callable[[], float | None]:
    """CPU seconds of the PostgreSQL backends connected to the bench's database so far (None when
    the server is not on this machine): the server's work for the clients, WAL writer and
    checkpointer aside."""
    database = str(psycopg.conninfo.conninfo_to_dict(dsn).get("dbname", "")).encode()

    def sample() -> float | None:
        total, found = 0.0, False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"{entry.path}/cmdline", "rb") as cmdline:
                    command = cmdline.read()
                if command.startswith(b"postgres: ") and database in command:
                    total += _process_cpu_s(entry.name)
                    found = True
            except (OSError, ValueError, IndexError):
                continue
        return total if found else None

    return sample


def redis_cpu() -> float | None:
    """CPU seconds the Redis server has used (all of its clients, this bench's and others')."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    except redis.exceptions.RedisError:
        return None
    finally:
        client.close()


# --- figures -------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """The figures of one backend x path x client count."""

    path: str
    backend: str
    clients: int
    layout: str
    seconds: float
    ops: int
    ops_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    refused: int
    errors: int
    #: CPU time of the client processes per operation (the server's is not included).
    client_cpu_ms_per_op: float | None = None
    #: CPU time of the database server per operation: PostgreSQL's backends of the bench database,
    #: or the whole Redis server (None for SQLite, which runs inside the clients).
    server_cpu_ms_per_op: float | None = None
    first_error: str = ""
    #: ops/s of every run of this cell; the figures above are those of the best run.
    runs: list[float] = field(default_factory=list)
    ratio_vs_raw: float | None = None
    #: The same against the raw script sent the way the store sends its own (``Job.direct``).
    ratio_vs_direct: float | None = None
    #: Median over rounds of (service run / raw run of the same round).
    paired_ratio: float | None = None
    #: The same against the direct raw run of the round.
    paired_ratio_direct: float | None = None
    target: str = ""
    target_met: bool | None = None


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def summarise(path: str, backend: str, clients: int, seconds: float, results: list[ClientResult]) -> Cell:
    latencies: list[float] = []
    for result in results:
        values = array("d")
        values.frombytes(result.latencies)
        latencies += values.tolist()
    latencies.sort()
    processes, threads = WorkerPool.layout(clients)
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    return Cell(
        path=path,
        backend=backend,
        clients=clients,
        layout=f"{processes} proc x {threads} thr" if threads > 1 else f"{processes} proc",
        seconds=seconds,
        ops=len(latencies),
        ops_per_s=len(latencies) / seconds,
        p50_ms=p50 * 1000 if p50 is not None else None,
        p99_ms=p99 * 1000 if p99 is not None else None,
        refused=sum(r.refused for r in results),
        errors=sum(r.errors for r in results),
        client_cpu_ms_per_op=sum(r.cpu_s for r in results) * 1000 / len(latencies) if latencies else None,
        first_error=next((r.first_error for r in results if r.first_error), ""),
    )


@dataclass
class Contention:
    store: str
    clients: int
    on_hand: int
    granted_units: int
    oversold_units: int
    store_oversubscribed: int
    refused: int
    errors: int
    first_error: str = ""


@dataclass
class Plan:
    duration_s: float
    warmup_s: float
    contended_s: float
    #: Rounds of the Redis service / raw script pairs (the best run of each is kept), and the
    #: length of each of those runs: more, shorter runs give more chances of an undisturbed one.
    redis_rounds: int
    redis_duration_s: float
    client_counts: tuple[int, ...] = CLIENT_COUNTS
    #: What to run (see ``SECTIONS``); the backends named select the stores of every part.
    sections: tuple[str, ...] = SECTIONS

    @classmethod
    def of(cls, quick: bool) -> Plan:
        return cls(1.2, 0.2, 1.0, 1, 1.2) if quick else cls(4.0, 0.5, 2.0, 3, 2.5)


class Bench:
    def __init__(
        self, pool: WorkerPool, plan: Plan, home: Path, dsn: str, namespaces: RedisNamespaces
    ) -> None:
        self.pool = pool
        self.plan = plan
        self.home = home
        self.dsn = dsn
        self.namespaces = namespaces
        self.cells: list[Cell] = []
        self.contention: list[Contention] = []

    def measure(self, path: str, job: Job, clients: int, duration_s: float | None = None) -> Cell:
        seconds = duration_s or self.plan.duration_s
        server_cpu: Callable[[], float | None] | None = None
        if job.backend == "postgres":
            server_cpu = postgres_cpu(self.dsn)
        elif job.backend == "redis":
            server_cpu = redis_cpu
        results, server_s = self.pool.run(job, clients, self.plan.warmup_s, seconds, server_cpu)
        cell = summarise(path, job.backend, clients, seconds, results)
        cell.runs = [cell.ops_per_s]
        if server_s is not None and cell.ops:
            cell.server_cpu_ms_per_op = server_s * 1000 / cell.ops
        shown = f"{cell.ops_per_s:,.0f} ops/s, p99 {cell.p99_ms or 0:.1f} ms"
        if cell.client_cpu_ms_per_op is not None:
            shown += f", client CPU {cell.client_cpu_ms_per_op:.2f} ms/op"
        if cell.server_cpu_ms_per_op is not None:
            shown += f", server CPU {cell.server_cpu_ms_per_op:.2f} ms/op"
        if cell.errors:
            shown += f", {cell.errors} errors ({cell.first_error})"
        console.print(f"  {path:<24} {job.backend:<8} {clients:>2} clients: {shown}")
        return cell

    def cell(self, path: str, job: Job, clients: int) -> Cell:
        cell = self.measure(path, job, clients)
        self.cells.append(cell)
        return cell

    def load(self) -> None:
        """Reserve + confirm, and reserve alone, over 1,000 SKUs: the service per backend, the raw
        script, HTTP."""
        skus = [sku_name(i) for i in range(SKUS)]
        wanted = self.plan.sections
        stores: dict[str, dict[str, Any]] = {}
        # Reserve-only cells run on stores of their own: their holds stay (a 15-minute TTL), and
        # the reserve + confirm cells should not have to count them.
        reserve_stores: dict[str, dict[str, Any]] = {}
        for backend in BACKENDS:
            if backend not in wanted:
                continue
            stores[backend] = store_options(backend, "load", self.home, self.dsn, self.namespaces)
            reserve_stores[backend] = store_options(backend, "hold", self.home, self.dsn, self.namespaces)
            started = time.perf_counter()
            seed_store(stores[backend], self.home, skus, STOCK)
            seed_store(reserve_stores[backend], self.home, skus, STOCK)
            console.print(f"seeded {SKUS:,} SKUs twice on {backend} in {time.perf_counter() - started:.1f} s")

        for backend in ("sqlite", "postgres"):
            if backend not in wanted:
                continue
            for clients in self.plan.client_counts:
                job = Job(
                    "service",
                    backend,
                    f"s{backend[0]}{clients}",
                    selection=stores[backend],
                    home=str(self.home),
                )
                self.cell("service", job, clients)
        if "redis" in wanted:
            self.redis_pairs(stores["redis"])
        for backend in BACKENDS:
            if backend not in wanted or "reserve" not in wanted:
                continue
            for clients in self.plan.client_counts:
                job = Job(
                    "service",
                    backend,
                    f"o{backend[0]}{clients}",
                    selection=reserve_stores[backend],
                    home=str(self.home),
                    reserve_only=True,
                )
                self.cell(RESERVE_ONLY, job, clients)
        if "redis" in wanted and "inline" in wanted:
            inline_store = store_options("redis", "inline", self.home, self.dsn, self.namespaces)
            seed_store(inline_store, self.home, skus, STOCK)
            inline = Job(
                "service", "redis", "inline", selection=inline_store, home=str(self.home), publish_inline=True
            )
            self.cell("service + inline publish", inline, HTTP_CLIENTS)
        for cell in self.cells:
            if cell.path == RESERVE_ONLY and cell.backend == "postgres" and cell.clients == 16:
                cell.target = f">= {POSTGRES_TARGET:,.0f}/s"
                cell.target_met = cell.ops_per_s >= POSTGRES_TARGET
        if "http" in wanted:
            self.http(stores)

    def redis_pairs(self, store: dict[str, Any]) -> None:
        """Redis through the service and the raw script, alternating at each client count so that
        both see much the same machine load."""
        raw_prefix = self.namespaces.new("raw")
        seed_raw(raw_prefix)
        raw = {"url": REDIS_URL, "key_prefix": "{" + raw_prefix + "}"}
        for clients in self.plan.client_counts:
            rounds: list[tuple[Cell, Cell, Cell]] = []
            for round_ in range(self.plan.redis_rounds):
                job = Job("service", "redis", f"sr{clients}r{round_}", selection=store, home=str(self.home))
                raw_job = Job("raw", "redis", f"raw{clients}r{round_}", selection=raw)
                direct_job = replace(raw_job, tag=f"rawd{clients}r{round_}", direct=True)
                seconds = self.plan.redis_duration_s
                rounds.append(
                    (
                        self.measure("service", job, clients, seconds),
                        self.measure(RAW, raw_job, clients, seconds),
                        self.measure(RAW_DIRECT, direct_job, clients, seconds),
                    )
                )
            ours, base, direct = (max((r[i] for r in rounds), key=lambda c: c.ops_per_s) for i in range(3))
            for i, cell in enumerate((ours, base, direct)):
                cell.runs = [r[i].ops_per_s for r in rounds]
            ours.ratio_vs_raw = ours.ops_per_s / base.ops_per_s if base.ops_per_s else None
            ours.ratio_vs_direct = ours.ops_per_s / direct.ops_per_s if direct.ops_per_s else None
            ours.paired_ratio = statistics.median(
                r[0].ops_per_s / r[1].ops_per_s for r in rounds if r[1].ops_per_s
            )
            ours.paired_ratio_direct = statistics.median(
                r[0].ops_per_s / r[2].ops_per_s for r in rounds if r[2].ops_per_s
            )
            # Issue #4: against the raw loop sent as the store sends its scripts (like for like).
            ours.target = f">= {REDIS_RATIO_TARGET}x direct"
            ours.target_met = ours.ratio_vs_direct is not None and ours.ratio_vs_direct >= REDIS_RATIO_TARGET
            self.cells += [ours, base, direct]

    def http(self, stores: dict[str, dict[str, Any]]) -> None:
        """Reserve + confirm over HTTP, per backend."""
        for backend in BACKENDS:
            if backend not in stores:
                continue
            server_home = self.home / f"http-{backend}"
            server_home.mkdir()
            options = dict(stores[backend])
            if backend == "postgres":
                # Up to 8 requests at a time per worker; room for the threadpool's bursts.
                options.update(pool_min_size=4, pool_max_size=16)
            token = checkout_key(server_home)
            with http_server(options, server_home) as base_url:
                job = Job("http", backend, f"h{backend[0]}", base_url=base_url, token=token)
                self.cell("http", job, HTTP_CLIENTS)

    def contended(self) -> None:
        """64 clients race for 20 units of each of 3 SKUs: the naive store, then the real ones."""
        hot = [hot_sku_name(i) for i in range(HOT_SKUS)]
        runs: list[tuple[str, str, dict[str, Any]]] = [
            ("naive", "sqlite", {"path": str(self.home / "naive.db")}),
        ]
        for backend in BACKENDS:
            if backend not in self.plan.sections:
                continue
            runs.append(
                (backend, backend, store_options(backend, "hot", self.home, self.dsn, self.namespaces))
            )
        for name, backend, options in runs:
            full = {"type": "sqlite", **options} if name == "naive" else options
            seed_store(full, self.home, hot, HOT_UNITS)
            job = Job(
                "naive" if name == "naive" else "service",
                backend,
                f"c{name}",
                selection=options,
                home=str(self.home),
                contended=True,
            )
            results, _ = self.pool.run(job, CONTENDED_CLIENTS, 0.3, self.plan.contended_s)
            granted: Counter[str] = Counter()
            for result in results:
                granted.update(result.granted)
            store: Any
            if name == "naive":
                store = NaiveReservationStore(NaiveReservationStore.Config(**options), self.home)
            else:
                store = open_reservation_store(BackendSelection(**options), self.home)
            try:
                levels = store.stock_levels([StockKey(s, WAREHOUSE) for s in hot], int(time.time() * 1000))
            finally:
                store.close()
            row = Contention(
                store=f"{name} (read, then write)" if name == "naive" else name,
                clients=CONTENDED_CLIENTS,
                on_hand=HOT_SKUS * HOT_UNITS,
                granted_units=sum(granted.values()),
                oversold_units=sum(max(0, granted[s] - HOT_UNITS) for s in hot),
                store_oversubscribed=sum(level.oversubscribed for level in levels),
                refused=sum(r.refused for r in results),
                errors=sum(r.errors for r in results),
                first_error=next((r.first_error for r in results if r.first_error), ""),
            )
            self.contention.append(row)
            console.print(
                f"  contended {row.store}: {row.granted_units} units granted of {row.on_hand}, "
                f"oversold {row.oversold_units}"
            )


def ratio_text(cell: Cell) -> str:
    if cell.ratio_vs_raw is None:
        return ""
    # Three decimals: a ratio of 0.497 must not read as the 0.50 it misses.
    text = f"{cell.ratio_vs_raw:.3f}x"
    if cell.paired_ratio is not None and len(cell.runs) > 1:
        text += f" (paired {cell.paired_ratio:.3f}x)"
    if cell.ratio_vs_direct is not None:
        text += f"; {cell.ratio_vs_direct:.3f}x direct"
        if cell.paired_ratio_direct is not None and len(cell.runs) > 1:
            text += f" (paired {cell.paired_ratio_direct:.3f}x)"
    return text


def fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def report(bench: Bench, plan: Plan) -> None:
    table = Table(
        title=f"reserve + confirm over {SKUS:,} SKUs, 1-2 lines, {plan.duration_s:g} s per cell "
        f"(after {plan.warmup_s:g} s warm-up)"
    )
    for column in (
        "path",
        "backend",
        "clients",
        "layout",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "client CPU ms/op",
        "server CPU ms/op",
        "errors",
        "vs raw",
        "target",
    ):
        table.add_column(
            column, justify="left" if column in ("path", "backend", "layout", "target") else "right"
        )
    for cell in bench.cells:
        verdict = ""
        if cell.target:
            verdict = f"{'[green]met' if cell.target_met else '[red]missed'} ({cell.target})"
        table.add_row(
            cell.path,
            cell.backend,
            str(cell.clients),
            cell.layout,
            f"{cell.ops_per_s:,.0f}",
            fmt(cell.p50_ms, 2),
            fmt(cell.p99_ms, 1),
            fmt(cell.client_cpu_ms_per_op, 2),
            fmt(cell.server_cpu_ms_per_op, 2),
            str(cell.errors) if cell.errors else "",
            ratio_text(cell),
            verdict,
        )
    console.print(table)
    console.print(
        "ops/s: reservations reserved and confirmed per second (two store transactions each); "
        f"'{RESERVE_ONLY}': successful reserves per second (one transaction each, the hold kept); "
        f"Redis rows: best of {plan.redis_rounds} alternating runs of {plan.redis_duration_s:g} s; "
        "vs raw: Redis through the service over the raw Lua loop at the same client count, "
        "called through redis-py's Script and sent directly as the store sends its scripts "
        "(paired: median over rounds of service run / raw run). Server CPU: PostgreSQL's backends "
        "of the bench database, or the whole Redis server (which other clients may share)."
    )
    for cell in bench.cells:
        if cell.path == "service" and cell.backend == "redis":
            console.print(
                f"Redis through the service / raw script at {cell.clients} clients: {ratio_text(cell)} "
                f"(target >= {REDIS_RATIO_TARGET}x direct): {'met' if cell.target_met else 'missed'}"
            )
    postgres = {
        cell.path: cell
        for cell in bench.cells
        if cell.backend == "postgres" and cell.clients == 16 and cell.path in ("service", RESERVE_ONLY)
    }
    if RESERVE_ONLY in postgres:
        cell = postgres[RESERVE_ONLY]
        console.print(
            f"PostgreSQL at 16 clients over {SKUS:,} SKUs: {cell.ops_per_s:,.0f} reservations/s "
            f"(successful reserves, one transaction each), target >= {POSTGRES_TARGET:,.0f}/s: "
            f"{'met' if cell.target_met else 'missed'}"
        )
    if "service" in postgres:
        cell = postgres["service"]
        console.print(
            f"PostgreSQL at 16 clients over {SKUS:,} SKUs, reserve + confirm: {cell.ops_per_s:,.0f} "
            f"reservations reserved and confirmed/s ({2 * cell.ops_per_s:,.0f} transactions/s)"
        )
    hot = Table(
        title=f"{CONTENDED_CLIENTS} clients racing for {HOT_UNITS} units of each of {HOT_SKUS} SKUs "
        f"for {plan.contended_s:g} s"
    )
    for column in (
        "store",
        "units on hand",
        "units granted",
        "oversold",
        "store oversubscribed",
        "refused",
        "errors",
    ):
        hot.add_column(column, justify="left" if column == "store" else "right")
    for row in bench.contention:
        colour = "[red]" if row.oversold_units else "[green]"
        hot.add_row(
            row.store,
            str(row.on_hand),
            str(row.granted_units),
            f"{colour}{row.oversold_units}",
            str(row.store_oversubscribed),
            f"{row.refused:,}",
            str(row.errors) if row.errors else "",
        )
    console.print(hot)
    oversold = {row.store: row.oversold_units for row in bench.contention}
    console.print("oversold units: " + ", ".join(f"{store} {units}" for store, units in oversold.items()))
    for cell in bench.cells:
        if cell.errors:
            console.print(
                f"[yellow]{cell.path} {cell.backend} {cell.clients}: "
                f"{cell.errors} errors, e.g. {cell.first_error}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short cells (about a minute in all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--only",
        help=f"run only these comma-separated parts of {', '.join(SECTIONS)} (with at least one "
        "backend); for quick comparisons, the documented figures come from full runs",
    )
    parser.add_argument(
        "--clients", help=f"comma-separated client counts (default {','.join(map(str, CLIENT_COUNTS))})"
    )
    parser.add_argument("--serve-http", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    if args.serve_http:
        serve_http(args.serve_http)
        return 0
    # A SIGTERM unwinds like Ctrl-C: client processes, the HTTP server, the database and the
    # Redis keys are cleaned up in the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = Plan.of(args.quick)
    if args.only:
        sections = tuple(part.strip() for part in args.only.split(",") if part.strip())
        unknown = set(sections) - set(SECTIONS)
        if unknown or not set(sections) & set(BACKENDS):
            parser.error(f"--only takes parts of {', '.join(SECTIONS)}, with at least one backend")
        plan = replace(plan, sections=sections)
    if args.clients:
        counts = tuple(int(n) for n in args.clients.split(","))
        for count in counts:
            WorkerPool.layout(count)
        plan = replace(plan, client_counts=counts)
    conditions = check_servers()
    started = time.perf_counter()
    load_before = os.getloadavg()
    namespaces = RedisNamespaces()
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-inventory-")))
        stack.callback(namespaces.cleanup)
        dsn = stack.enter_context(bench_database())
        console.print(f"starting {PROCESSES} client processes…")
        pool = stack.enter_context(WorkerPool(PROCESSES))
        bench = Bench(pool, plan, home, dsn, namespaces)
        bench.load()
        if "contention" in plan.sections:
            console.print("contended run…")
            bench.contended()
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    report(bench, plan)
    console.print(
        f"done in {elapsed:.1f} s on {os.cpu_count()} CPUs; load average (1 min) {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after"
    )
    console.print(f"conditions: {orjson.dumps(conditions).decode()}")
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "benchmark": "inventory",
                    "quick": args.quick,
                    "plan": asdict(plan),
                    "skus": SKUS,
                    "client_processes": PROCESSES,
                    "http_workers": HTTP_WORKERS,
                    "conditions": conditions,
                    "load_average_before": load_before,
                    "load_average_after": load_after,
                    "seconds": elapsed,
                    "results": [asdict(cell) for cell in bench.cells],
                    "contention": [asdict(row) for row in bench.contention],
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
