"""`shopops agent …`: ask an agent, triage alerts, read reports and traces, evaluate the agents.

``shopops agent ask support "Where is my order vn-o-000000123?" --customer vn-c-0000001`` runs the
agent in this process over the platform's data; ``--url`` asks a running platform instead (whose
knowledge base a second process cannot open in Qdrant local mode). ``shopops agent eval`` runs the
golden set against a simulated world and exits 1 when a metric regresses beyond the margin.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopops.cli.common import console, err_console, handle_errors
from shopops.cli.context import cli_settings, open_platform
from shopops.core.errors import BackendUnavailableError, InvalidInputError, NotFoundError, ShopopsError

if TYPE_CHECKING:
    from shopops.agents.evaluation import EvalReport
    from shopops.agents.service import AgentsService

app = typer.Typer(
    help="The support agent, the ops copilot and the triage bot; their evaluation.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Ask a running platform (e.g. http://127.0.0.1:8000) instead of this process"),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="SHOPOPS_API_KEY", help="API key for --url (default: $SHOPOPS_HOME/admin.key)"
    ),
]


@contextmanager
def _agents() -> Iterator[AgentsService]:
    from shopops.bootstrap import build_agents

    with open_platform() as platform:
        service = build_agents(platform)
        try:
            yield service
        finally:
            service.close()


def _remote(url: str, key: str | None, method: str, path: str, body: Any = None) -> Any:
    """Call a running platform's API; errors come back as the platform's own messages."""
    token = key
    if token is None:
        admin = cli_settings().home / "admin.key"
        token = admin.read_text().strip() if admin.is_file() else None
    if not token:
        raise InvalidInputError(
            "--url needs an API key", hint="pass --api-key or set SHOPOPS_API_KEY (`shopops auth create-key`)"
        )
    try:
        response = httpx.request(
            method,
            url.rstrip("/") + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
    except httpx.HTTPError as exc:
        raise BackendUnavailableError(
            f"{url} cannot be reached: {exc}", hint="is `shopops up` running there?"
        ) from exc
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"message": response.text[:300]}
        error = ShopopsError(str(problem.get("message", problem)), hint=problem.get("hint"))
        error.exit_code = {401: 77, 403: 77, 404: 3, 422: 2, 409: 4}.get(response.status_code, 1)
        raise error
    return response.json()


def print_answer(answer: dict[str, Any]) -> None:
    """An answer as people read it: the text, then its sources, its tool calls and where to trace it."""
    outcome = answer.get("outcome", "")
    colour = {"answered": "green", "refused": "yellow", "unknown": "yellow"}.get(outcome, "white")
    console.print(f"[bold]{answer['agent']}[/] [{colour}]{outcome}[/]  ({answer.get('seconds', 0):.2f} s)")
    console.print(escape(answer["answer"]), highlight=False)
    if answer.get("tool_calls"):
        table = Table(title="tool calls", title_justify="left")
        for column in ("tool", "arguments", "status", "region", "reasons"):
            table.add_column(column)
        for call in answer["tool_calls"]:
            table.add_row(
                call["name"],
                escape(orjson.dumps(call["arguments"]).decode()),
                call["status"],
                call["region"] or "-",
                ", ".join(call["reasons"]) or "-",
            )
        console.print(table)
    backend = answer.get("backend") or "-"
    console.print(
        f"trace {answer['trace_id']} · model {answer.get('model') or '-'} · backend {backend}",
        highlight=False,
    )


@app.command("list")
@handle_errors
def list_agents(as_json: JsonOpt = False) -> None:
    """The agents and the tools each may call."""
    from shopops.agents.definitions import AGENTS

    rows: list[dict[str, Any]] = [
        {
            "name": d.name,
            "purpose": d.purpose,
            "tools": list(d.tools),
            "acts_for_customer": d.acts_for_customer,
        }
        for d in AGENTS.values()
    ]
    if as_json:
        console.print_json(orjson.dumps(rows).decode())
        return
    table = Table()
    for column in ("agent", "tools", "purpose"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], "\n".join(f"{t}" for t in row["tools"]), row["purpose"])
    console.print(table)


@app.command("ask")
@handle_errors
def ask(
    name: Annotated[str, typer.Argument(help="support, ops-copilot or triage")],
    question: Annotated[str, typer.Argument(help="The question")],
    customer: Annotated[
        str | None,
        typer.Option("--customer", "-c", help="The customer the support agent acts for, e.g. vn-c-0000001"),
    ] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask an agent a question; prints the answer, its sources, its tool calls and its trace id."""
    if url:
        answer = _remote(
            url, api_key, "POST", f"/v1/agents/{name}/ask", {"question": question, "customer_id": customer}
        )
    else:
        with _agents() as service:
            answer = service.ask(name, question, customer_id=customer).to_dict()
    if as_json:
        console.print_json(orjson.dumps(answer).decode())
    else:
        print_answer(answer)


