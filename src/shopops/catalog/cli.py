"""`shopops catalog …`: register the platform's datasets, look them up, follow their lineage.

``shopops catalog sync`` registers the topics of the event log, their row schemas, the lake's
Iceberg tables and the data contracts; ``list``/``show`` read the catalog; ``lineage DATASET``
draws what feeds a dataset and what it feeds as a tree; ``runs`` lists job runs; ``flush`` sends
queued OpenLineage events.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from shopops.catalog.model import Dataset, LineageNode, Sensitivity, parse_kind
from shopops.cli.common import console, err_console, handle_errors
from shopops.cli.context import open_platform

if TYPE_CHECKING:
    from shopops.bootstrap import Platform
    from shopops.catalog.model import Run
    from shopops.catalog.service import CatalogService, Direction, LineageView

app = typer.Typer(
    help="The data catalog: every dataset with owner, SLA, retention, residency and column "
    "sensitivity; lineage from every job run (OpenLineage).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
_SENSITIVITY_STYLE = {
    Sensitivity.PUBLIC: "green",
    Sensitivity.INTERNAL: "",
    Sensitivity.CONFIDENTIAL: "yellow",
    Sensitivity.PII: "bold magenta",
    Sensitivity.SECRET: "bold red",
}


def _json(value: object) -> None:
    console.print_json(orjson.dumps(value).decode())


@contextmanager
def _catalog() -> Iterator[tuple[Platform, CatalogService]]:
    with open_platform() as platform:
        yield platform, platform.catalog


def _when(ms: int | None) -> str:
    return "—" if not ms else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
@handle_errors
def sync(as_json: JsonOpt = False) -> None:
    """Register the event log's topics, their row schemas, the lake's tables and the contracts."""
    from shopops.catalog.setup import sync_platform

    with (
        _catalog() as (platform, catalog),
        Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=err_console, transient=True,
        ) as progress,
    ):  # fmt: skip
        task = progress.add_task("catalog sync", total=None)

        def step(name: str, done: int, total: int) -> None:
            progress.update(task, description=f"catalog sync: {name}", completed=done, total=total)

        report = sync_platform(platform, step)
        flushed = catalog.flush(force=True)
    if as_json:
        _json({**report.to_dict(), "openlineage": flushed.to_dict()})
        return
    counts = report.counts
    console.print(
        f"registered {counts.get('datasets', 0):,} datasets in {report.seconds:.2f} s: "
        f"{report.registered.created} new, {report.registered.updated} changed, "
        f"{report.registered.unchanged} unchanged "
        f"({counts.get('topics', 0)} topics, {counts.get('subjects', 0)} row schemas, "
        f"{counts.get('lake_tables', 0)} lake tables; {report.contracts} contracts)"
    )
    for problem in report.contract_problems:
        err_console.print(f"[yellow]contract:[/] {problem}", highlight=False)
    for problem in report.problems:
        err_console.print(f"[red]problem:[/] {problem}", highlight=False)


@app.command("list")
@handle_errors
def list_datasets(
    kind: Annotated[
        str | None, typer.Option(help="topic, bronze, silver, quarantine, table, report...")
    ] = None,
    domain: Annotated[str | None, typer.Option(help="e.g. shop, payments, finance, reconciliation")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Registered datasets with owner, residency, SLA, retention and personal-data columns."""
    chosen = parse_kind(kind) if kind else None
    with _catalog() as (_, catalog):
        rows = catalog.datasets(chosen, domain)
    if as_json:
        from shopops.catalog.api import summary

        _json([summary(d) for d in rows])
        return
    title = f"{len(rows)} datasets" + (f" of kind {chosen.value}" if chosen else "")
    table = Table(title=title + (f" in domain {domain}" if domain else ""))
    for column in ("name", "kind", "domain", "owner", "residency", "SLA", "retention", "personal data"):
        table.add_column(column)
    for d in rows:
        personal = ", ".join(c.name for c in d.personal_columns)
        table.add_row(
            d.name,
            d.kind.value,
            d.domain,
            d.owner,
            d.residency or "—",
            d.sla or "—",
            d.retention,
            personal or "—",
        )
    console.print(table)
    if not rows:
        err_console.print("nothing registered: `shopops catalog sync` registers the platform's datasets")


