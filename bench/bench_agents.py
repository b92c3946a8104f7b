"""Agent answer latency with the offline model: p50/p95 per agent over the golden set's questions.

    python bench/bench_agents.py [--rounds 2] [--world DIR] [--json out.json]

Runs the golden set's support and ops-copilot questions (``tests/golden/agents.yaml``) against the
evaluation world (built once into ``--world``, default a folder under the system temp directory,
reused while its recipe is unchanged), ``--rounds`` times after one warm-up round, and measures
each whole answer: scope checks, retrieval, every model call of the platform's gateway (built-in
offline model), every tool call with its policy decision and audit record, the trace.

Baselines measured in the same run over the same questions:

- **retrieval**: one knowledge-base search (hybrid, k=5) — the floor of any cited answer;
- **one model call**: a single ``chat.completions`` of the gateway's offline model with the
  agent's tools offered (what a plain tool-calling request costs).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shopops.agents.evaluation import _all_orders, default_golden_path, fill, load_golden, pick_orders
from shopops.agents.evalworld import build_world
from shopops.agents.model import percentile
from shopops.agents.tools import TOOLS
from shopops.agents.wiring import open_agents
from shopops.bootstrap import build_platform
from shopops.core.logging import configure_logging
from shopops.core.settings import Settings
from shopops.llm.model import parse_chat_request

console = Console()


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p95_ms": round(percentile(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--world", type=Path, default=Path(tempfile.gettempdir()) / "shopops-bench-agents-world"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_logging("WARNING")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    golden = load_golden(default_golden_path())
    home = Path(tempfile.mkdtemp(prefix="shopops-bench-agents-"))
    from shopops.rag.service import default_knowledge_dir

    started = time.perf_counter()
    world = build_world(Settings(home=home), golden.world, default_knowledge_dir(), args.world)
    console.print(f"evaluation world ready in {time.perf_counter() - started:.1f} s ({world.home})")
    platform = build_platform(world.settings)
    service = open_agents(platform)
    orders = service.toolbox.orders
    assert orders is not None
    all_orders = sorted(_all_orders(orders), key=lambda r: str(r["order_id"]))
    questions: list[tuple[str, str, str | None]] = []
    for case in golden.cases:
        if case.question is None:
            continue
        fixtures = pick_orders(case.pick, orders, all_orders)
        customer = fill(case.customer, fixtures) if case.customer else None
        if case.agent == "support" and customer is None:
            customer = next(iter(fixtures.values()))["customer_id"]
        questions.append((case.agent, fill(case.question, fixtures), customer))

    def timed_rounds(rounds: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {
            "agent:support": [],
            "agent:ops-copilot": [],
            "retrieval": [],
            "one model call": [],
        }
        for _ in range(rounds):
            for agent, question, customer in questions:
                t = time.perf_counter()
                service.ask(agent, question, customer_id=customer)
                out[f"agent:{agent}"].append(time.perf_counter() - t)
                t = time.perf_counter()
                platform.rag.search(question, 5)
                out["retrieval"].append(time.perf_counter() - t)
                tools = [TOOLS[name].openai_schema() for name in service.runtimes[agent].definition.tools]
                request = parse_chat_request(
                    {
                        "model": "shopops-offline",
                        "messages": [{"role": "user", "content": question}],
                        "tools": tools,
                    }
                )
                t = time.perf_counter()
                platform.llm.chat_sync(request)
                out["one model call"].append(time.perf_counter() - t)
        return out

    timed_rounds(1)  # warm-up: the embedder, the order book, the caches
    measured = timed_rounds(args.rounds)
    service.close()
    platform.close()

    both = measured["agent:support"] + measured["agent:ops-copilot"]
    rows = {"agent answer (all)": _stats(both), **{k: _stats(v) for k, v in measured.items()}}
    table = Table(
        title=f"agent answers with the offline model · {len(questions)} questions x {args.rounds} rounds"
    )
    for column in ("what", "n", "p50 ms", "p95 ms", "max ms"):
        table.add_column(column, justify="right" if column != "what" else "left")
    for name, s in rows.items():
        table.add_row(name, str(s["n"]), f"{s['p50_ms']:.1f}", f"{s['p95_ms']:.1f}", f"{s['max_ms']:.1f}")
    console.print(table)
    if args.json is not None:
        result: dict[str, Any] = {"questions": len(questions), "rounds": args.rounds, "results": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
