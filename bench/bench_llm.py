"""LLM gateway: what the gateway adds to a chat completion, and how fast the offline model answers.

    python bench/bench_llm.py [--requests 400] [--concurrency 16] [--rounds 3] [--answers 40] [--json F]

Each figure sits beside a baseline measured in the same run, on the same machine:

- **Gateway overhead.** A fake OpenAI-compatible upstream (``tests/integration/llm/upstream.py``,
  uvicorn, one process) answers ``POST /v1/chat/completions`` at once. The platform app (uvicorn,
  one process, API key + Cedar policy on every request, the chain ``[upstream, offline]``) is put in
  front of it. The same requests go, interleaved round by round, straight to the upstream (the
  baseline) and through the gateway: completions/s and p50/p99 with ``--concurrency`` requests in
  flight, and the median of paired sequential latencies (what the gateway adds to one request).
- **Offline model.** The repository's knowledge base (``docs/knowledge``) ingested into a scratch
  Qdrant store; ``--answers`` questions (English and Vietnamese) answered by the offline model
  through the gateway in process, p50/p95. Baseline: the retrieval alone (``RagService.search``)
  for the same questions — the offline model retrieves, then embeds and ranks the passages'
  sentences.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
console = Console()
if not console.is_terminal:
    console = Console(width=140)

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Where is my parcel? It is late."}]}
QUESTIONS = [
    "How long do I have to return an item in Singapore?",
    "What should I do when the oversell alert fires?",
    "How are partial refunds calculated?",
    "What do we do when shipments are late?",
    "How do I handle a chargeback?",
    "What are the signs of a fraud spike?",
    "Tôi có thể trả hàng trong bao lâu?",
    "Phí giao hàng ở Việt Nam là bao nhiêu?",
    "What happens when a reconciliation break is found?",
    "Who won the football world cup in 2018?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(url: str, proc: subprocess.Popen[bytes], path: str = "/healthz", ready: Path | None = None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a benchmark server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500 and (ready is None or ready.exists()):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{url} did not start in 120 s")


def serve(port: int, home: str, upstream: str) -> None:
    """The gateway side (run in a subprocess): the platform app with the chain [upstream, offline]."""
    import uvicorn

    from shopops.api.app import create_app
    from shopops.bootstrap import build_platform
    from shopops.core.settings import Settings

    settings = Settings(
        home=Path(home),
        governance={"audit_log_lines": False},
        logging={"level": "WARNING"},
        llm={
            "backends": [
                {"name": "upstream", "type": "openai", "base_url": upstream, "models": {"bench": "m"}},
                {"type": "offline"},
            ]
        },
    )
    platform = build_platform(settings)
    issued = platform.governance.create_key(kind="user", name="bench", roles=["support"], home_region="vn")
    (Path(home) / "bench.key").write_text(issued.token)
    uvicorn.run(
        create_app(platform=platform), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


async def _load(url: str, headers: dict[str, str], requests: int, concurrency: int) -> list[float]:
    """``requests`` completions, ``concurrency`` in flight; each one's latency in seconds."""
    latencies: list[float] = []
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                answer = await client.post(url, json=BODY)
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def bench_gateway(requests: int, concurrency: int, rounds: int) -> list[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    up_port, gw_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    upstream = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.llm.upstream", "--port", str(up_port)], cwd=REPO, env=env
    )
    up_url = f"http://127.0.0.1:{up_port}"
    try:
        _wait(up_url, upstream, "/stats")
        gateway = subprocess.Popen(
            [
                sys.executable,
                str(HERE),
                "--serve",
                str(gw_port),
                "--home",
                str(home),
                "--upstream",
                f"{up_url}/v1",
            ]
        )
        try:
            gw_url = f"http://127.0.0.1:{gw_port}"
            _wait(gw_url, gateway, ready=home / "bench.key")
            key = (home / "bench.key").read_text()
            targets = [
                ("upstream directly (baseline)", f"{up_url}/v1/chat/completions", {}),
                ("through the gateway", f"{gw_url}/v1/chat/completions", {"Authorization": f"Bearer {key}"}),
            ]
            return _measure(targets, requests, concurrency, rounds)
        finally:
            gateway.terminate()
            gateway.wait(30)
    finally:
        upstream.terminate()
        upstream.wait(30)


