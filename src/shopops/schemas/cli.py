"""`shopops schemas …`: serve the registry, list, register, check, diff, watch and replay.

Every command talks to the registry the settings name (``schemas.registry``): the built-in one, or
an external Confluent-API registry — the commands work the same against both.
"""

from __future__ import annotations

import difflib
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.table import Table
from rich.text import Text

from shopops.cli.common import console, err_console, fmt_count, handle_errors
from shopops.cli.context import open_platform
from shopops.core.errors import InvalidInputError

if TYPE_CHECKING:
    # The registry's libraries load only when a command needs them (every `shopops` start imports this).
    from shopops.bootstrap import Platform
    from shopops.schemas.client import SchemaSpec
    from shopops.schemas.formats import Change

app = typer.Typer(
    help="Schema registry (Confluent API) and the drift watch over the CDC streams.", no_args_is_help=True
)


@app.command("serve")
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (Confluent's registry uses 8081)")] = 8081,
) -> None:
    """Serve the built-in registry alone: the Confluent Schema Registry API at the root."""
    import uvicorn

    from shopops.cli.context import cli_settings
    from shopops.core.logging import get_logger
    from shopops.schemas.server import create_registry_app, open_registry

    settings = cli_settings()
    # Open the store before binding the port, so a bad store configuration fails at once.
    registry = open_registry(settings)
    governance = None
    try:
        from shopops.bootstrap import build_governance
        from shopops.governance.cli import announce_first_admin

        governance = build_governance(settings)
        announce_first_admin(
            governance,
            settings.home,
            demo=settings.profile == "demo",
            region=settings.governance.admin_region or settings.simulator.regions[0],
            url=f"http://{host}:{port}",
            try_path="/subjects",
            portal=False,
        )
        app_ = create_registry_app(settings, registry, governance)
        get_logger("shopops").info(
            "schema registry serving",
            url=f"http://{host}:{port}",
            store=settings.schemas.store.type,
            home=str(settings.home),
        )
        console.print(f"schema registry at http://{host}:{port} (store: {settings.schemas.store.type})")
        uvicorn.run(app_, host=host, port=port, log_config=None, access_log=False)
    finally:
        if governance is not None:
            governance.close()
        registry.close()


def _version(text: str | None) -> int | None:
    from shopops.schemas.model import parse_version

    return None if text is None else parse_version(text)


def _read_schema(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"schema file {path} does not exist", hint="give a path, or - for stdin")
    return file.read_text()


def _spec(path: str, schema_type: str, references: list[str]) -> SchemaSpec:
    from shopops.schemas.client import SchemaSpec
    from shopops.schemas.model import SchemaReference, SchemaType

    refs: list[SchemaReference] = []
    for ref in references:
        name, _, target = ref.partition("=")
        subject, _, version = target.rpartition(":")
        if not name or not subject or not version.lstrip("-").isdigit():
            raise InvalidInputError(
                f"bad reference {ref!r}", hint="write references as NAME=SUBJECT:VERSION (version -1: latest)"
            )
        refs.append(SchemaReference(name, subject, int(version)))
    return SchemaSpec(SchemaType.parse(schema_type), _read_schema(path), tuple(refs))


def _print_changes(title: str, changes: list[Change], *, only_incompatible: bool = False) -> None:
    shown = [c for c in changes if not (only_incompatible and c.compatible)]
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("", width=2)
    table.add_column("change", style="bold")
    table.add_column("path", style="cyan")
    table.add_column("in words")
    for c in shown:
        table.add_row(
            Text("✓", style="green") if c.compatible else Text("✗", style="bold red"),
            c.kind,
            c.path,
            c.description,
        )
    if not shown:
        table.add_row("", "no differences" if not only_incompatible else "none", "", "")
    console.print(table)