@app.command()
@handle_errors
def show(
    dataset: Annotated[str, typer.Argument(help="Dataset name, e.g. vn.shop.orders")],
    as_json: JsonOpt = False,
) -> None:
    """One dataset: owner, SLA, retention, residency, contract and schema links, columns and their
    sensitivity, the jobs writing and reading it, its latest runs."""
    with _catalog() as (_, catalog):
        ds = catalog.dataset(dataset)
        view = catalog.lineage(dataset, "both", 1)
        runs = catalog.runs(dataset=dataset, limit=5)
    writers = [j.name for j in view.upstream.children] if view.upstream else []
    readers = [j.name for j in view.downstream.children] if view.downstream else []
    if as_json:
        _json({**ds.to_dict(), "writers": writers, "readers": readers, "runs": [r.to_dict() for r in runs]})
        return
    _print_dataset(ds, writers, readers, runs)


def _print_dataset(ds: Dataset, writers: list[str], readers: list[str], runs: list[Run]) -> None:
    facts = Table(show_header=False, title=f"[bold]{ds.name}[/]", title_justify="left", box=None)
    facts.add_column(style="bold")
    facts.add_column()

    def fact(label: str, value: str | None, field: str | None = None) -> None:
        default = " [dim](default)[/]" if field and field in ds.defaulted else ""
        facts.add_row(label, f"{value or '—'}{default}")

    fact("kind", ds.kind.value)
    fact("namespace", ds.namespace)
    fact("owner", ds.owner, "owner")
    fact("domain", ds.domain)
    fact("SLA", ds.sla or "none", "sla")
    fact("retention", ds.retention, "retention")
    fact("residency", ds.residency or "not region-bound")
    fact("contract", ds.contract)
    fact("schema subject", ds.schema_subject)
    for key, value in sorted(ds.links.items()):
        fact(key, value)
    for key, value in sorted(ds.properties.items()):
        fact(key.replace("_", " "), str(value))
    if ds.description:
        fact("description", ds.description)
    fact("written by", ", ".join(writers))
    fact("read by", ", ".join(readers))
    fact("registered", f"{_when(ds.created_at_ms)} (updated {_when(ds.updated_at_ms)} by {ds.registered_by})")
    console.print(facts)
    if ds.columns:
        columns = Table(title=f"{len(ds.columns)} columns", title_justify="left")
        for header in ("column", "type", "sensitivity", "masked", "said by"):
            columns.add_column(header)
        for c in ds.columns:
            style = _SENSITIVITY_STYLE[c.sensitivity]
            columns.add_row(
                c.name,
                c.type or "—",
                Text(c.sensitivity.value, style=style),
                "yes" if c.masked else ("[red]no[/]" if c.sensitivity.personal else ""),
                ", ".join(c.sources) or "—",
            )
        console.print(columns)
        unmasked = [c.name for c in ds.columns if c.sensitivity.personal and not c.masked]
        if unmasked:
            err_console.print(
                f"[yellow]personal data the governance plane does not mask here:[/] {', '.join(unmasked)} "
                "(restrict who reads this dataset, or tag the columns in policies/data.toml)",
                highlight=False,
            )
    else:
        console.print("[dim]no columns known: register the row schema or a contract[/]")
    if runs:
        _print_runs(runs, f"latest {len(runs)} runs")