def _measure(
    targets: list[tuple[str, str, dict[str, str]]], requests: int, concurrency: int, rounds: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _, url, headers in targets:  # warm-up: connections, the gateway's first call
        asyncio.run(_load(url, headers, 50, 4))
    for round_ in range(rounds):
        for label, url, headers in targets:
            started = time.perf_counter()
            latencies = asyncio.run(_load(url, headers, requests, concurrency))
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "round": round_ + 1,
                    "path": label,
                    "concurrency": concurrency,
                    "per_s": requests / seconds,
                    "p50_ms": 1000 * percentile(latencies, 0.5),
                    "p99_ms": 1000 * percentile(latencies, 0.99),
                }
            )
    # Sequential, paired: the gateway's own cost per request, free of queueing.
    paired: list[float] = []
    with httpx.Client(timeout=60) as client:
        for _ in range(min(requests, 300)):
            times = []
            for _, url, headers in targets:
                started = time.perf_counter()
                client.post(url, json=BODY, headers=headers).raise_for_status()
                times.append(time.perf_counter() - started)
            paired.append(times[1] - times[0])
    rows.append(
        {
            "round": "sequential",
            "path": "added by the gateway (median of paired)",
            "added_ms": 1000 * statistics.median(paired),
        }
    )
    return rows


def bench_offline(answers: int) -> list[dict[str, Any]]:
    from shopops.bootstrap import build_llm
    from shopops.core.logging import configure_logging
    from shopops.core.settings import Settings
    from shopops.llm.model import parse_chat_request
    from shopops.rag.service import build_rag_service

    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        rag = build_rag_service(settings)
        try:
            started = time.perf_counter()
            rag.ingest(REPO / "docs" / "knowledge")
            console.print(f"knowledge base ingested in {time.perf_counter() - started:.1f} s")
            gateway = build_llm(settings, rag=rag)
            for q in QUESTIONS:  # the model loaded, the retriever warm
                rag.search(q)
            repeats = [QUESTIONS[i % len(QUESTIONS)] for i in range(answers)]
            search = _timed(lambda q: rag.search(q, 5), repeats)
            dont_know: list[str] = []

            def answer(q: str) -> None:
                request = parse_chat_request(
                    {"model": "shopops-offline", "messages": [{"role": "user", "content": q}]}
                )
                reply = gateway.chat_sync(request).completion.choices[0].message.content or ""
                if reply.startswith(("I don't know", "Tôi không biết")):
                    dont_know.append(q)

            # First time a question is asked its passages' sentences are embedded; asked again
            # (or another question on the same passages) they come from the embedding cache.
            cold = _timed(answer, QUESTIONS)
            warm = _timed(answer, repeats)
            gateway.close()
        finally:
            rag.close()
    rows = [
        ("retrieval alone (baseline)", search),
        ("offline answer, first time (sentences embedded)", cold),
        ("offline answer, asked again (sentence cache)", warm),
    ]
    out: list[dict[str, Any]] = [
        {
            "path": label,
            "n": len(times),
            "p50_ms": 1000 * percentile(times, 0.5),
            "p95_ms": 1000 * percentile(times, 0.95),
        }
        for label, times in rows
    ]
    out[1]["dont_know"] = sorted(set(dont_know))
    return out


def _timed(call: Any, questions: list[str]) -> list[float]:
    times = []
    for q in questions:
        started = time.perf_counter()
        call(q)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="completions per round and path")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--answers", type=int, default=40, help="offline-model answers to time")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.home, args.upstream)
        return 0

    results: dict[str, Any] = {"gateway": bench_gateway(args.requests, args.concurrency, args.rounds)}
    table = Table("round", "path", "in flight", "completions/s", "p50 ms", "p99 ms", title="Chat completions")
    for r in results["gateway"]:
        if "added_ms" in r:
            continue
        table.add_row(
            str(r["round"]),
            r["path"],
            str(r["concurrency"]),
            f"{r['per_s']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
        )
    console.print(table)
    added = results["gateway"][-1]["added_ms"]
    console.print(f"one request, sequential: the gateway adds {added:.2f} ms (median of paired differences)")

    results["offline"] = bench_offline(args.answers)
    table = Table("path", "questions", "p50 ms", "p95 ms", title="Offline model (in process, docs/knowledge)")
    for r in results["offline"]:
        table.add_row(r["path"], str(r["n"]), f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}")
    console.print(table)
    console.print(f'questions answered "I don\'t know": {results["offline"][1]["dont_know"]}')
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