@app.command("list")
@handle_errors
def list_subjects(
    prefix: Annotated[str, typer.Option(help="Only subjects starting with this, e.g. 'vn.'")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List subjects with their latest version, schema id, type and compatibility level."""
    with open_platform() as platform:
        client = platform.schema_client
        rows: list[dict[str, str | int]] = []
        for subject in client.subjects(prefix):
            latest = client.version(subject, None)
            rows.append(
                {
                    "subject": subject,
                    "version": latest.version,
                    "id": latest.id,
                    "type": latest.schema.schema_type.value,
                    "compatibility": client.compatibility(subject).value,
                }
            )
        location = client.location
    if as_json:
        console.print_json(orjson.dumps(rows).decode())
        return
    table = Table(title=f"{len(rows)} subjects ({location})")
    for name, justify in (("subject", "left"), ("latest", "right"), ("id", "right"), ("type", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("compatibility")
    for r in rows:
        table.add_row(*(str(r[k]) for k in ("subject", "version", "id", "type", "compatibility")))
    console.print(table)


@app.command("register")
@handle_errors
def register(
    subject: Annotated[str, typer.Argument(help="Subject, e.g. vn.shop.orders-value")],
    schema_file: Annotated[str, typer.Argument(help="Schema file (.avsc / .json), or - for stdin")],
    schema_type: Annotated[str, typer.Option("--type", help="AVRO or JSON")] = "AVRO",
    reference: Annotated[
        list[str] | None, typer.Option("--reference", "-r", help="NAME=SUBJECT:VERSION, repeatable")
    ] = None,
) -> None:
    """Register a schema under a subject (refused with the incompatibilities if the level forbids it)."""
    from shopops.schemas.errors import IncompatibleSchemaError

    spec = _spec(schema_file, schema_type, reference or [])
    with open_platform() as platform:
        client = platform.schema_client
        try:
            registration = client.register(subject, spec)
        except IncompatibleSchemaError:
            verdict = client.check(subject, spec)
            err_console.print(f"[bold red]refused:[/] {subject} does not accept this schema", highlight=False)
            for message in verdict.messages:
                err_console.print(f"  {message}", highlight=False, soft_wrap=True)
            raise
    console.print(f"{subject}: version {registration.version}, schema id {registration.id}")


@app.command("check")
@handle_errors
def check(
    subject: Annotated[str, typer.Argument(help="Subject, e.g. vn.shop.customers-value")],
    schema_file: Annotated[
        str | None,
        typer.Argument(help="A candidate schema to test (file or -); without it: the drift status"),
    ] = None,
    schema_type: Annotated[str, typer.Option("--type", help="AVRO or JSON (with a schema file)")] = "AVRO",
    version: Annotated[
        str | None, typer.Option(help="Test against this version only (default: what the level checks)")
    ] = None,
) -> None:
    """Test a candidate schema against a subject, or show what the drift watch quarantined for it.

    With a schema file, exits 0 when compatible and 4 when not, listing every incompatibility: fit
    for a CI step before a migration ships.
    """
    from shopops.schemas.errors import IncompatibleSchemaError

    with open_platform() as platform:
        client = platform.schema_client
        level = client.compatibility(subject)
        if schema_file is not None:
            spec = _spec(schema_file, schema_type, [])
            verdict = client.check(subject, spec, _version(version))
            against = f"version {version}" if version else f"the versions {level.value} checks"
            if verdict.is_compatible:
                console.print(f"[green]compatible[/] with {subject} ({against})")
                return
            console.print(f"[bold red]incompatible[/] with {subject} ({against}, level {level.value}):")
            for message in verdict.messages:
                console.print(f"  {message}", highlight=False, soft_wrap=True)
            raise IncompatibleSchemaError(subject, verdict.messages)
        _drift_status(platform, subject, level.value)


def _drift_status(platform: Platform, subject: str, level: str) -> None:
    from shopops.schemas.drift import H_KIND, H_REASON, H_SUBJECT, topic_records

    client = platform.schema_client
    latest = client.latest(subject)
    drift = platform.settings.schemas.drift
    reasons: Counter[tuple[str, str]] = Counter()
    for q in topic_records(platform.event_log, drift.quarantine_topic):
        headers = {k: (v.decode() if v is not None else "") for k, v in q.headers}
        if headers.get(H_SUBJECT) == subject:
            reasons[(headers.get(H_KIND, ""), headers.get(H_REASON, ""))] += 1
    head = f"{subject}: " + (
        f"version {latest.version} (id {latest.id}, {latest.schema.schema_type.value})"
        if latest
        else "no version"
    )
    console.print(f"{head}, compatibility {level}")
    if not reasons:
        console.print("[green]nothing quarantined[/] for this subject")
        return
    table = Table(title=f"{sum(reasons.values()):,} records quarantined on {drift.quarantine_topic}")
    table.add_column("records", justify="right")
    table.add_column("kind")
    table.add_column("reason")
    for (kind, reason), count in reasons.most_common():
        table.add_row(fmt_count(count), kind, reason)
    console.print(table)
    console.print(
        f"next: [bold]shopops schemas diff {subject} --quarantined[/] to compare, fix the schema or "
        f"the level, then [bold]shopops schemas replay --subject {subject}[/]",
        highlight=False,
    )


def _pretty(text: str) -> list[str]:
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode().splitlines()
    except orjson.JSONDecodeError:
        return text.splitlines()


def side_by_side(left_title: str, left: str, right_title: str, right: str, context: int | None = 3) -> Table:
    """Two schemas, pretty-printed, aligned line by line: removed red, added green, changed yellow.

    Runs of unchanged lines longer than twice ``context`` are folded (``None``: show everything).
    """
    a, b = _pretty(left), _pretty(right)
    table = Table(show_lines=False, expand=False, pad_edge=False)
    table.add_column(left_title, overflow="fold")
    table.add_column(right_title, overflow="fold")
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            pairs: list[tuple[str, str] | None] = list(zip(a[i1:i2], b[j1:j2], strict=True))
            if context is not None and len(pairs) > 2 * context + 1:
                head = pairs[:context] if i1 > 0 else []
                tail = pairs[len(pairs) - context :] if i2 < len(a) else []
                folded = len(pairs) - len(head) - len(tail)
                note = Text(f"⋯ {folded} unchanged lines", style="dim italic")
                pairs = [*head, None, *tail]
            for pair in pairs:
                if pair is None:
                    table.add_row(note, note)
                else:
                    table.add_row(Text(pair[0], style="dim"), Text(pair[1], style="dim"))
            continue
        lefts, rights = a[i1:i2], b[j1:j2]
        style_l, style_r = ("yellow", "yellow") if op == "replace" else ("red", "green")
        for k in range(max(len(lefts), len(rights))):
            table.add_row(
                Text(lefts[k], style="red" if op == "delete" else style_l) if k < len(lefts) else Text(""),
                Text(rights[k], style="green" if op == "insert" else style_r)
                if k < len(rights)
                else Text(""),
            )
    return table


@app.command("diff")
@handle_errors
def diff(
    subject: Annotated[str, typer.Argument(help="Subject, e.g. vn.logistics.shipments-value")],
    old: Annotated[
        str | None, typer.Argument(help="Old version (default: the one before the latest)")
    ] = None,
    new: Annotated[str | None, typer.Argument(help="New version (default: the latest)")] = None,
    quarantined: Annotated[
        bool,
        typer.Option("--quarantined", help="Compare the latest version with the last quarantined schema"),
    ] = False,
    full: Annotated[bool, typer.Option("--full", help="Show unchanged lines too")] = False,
) -> None:
    """Show two versions side by side with every change between them, compatible or not."""
    from shopops.schemas.drift import H_SCHEMA, H_SCHEMA_TYPE, H_SUBJECT, topic_records
    from shopops.schemas.model import SchemaType, StoredSchema

    with open_platform() as platform:
        client = platform.schema_client
        level = client.compatibility(subject)
        if quarantined:
            latest = client.version(subject, _version(old))
            candidate: StoredSchema | None = None
            for q in topic_records(platform.event_log, platform.settings.schemas.drift.quarantine_topic):
                headers = {k: (v.decode() if v is not None else "") for k, v in q.headers}
                if headers.get(H_SUBJECT) == subject and headers.get(H_SCHEMA):
                    kind = SchemaType.parse(headers.get(H_SCHEMA_TYPE) or latest.schema.schema_type.value)
                    candidate = StoredSchema(0, kind, headers[H_SCHEMA])
            if candidate is None:
                raise InvalidInputError(
                    f"no quarantined record of {subject} carries a schema", hint="run without --quarantined"
                )
            parsed_old, parsed_new = client.parse(latest.schema), client.parse(candidate)
            left_title, right_title = f"v{latest.version} (registered)", "quarantined schema"
            registered = f"registered schema (v{latest.version})"
            backward = parsed_new.changes_from(
                parsed_old, reader_role="quarantined schema", writer_role=registered
            )
            forward = parsed_old.changes_from(
                parsed_new, reader_role=registered, writer_role="quarantined schema"
            )
            left_text, right_text = latest.schema.text, candidate.text
        else:
            versions = client.versions(subject)
            new_v = _version(new) or versions[-1]
            old_v = _version(old) or (versions[-2] if len(versions) > 1 else versions[-1])
            a, b, backward, forward = client.diff(subject, old_v, new_v)
            left_title, right_title = f"v{a.version} (id {a.id})", f"v{b.version} (id {b.id})"
            left_text, right_text = a.schema.text, b.schema.text
    console.print(side_by_side(left_title, left_text, right_title, right_text, None if full else 3))
    _print_changes(f"{right_title} reading data written with {left_title} (BACKWARD)", backward)
    _print_changes(f"{left_title} reading data written with {right_title} (FORWARD)", forward)
    bad_backward = any(not c.compatible for c in backward)
    bad_forward = any(not c.compatible for c in forward)
    verdicts = {
        "BACKWARD": not bad_backward,
        "FORWARD": not bad_forward,
        "FULL": not (bad_backward or bad_forward),
    }
    summary = ", ".join(f"{k} {'[green]yes[/]' if v else '[red]no[/]'}" for k, v in verdicts.items())
    console.print(f"compatible: {summary} — {subject} is at {level.value}")


@app.command("compatibility")
@handle_errors
def compatibility(
    subject: Annotated[str | None, typer.Argument(help="Subject (default: the global level)")] = None,
    set_level: Annotated[
        str | None,
        typer.Option("--set", help="NONE, BACKWARD, FORWARD, FULL, or one of them _TRANSITIVE"),
    ] = None,
) -> None:
    """Show or set the compatibility level of a subject, or the global one."""
    from shopops.schemas.model import CompatibilityLevel

    with open_platform() as platform:
        client = platform.schema_client
        if set_level is not None:
            client.set_compatibility(CompatibilityLevel.parse(set_level), subject)
        level = client.compatibility(subject)
    console.print(f"{subject or 'global'}: {level.value}")


@app.command("watch")
@handle_errors
def watch(
    once: Annotated[
        bool, typer.Option("--once/--follow", help="Check what is there now and exit, or keep going")
    ] = True,
) -> None:
    """Run the drift watch over every CDC stream (``shopops up`` runs it in the background)."""
    import time as _time

    from shopops.schemas.drift import DriftWatch

    with open_platform() as platform:
        drift_watch = DriftWatch(platform.event_log, platform.schema_client, platform.settings.schemas.drift)
        if once:
            stats = drift_watch.drain()
        else:
            drift_watch.start()
            try:
                while True:
                    _time.sleep(1)
            except KeyboardInterrupt:
                pass
            finally:
                drift_watch.stop()
            stats = drift_watch.stats
    console.print(
        f"checked {stats.checked:,} records: {stats.passed:,} passed, {stats.registered} new versions, "
        f"{stats.quarantined:,} quarantined ({stats.malformed:,} malformed)"
    )
    for subject in sorted(stats.subjects_refused):
        console.print(
            f"  [red]incompatible change[/] on {subject}: shopops schemas check {subject}", highlight=False
        )


@app.command("replay")
@handle_errors
def replay(
    subject: Annotated[str | None, typer.Option(help="Only records of this subject")] = None,
    topic: Annotated[str | None, typer.Option(help="Only records of this topic")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Judge the records, change nothing")] = False,
) -> None:
    """Re-ingest quarantined records whose schema is now accepted (after fixing the schema or level)."""
    from shopops.schemas.drift import replay_quarantined

    with open_platform() as platform:
        report = replay_quarantined(
            platform.event_log,
            platform.schema_client,
            platform.settings.schemas.drift,
            topic=topic,
            subject=subject,
            dry_run=dry_run,
        )
    verb = "would replay" if dry_run else "replayed"
    per_topic = Counter(t for t, _, _ in report.replayed)
    console.print(
        f"{verb} {len(report.replayed):,} records, {len(report.refused):,} still refused, "
        f"{report.already_replayed:,} replayed before"
    )
    for name, count in sorted(per_topic.items()):
        console.print(f"  {name}: {count:,}", highlight=False)
    if report.refused:
        reasons = Counter((t, reason) for t, _, _, reason in report.refused)
        table = Table(title="still refused (fix the schema or the level first)")
        table.add_column("topic")
        table.add_column("records", justify="right")
        table.add_column("reason")
        for (name, reason), count in reasons.most_common():
            table.add_row(name, fmt_count(count), reason)
        console.print(table)
        raise typer.Exit(4)