@app.command()
@handle_errors
def lineage(
    dataset: Annotated[str, typer.Argument(help="Dataset name, e.g. vn.shop.orders")],
    direction: Annotated[
        bool | None,
        typer.Option(
            "--upstream/--downstream", help="Only what feeds it / only what it feeds (default: both)"
        ),
    ] = None,
    depth: Annotated[int, typer.Option(help="Levels of datasets shown each way (1-10)")] = 3,
    columns: Annotated[bool, typer.Option("--columns", help="Also list the column lineage")] = False,
    as_json: JsonOpt = False,
) -> None:
    """What feeds DATASET and what it feeds, as trees of datasets and the jobs between them."""
    way: Direction = "both" if direction is None else "upstream" if direction else "downstream"
    with _catalog() as (_, catalog):
        view = catalog.lineage(dataset, way, depth)
        kinds = {d.name: d.kind.value for d in catalog.datasets()}
    if as_json:
        _json(view.to_dict())
        return
    _print_lineage(view, kinds, columns)


def _label(node: LineageNode, kinds: dict[str, str]) -> Text:
    if node.kind == "job":
        return Text.assemble(("job ", "dim"), (node.name, "cyan"))
    label = Text.assemble((node.name, "bold"), (f"  {kinds.get(node.name, 'unregistered')}", "dim"))
    if node.seen:
        label.append("  (repeated)", "dim")
    if node.truncated:
        label.append("  … (more: raise --depth)", "yellow")
    return label


def _tree(node: LineageNode, kinds: dict[str, str], title: str) -> Tree:
    tree = Tree(Text.assemble((f"{title}: ", "dim"), _label(node, kinds)))

    def add(parent: Tree, children: list[LineageNode]) -> None:
        for child in children:
            add(parent.add(_label(child, kinds)), child.children)

    add(tree, node.children)
    return tree


def _print_lineage(view: LineageView, kinds: dict[str, str], columns: bool) -> None:
    for title, node in (("upstream", view.upstream), ("downstream", view.downstream)):
        if node is None:
            continue
        console.print(_tree(node, kinds, title))
        if not node.children:
            console.print(f"  [dim]no recorded job {'writes' if title == 'upstream' else 'reads'} it[/]")
    if columns:
        if not view.columns:
            console.print("[dim]no column lineage recorded[/]")
            return
        table = Table(title="column lineage")
        for header in ("from", "to", "how"):
            table.add_column(header)
        for e in view.columns:
            table.add_row(
                f"{e.in_dataset}.{e.in_column}", f"{e.out_dataset}.{e.out_column}", e.transformation
            )
        console.print(table)


@app.command()
@handle_errors
def runs(
    job: Annotated[str | None, typer.Option(help="Only runs of this job")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only runs reading or writing this dataset")] = None,
    limit: Annotated[int, typer.Option(help="How many (1-1000)")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The latest job runs with what they read and wrote."""
    with _catalog() as (_, catalog):
        found = catalog.runs(job, dataset, limit)
    if as_json:
        _json([r.to_dict() for r in found])
        return
    _print_runs(found, f"{len(found)} runs")


def _print_runs(found: list[Run], title: str) -> None:
    table = Table(title=title)
    for header in ("started", "job", "state", "seconds", "inputs", "outputs", "run id"):
        table.add_column(header)
    for r in found:
        style = {"FAIL": "red", "ABORT": "red", "COMPLETE": "green"}.get(r.state.value, "yellow")
        table.add_row(
            _when(r.started_at_ms),
            r.job,
            Text(r.state.value, style=style),
            "—" if r.seconds is None else f"{r.seconds:.2f}",
            str(len(r.inputs)),
            str(len(r.outputs)),
            r.run_id,
        )
    console.print(table)


@app.command()
@handle_errors
def flush(as_json: JsonOpt = False) -> None:
    """Send the queued OpenLineage events now (exit 69 if the transport refuses them)."""
    from shopops.core.errors import BackendUnavailableError

    with _catalog() as (_, catalog):
        report = catalog.flush(force=True)
        where = catalog.transport.describe()
    if as_json:
        _json(report.to_dict())
    else:
        console.print(f"sent {report.sent} OpenLineage events to {where}; {report.pending} still queued")
    if report.error:
        raise BackendUnavailableError(
            f"OpenLineage events not sent: {report.error}",
            hint="they stay queued; fix the transport and retry",
        )
