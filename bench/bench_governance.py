"""Governance: policy decisions/s and p99 in process, audit appends/s (SQLite, PostgreSQL), and the
latency auth + policy add to an HTTP request.

    python bench/bench_governance.py [--decisions 20000] [--postgres DSN] [--requests 2000] [--json out.json]

Each figure sits beside a baseline measured in the same run, on the same machine:

- **Policy decisions** through :class:`PolicyEngine` (the shipped policies, a mix of route, personal
  data and promotion requests; parsed policy set and per-principal entity handles reused). Anchors:
  the same requests through ``cedarpy.is_authorized`` with an entity set of 5,000 principals given as
  JSON on every call (what re-parsing costs: the "large data" case), and the bare cedarpy call with
  the same pre-parsed handles (the floor). The published anchor for OPA is ~500 µs per evaluation
  with large data (open-policy-agent/opa #2523).
- **Audit appends/s**: one record per transaction and 100 per transaction, hash-chained, on SQLite
  and PostgreSQL (``--postgres``, default: a scratch database on 127.0.0.1:5432). Baseline: the same
  rows inserted without the chain (no head lock, no hashing) into the same kind of table.
- **HTTP**: two real uvicorn servers (one worker each, in subprocesses) with the platform app,
  identical but for the governance middleware, which the baseline server drops; sequential
  keep-alive requests to ``GET /v1/events/topics`` alternating between them. The median of the
  paired differences is what authentication + one Cedar decision add per request.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import cedarpy
import httpx
import orjson
from rich.console import Console
from rich.table import Table

from shopops.core.registry import BackendSelection
from shopops.governance.backends import open_audit_store
from shopops.governance.model import AuditEntry, AuditKind, EntityRef, make_principal, to_cedar_value
from shopops.governance.policy import PolicyEngine, default_policy_dir

HERE = Path(__file__).resolve()
console = Console()
if not console.is_terminal:
    console = Console(width=140)

PRINCIPALS = [
    make_principal("user", "sam", ["support"], "vn"),
    make_principal("user", "fin", ["finance"], "vn"),
    make_principal("user", "mia", ["ml_engineer"], "vn"),
    make_principal("service", "checkout", ["checkout"], "sg"),
]
REQUESTS: list[tuple[int, str, EntityRef, dict[str, Any]]] = [
    (0, "read", EntityRef("Api", "events"), {"method": "GET", "path": "/v1/events/topics"}),
    (0, "write", EntityRef("Api", "inventory"), {"method": "PUT", "path": "/v1/inventory/stock"}),
    (
        1,
        "read_pii",
        EntityRef("Dataset", "shop.customers"),
        {"column": "email", "tag": "pii", "dataset_region": "vn"},
    ),
    (3, "write", EntityRef("Api", "reservations"), {"method": "POST", "path": "/v1/reservations"}),
    (
        2,
        "promote",
        EntityRef("Model", "fraud"),
        {
            "alias": "champion",
            "version": 3,
            "approvers": ["lead"],
            "evaluation": {"passed": True, "metric": "auc", "value": 0.91, "baseline": 0.9},
        },
    ),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt_us(ns: float) -> str:
    return f"{ns / 1000:,.1f}"


# --- policy decisions -----------------------------------------------------------------------------


def bench_decisions(n: int) -> list[dict[str, Any]]:
    engine = PolicyEngine(default_policy_dir())
    rows = []

    def timed(label: str, call: Any, count: int) -> None:
        times = []
        start = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter_ns()
            call(REQUESTS[i % len(REQUESTS)])
            times.append(time.perf_counter_ns() - t0)
        wall = time.perf_counter() - start
        rows.append(
            {
                "path": label,
                "decisions": count,
                "per_s": count / wall,
                "p50_us": percentile(times, 0.5) / 1000,
                "p99_us": percentile(times, 0.99) / 1000,
            }
        )

    for req in REQUESTS:  # warm the per-principal entity handles
        engine.decide(PRINCIPALS[req[0]], req[1], req[2], req[3])
    timed(
        "PolicyEngine.decide (handles reused)", lambda r: engine.decide(PRINCIPALS[r[0]], r[1], r[2], r[3]), n
    )

    policy_set = engine.policies.policy_set
    handles = {id(p): cedarpy.Entities.from_json_str(orjson.dumps([p.entity()]).decode()) for p in PRINCIPALS}
    cedar_requests = [
        {
            "principal": PRINCIPALS[r[0]].uid,
            "action": {"type": "Action", "id": r[1]},
            "resource": r[2].to_cedar(),
            "context": to_cedar_value(r[3]),
        }
        for r in REQUESTS
    ]

    def bare(r: Any) -> None:
        index = REQUESTS.index(r)
        cedarpy.is_authorized(cedar_requests[index], policy_set, handles[id(PRINCIPALS[r[0]])])

    timed("baseline: bare cedarpy, same handles (floor)", bare, n)

    directory = [make_principal("user", f"u{i}", ["support"], "vn").entity() for i in range(5_000)]
    big = orjson.dumps(directory + [p.entity() for p in PRINCIPALS]).decode()
    text = "\n".join(s.text for s in engine.policies.sources)

    def naive(r: Any) -> None:
        index = REQUESTS.index(r)
        cedarpy.is_authorized(cedar_requests[index], text, big)

    timed("anchor: cedarpy, policies + 5k entities as text per call", naive, max(20, n // 400))
    return rows


# --- audit appends --------------------------------------------------------------------------------


def _entry(i: int) -> AuditEntry:
    return AuditEntry(
        AuditKind.ACCESS,
        'User::"sam"',
        "read",
        'Api::"events"',
        "allow",
        ("support-reads-orders-and-stock",),
        {"method": "GET", "path": f"/v1/events/topics/{i}"},
    )


def bench_audit(
    backend: str, selection: BackendSelection, home: Path, seconds: float
) -> list[dict[str, Any]]:
    rows = []
    store = open_audit_store(selection, home)
    try:
        for batch in (1, 100):
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                store.append([_entry(count + j) for j in range(batch)], ts_ms=1)
                count += batch
            rows.append(
                {
                    "backend": backend,
                    "path": "chained append",
                    "batch": batch,
                    "per_s": count / (time.perf_counter() - start),
                }
            )
    finally:
        store.close()
    return rows


def bench_raw_sqlite(home: Path, seconds: float) -> list[dict[str, Any]]:
    from shopops.core.sqlite import connect_wal

    conn = connect_wal(home / "raw.db", 30_000, "raw")
    conn.execute(
        "CREATE TABLE t (seq INTEGER PRIMARY KEY, ts_ms INTEGER, kind TEXT, principal TEXT, action TEXT, "
        "resource TEXT, decision TEXT, reasons TEXT, details TEXT, prev_hash TEXT, hash TEXT)"
    )
    row = ("access", 'User::"sam"', "read", 'Api::"events"', "allow", "[]", "{}", "0" * 64, "0" * 64)
    rows = []
    for batch in (1, 100):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO t (ts_ms, kind, principal, action, resource, decision, reasons, details, "
                "prev_hash, hash) VALUES (1,?,?,?,?,?,?,?,?,?)",
                [row] * batch,
            )
            conn.execute("COMMIT")
            count += batch
        rows.append(
            {
                "backend": "sqlite",
                "path": "baseline: plain insert",
                "batch": batch,
                "per_s": count / (time.perf_counter() - start),
            }
        )
    conn.close()
    return rows


def bench_raw_postgres(dsn: str, seconds: float) -> list[dict[str, Any]]:
    import psycopg

    rows = []
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE raw_t (seq BIGSERIAL PRIMARY KEY, ts_ms BIGINT, kind TEXT, principal TEXT, "
            "action TEXT, resource TEXT, decision TEXT, reasons TEXT, details TEXT, prev_hash TEXT, "
            "hash TEXT)"
        )
        conn.commit()
        row = ("access", 'User::"sam"', "read", 'Api::"events"', "allow", "[]", "{}", "0" * 64, "0" * 64)
        for batch in (1, 100):
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO raw_t (ts_ms, kind, principal, action, resource, decision, reasons, "
                        "details, prev_hash, hash) VALUES (1,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        [row] * batch,
                    )
                conn.commit()
                count += batch
            rows.append(
                {
                    "backend": "postgres",
                    "path": "baseline: plain insert",
                    "batch": batch,
                    "per_s": count / (time.perf_counter() - start),
                }
            )
    return rows


# --- HTTP -----------------------------------------------------------------------------------------


def serve(port: int, home: str, open_: bool) -> None:
    """The server side of the HTTP benchmark (run in a subprocess); ``open_`` drops the
    authentication/authorization middleware, everything else equal."""
    import uvicorn

    from shopops.api.app import create_app
    from shopops.bootstrap import build_platform
    from shopops.core.settings import Settings
    from shopops.governance.api import GovernanceMiddleware

    settings = Settings(home=Path(home), governance={"audit_log_lines": False}, logging={"level": "WARNING"})
    platform = build_platform(settings)
    issued = platform.governance.create_key(kind="user", name="bench", roles=["support"], home_region="vn")
    (Path(home) / "bench.key").write_text(issued.token)
    app = create_app(platform=platform)
    if open_:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not GovernanceMiddleware]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(open_: bool) -> tuple[subprocess.Popen[bytes], str, str]:
    home = Path(tempfile.mkdtemp(prefix="bench-governance-"))
    port = free_port()
    command = [sys.executable, str(HERE), "--serve", str(port), "--home", str(home)]
    proc = subprocess.Popen([*command, "--open"] if open_ else command)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not (home / "bench.key").exists() or not _up(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("the benchmark server did not start")
        time.sleep(0.1)
    return proc, url, (home / "bench.key").read_text()


def bench_http(requests: int) -> list[dict[str, Any]]:
    """The same route on two identical servers, one without the governance middleware."""
    governed, url, key = _start(open_=False)
    try:
        ungoverned, open_url, _ = _start(open_=True)
    except BaseException:
        governed.terminate()
        raise
    path = "/v1/events/topics"
    routes = (("without auth (baseline)", open_url), ("with auth + policy", url))
    rows: list[dict[str, Any]] = []
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as client:
            for _ in range(300):
                for _, base in routes:
                    client.get(base + path)
            for round_ in range(3):
                # Interleaved, so both servers see the same machine load; the added latency is the
                # median of the paired differences.
                times: dict[str, list[int]] = {base: [] for _, base in routes}
                for _ in range(requests):
                    for _, base in routes:
                        t0 = time.perf_counter_ns()
                        answer = client.get(base + path)
                        times[base].append(time.perf_counter_ns() - t0)
                        assert answer.status_code == 200, answer.text
                for label, base in routes:
                    rows.append(
                        {
                            "round": round_ + 1,
                            "route": f"GET {path} {label}",
                            "p50_us": percentile(times[base], 0.5) / 1000,
                            "p99_us": percentile(times[base], 0.99) / 1000,
                            "per_s": 1e9 * len(times[base]) / sum(times[base]),
                        }
                    )
                paired = [b - a for a, b in zip(times[open_url], times[url], strict=True)]
                rows[-1]["added_median_us"] = statistics.median(paired) / 1000
        return rows
    finally:
        for proc in (governed, ungoverned):
            proc.terminate()
            proc.wait(30)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each audit append run")
    parser.add_argument("--postgres", help="DSN of a database to use (default: a scratch database)")
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--open", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.home, args.open)
        return 0

    results: dict[str, Any] = {}
    decisions = bench_decisions(args.decisions)
    results["decisions"] = decisions
    table = Table(
        "path",
        "decisions",
        "decisions/s",
        "p50 µs",
        "p99 µs",
        "vs engine p50",
        title="Policy decisions, in process",
    )
    engine_p50 = decisions[0]["p50_us"]
    for r in decisions:
        table.add_row(
            r["path"],
            f"{r['decisions']:,}",
            f"{r['per_s']:,.0f}",
            f"{r['p50_us']:,.1f}",
            f"{r['p99_us']:,.1f}",
            f"{r['p50_us'] / engine_p50:,.2f}x",
        )
    console.print(table)
    console.print(
        "published anchor: OPA ~500 µs per evaluation with large data (open-policy-agent/opa #2523)"
    )

    audit_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        audit_rows += bench_audit("sqlite", BackendSelection(type="sqlite"), home, args.seconds)
        audit_rows += bench_raw_sqlite(home, args.seconds)
        dsn, cleanup = _postgres(args.postgres)
        try:
            audit_rows += bench_audit(
                "postgres", BackendSelection(type="postgres", dsn=dsn), home, args.seconds
            )
            audit_rows += bench_raw_postgres(dsn, args.seconds)
        finally:
            cleanup()
    results["audit"] = audit_rows
    table = Table("backend", "path", "records per transaction", "records/s", title="Audit appends")
    for r in audit_rows:
        table.add_row(r["backend"], r["path"], str(r["batch"]), f"{r['per_s']:,.0f}")
    console.print(table)

    http_rows = bench_http(args.requests)
    results["http"] = http_rows
    table = Table(
        "round", "route", "p50 µs", "p99 µs", "requests/s (sequential)", title="HTTP, one uvicorn worker"
    )
    for r in http_rows:
        table.add_row(
            str(r["round"]), r["route"], f"{r['p50_us']:,.0f}", f"{r['p99_us']:,.0f}", f"{r['per_s']:,.0f}"
        )
    console.print(table)
    added = [r["added_median_us"] for r in http_rows if "added_median_us" in r]
    results["http_added_median_us"] = added
    console.print(
        "added by auth + policy (median of paired differences, per round): "
        + ", ".join(f"{x:,.0f} µs" for x in added)
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


def _postgres(dsn: str | None) -> tuple[str, Any]:
    if dsn:
        return dsn, lambda: None
    import psycopg

    admin_dsn = os.environ.get("SHOPOPS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_audit_{uuid.uuid4().hex[:8]}"
    with closing(psycopg.connect(admin_dsn, autocommit=True)) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    info["dbname"] = name

    def drop() -> None:
        with closing(psycopg.connect(admin_dsn, autocommit=True)) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None}), drop


if __name__ == "__main__":
    sys.exit(main())
