"""`shopops rag …`: ingest documents into the knowledge base, search it, see what it holds, score it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopops.cli.common import console, err_console, handle_errors

if TYPE_CHECKING:
    from shopops.rag.service import RagService

app = typer.Typer(
    help="The knowledge base: policies and runbooks, hybrid (MiniLM + BM25) search with citations.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


@contextmanager
def _service() -> Iterator[RagService]:
    from shopops.bootstrap import build_rag
    from shopops.cli.context import cli_settings

    service = build_rag(cli_settings())
    try:
        yield service
    finally:
        service.close()


@app.command()
@handle_errors
def ingest(
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder or file to ingest (default: rag.knowledge_dir, else docs/knowledge)"),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Empty the collection and embed everything")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest Markdown, HTML and text files: only new or changed chunks are embedded; chunks of
    changed or deleted files are removed. Exit code 1 if a file could not be read or parsed."""
    from shopops.cli.context import cli_settings
    from shopops.rag.service import default_knowledge_dir

    settings = cli_settings()
    target = path or settings.rag.knowledge_dir or default_knowledge_dir()
    with _service() as service, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
        TimeElapsedColumn(), console=err_console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"embed {target}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        report = service.ingest(target, progress=advance, rebuild=rebuild)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        table = Table(title=f"ingested {report.path}" + (" (rebuilt)" if report.rebuilt else ""))
        for column in ("files", "changed files", "removed files", "added", "changed", "removed", "unchanged",
                       "seconds", "chunks/s"):  # fmt: skip
            table.add_column(column, justify="right")
        table.add_row(
            f"{report.files_seen:,}",
            f"{report.files_changed:,}",
            f"{report.files_removed:,}",
            f"{report.added:,}",
            f"{report.changed:,}",
            f"{report.removed:,}",
            f"{report.unchanged:,}",
            f"{report.seconds:.1f}",
            f"{report.chunks_per_s:.1f}",
        )
        console.print(table)
        for source, reason in report.errors.items():
            err_console.print(f"[bold red]not ingested:[/] {source}: {reason}", highlight=False)
    if report.errors:
        raise typer.Exit(1)


@app.command()
@handle_errors
def search(
    question: Annotated[str, typer.Argument(help="The question, in English or Vietnamese")],
    k: Annotated[int, typer.Option("-k", "--k", help="Passages to return (1-50)")] = 5,
    lang: Annotated[str | None, typer.Option(help="Only passages in this language (en, vi)")] = None,
    audience: Annotated[str | None, typer.Option(help="Only passages for: customer or internal")] = None,
    mode: Annotated[str, typer.Option(help="hybrid (default), dense or sparse")] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """The passages that best answer QUESTION, with their source file and heading path."""
    with _service() as service:
        passages = service.search(question, k, lang=lang, audience=audience, mode=mode)
        empty = not passages and service.stats().points == 0
    if as_json:
        console.print_json(json.dumps([p.to_dict() for p in passages]))
        return
    if empty:
        err_console.print("[yellow]the knowledge base is empty:[/] run `shopops rag ingest` first")
        return
    table = Table(title=f"{len(passages)} passages for {question!r}", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source")
    table.add_column("heading path")
    table.add_column("lang")
    table.add_column("text")
    for rank, p in enumerate(passages, start=1):
        snippet = " ".join(p.text.split())
        table.add_row(
            str(rank),
            f"{p.score:.3f}",
            p.source,
            " > ".join(p.heading_path),
            p.lang,
            snippet if len(snippet) <= 160 else snippet[:157] + "...",
        )
    console.print(table)


@app.command()
@handle_errors
def stats(as_json: JsonOpt = False) -> None:
    """What the knowledge base holds: points, files, chunks by language and audience, last ingestion."""
    with _service() as service:
        info = service.stats()
    if as_json:
        console.print_json(json.dumps(info.to_dict()))
        return
    table = Table(title=f"knowledge base {info.collection} at {info.store}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("points in the store", f"{info.points:,}")
    table.add_row("files", f"{info.files:,}")
    table.add_row("chunks", f"{info.chunks:,}")
    table.add_row("by language", ", ".join(f"{k}: {v:,}" for k, v in info.by_lang.items()) or "-")
    table.add_row("by audience", ", ".join(f"{k}: {v:,}" for k, v in info.by_audience.items()) or "-")
    table.add_row("embedding model", f"{info.model} ({info.dimensions} dimensions)")
    last = info.last_ingest
    if last:
        table.add_row(
            "last ingestion",
            f"{last['path']}: +{last['added']} added, {last['changed']} changed, {last['removed']} removed, "
            f"{last['unchanged']} unchanged in {last['seconds']} s",
        )
    console.print(table)


@app.command("eval")
@handle_errors
def evaluate_golden(
    golden: Annotated[
        Path | None, typer.Option(help="Golden set YAML (default: tests/golden/rag.yaml of the checkout)")
    ] = None,
    mode: Annotated[str, typer.Option(help="hybrid (default), dense or sparse")] = "hybrid",
    min_hit: Annotated[
        float, typer.Option(min=0, max=1, help="Exit 1 when hit@k is below this (for CI)")
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Score retrieval on the golden set: hit@k and MRR, overall and per language, and the misses."""
    from shopops.rag.evaluation import default_golden_path, evaluate, load_golden

    k, questions = load_golden(golden or default_golden_path())
    with _service() as service:
        report = evaluate(service, questions, k=k, mode=mode)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        table = Table(title=f"{report.questions} questions, {mode}, k={k}")
        for column in ("language", "questions", f"hit@{k}", "MRR"):
            table.add_column(column, justify="right" if column != "language" else "left")
        for lang, row in report.by_lang.items():
            table.add_row(lang, str(int(row["questions"])), f"{row['hit_at_k']:.3f}", f"{row['mrr']:.3f}")
        table.add_row(
            "all", str(report.questions), f"{report.hit_at_k:.3f}", f"{report.mrr:.3f}", style="bold"
        )
        console.print(table)
        console.print(f"search latency p50 {report.latency_p50_ms} ms, p95 {report.latency_p95_ms} ms")
        for miss in report.misses:
            console.print(
                f"[red]miss[/] {miss.id}: {miss.question!r} got {', '.join(miss.retrieved) or 'nothing'}"
            )
    if report.hit_at_k < min_hit:
        raise typer.Exit(1)