@app.command("triage")
@handle_errors
def triage(
    source: Annotated[
        str, typer.Argument(help="File with Alertmanager's webhook JSON (or one alert); - for stdin")
    ],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Triage alerts: each firing alert gets a report (summary, evidence, runbook steps) on the
    triage topic and in the audit trail, once however often it is given."""
    raw = sys.stdin.read() if source == "-" else _read(Path(source))
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{source} is not JSON: {exc}", hint="give Alertmanager's webhook body"
        ) from None
    if url:
        reports = _remote(url, api_key, "POST", "/v1/agents/triage/alerts", payload)["reports"]
    else:
        with _agents() as service:
            reports = [r.to_dict() for r in service.triage(payload)]
    if as_json:
        console.print_json(orjson.dumps(reports).decode())
        return
    for report in reports:
        _print_report(report)


def _read(path: Path) -> str:
    if not path.is_file():
        raise NotFoundError(f"no file {path}", hint="give the path of the alert JSON, or - for stdin")
    return path.read_text()


def _print_report(report: dict[str, Any]) -> None:
    alert = report["alert"]
    console.print(
        f"[bold]{alert['name']}[/] ({report['status']}) triage {report['triage_id']}", highlight=False
    )
    console.print(escape(report["summary"]), highlight=False)
    if report["evidence"]:
        table = Table(title="evidence", title_justify="left")
        table.add_column("tool")
        table.add_column("status")
        table.add_column("finding")
        for item in report["evidence"]:
            table.add_row(item["tool"], item["status"], escape(item["finding"][:300]))
        console.print(table)
    for n, step in enumerate(report["runbook_steps"], 1):
        console.print(f"  {n}. {escape(step)}", highlight=False)
    if report["sources"]:
        console.print(f"runbooks: {', '.join(report['sources'])}", highlight=False)


@app.command("reports")
@handle_errors
def reports(
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 10,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The latest triage reports on the triage topic."""
    if not 1 <= limit <= 500:
        raise InvalidInputError(f"--limit must be between 1 and 500 (got {limit})")
    if url:
        found = _remote(url, api_key, "GET", f"/v1/agents/triage/reports?limit={limit}")
    else:
        with _agents() as service:
            found = service.triage_reports(limit)
    if as_json:
        console.print_json(orjson.dumps(found).decode())
        return
    if not found:
        console.print("no triage reports yet")
    for report in found:
        _print_report(report)


@app.command("trace")
@handle_errors
def trace(
    trace_id: Annotated[str, typer.Argument(help="The trace id an answer printed")],
    as_json: JsonOpt = False,
) -> None:
    """The spans of one agent run (file exporter): retrieval, each model call, each tool call."""
    from shopops.agents.tracing import AgentTracing

    settings = cli_settings()
    tracing = AgentTracing(settings.agents.tracing, settings.home)
    spans = tracing.spans(trace_id.strip().lower())
    tracing.shutdown()
    if not spans:
        raise NotFoundError(
            f"no spans of trace {trace_id}",
            hint=(
                "traces are read from the file exporter (agents.tracing.exporter = file) of this data "
                "directory"
            ),
        )
    if as_json:
        console.print_json(orjson.dumps(spans).decode())
        return
    start = min(s["start_ns"] for s in spans)
    table = Table()
    for column in ("span", "start ms", "ms", "status", "attributes"):
        table.add_column(column)
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        attrs = ", ".join(f"{k}={v}" for k, v in span["attributes"].items() if k != "agent.question")
        table.add_row(
            span["name"],
            f"{(span['start_ns'] - start) / 1e6:.1f}",
            f"{(span['end_ns'] - span['start_ns']) / 1e6:.1f}",
            span["status"],
            escape(attrs[:200]),
        )
    console.print(table)


@app.command("eval")
@handle_errors
def evaluate(
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="Only these agents (repeat the option)")
    ] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log the metrics to MLflow")] = True,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Baseline metrics (default: the committed baseline)")
    ] = None,
    write_baseline: Annotated[
        Path | None, typer.Option("--write-baseline", help="Write this run's metrics as a baseline file")
    ] = None,
    golden: Annotated[
        Path | None, typer.Option("--golden", help="Golden set (default: tests/golden/agents.yaml)")
    ] = None,
    world: Annotated[
        Path | None,
        typer.Option(
            "--world", help="Folder of the evaluation world (default: $SHOPOPS_HOME/agents/eval-world)"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the golden set against the configured model: retrieval hit@5 and MRR, groundedness,
    tool-call accuracy, refusal correctness, latency. Exit 1 when a metric regresses beyond
    agents.eval.margin against the baseline, or misses a required level."""
    from shopops.agents.evaluation import (
        default_baseline_path,
        default_golden_path,
        log_to_mlflow,
        mlflow_target,
        regressions_of,
    )
    from shopops.agents.evaluation import evaluate as run_evaluation
    from shopops.agents.evaluation import write_baseline as save_baseline

    settings = cli_settings()
    config = settings.agents.eval
    golden_path = golden or config.golden
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("building the evaluation world", total=None)

        def step(message: str) -> None:
            progress.update(task, description=message)

        def advance(done: int, total: int, case: str) -> None:
            progress.update(
                task, description=f"asking {case}" if case else "scored", completed=done, total=total
            )

        report = run_evaluation(
            settings, golden_path=golden_path, agents=agent, world_home=world, step=step, progress=advance
        )
    baseline_path = baseline or config.baseline or default_baseline_path()
    first_baseline = write_baseline is not None and not baseline_path.is_file()
    if first_baseline:
        regressions = []  # nothing to compare with yet
    else:
        regressions = regressions_of(report, baseline_path, config.margin, config.latency_margin, agent)
    failures = report.requirement_failures()
    run_id = None
    if mlflow:
        uri, artifacts = mlflow_target(settings)
        run_id = log_to_mlflow(
            report, uri, config.experiment, golden_path or default_golden_path(), artifacts
        )
    if write_baseline is not None:
        save_baseline(write_baseline, report)
    if as_json:
        body = {
            **report.to_dict(),
            "regressions": [str(r) for r in regressions],
            "requirement_failures": failures,
            "baseline": str(baseline_path),
            "mlflow_run_id": run_id,
        }
        console.print_json(orjson.dumps(body).decode())
    else:
        compared = write_baseline if first_baseline and write_baseline is not None else baseline_path
        _print_eval(report, regressions, failures, compared, run_id)
    if regressions or failures:
        raise typer.Exit(1)


def _print_eval(
    report: EvalReport, regressions: list[Any], failures: list[str], baseline: Path, run_id: str | None
) -> None:
    from shopops.agents.evaluation import LATENCY_METRICS, QUALITY_METRICS

    table = Table(title=f"agent evaluation · model {report.model or '-'} · backend {report.backend or '-'}")
    table.add_column("metric")
    table.add_column("all", justify="right")
    agents = list(report.by_agent)
    for agent in agents:
        table.add_column(agent, justify="right")
    for name in (*QUALITY_METRICS, *LATENCY_METRICS, "cases"):
        values = [report.metrics.get(name), *(report.by_agent[a].get(name) for a in agents)]
        table.add_row(
            name, *("-" if v is None else f"{v:.3f}" if name != "cases" else f"{v:.0f}" for v in values)
        )
    console.print(table)
    failed = [r for r in report.results if r.problems]
    if failed:
        cases = Table(title="cases with problems", title_justify="left")
        cases.add_column("case")
        cases.add_column("problems")
        for r in failed:
            cases.add_row(r.case_id, escape("; ".join(r.problems))[:300])
        console.print(cases)
    for regression in regressions:
        err_console.print(f"[bold red]regression:[/] {regression}", highlight=False)
    for failure in failures:
        err_console.print(f"[bold red]below the requirement:[/] {failure}", highlight=False)
    verdict = "[green]no regression[/]" if not regressions and not failures else "[red]FAILED[/]"
    console.print(
        f"{verdict} against {baseline}" + (f" · MLflow run {run_id}" if run_id else ""), highlight=False
    )
