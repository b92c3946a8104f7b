"""`shopops auth`, `shopops policy`, `shopops audit`: keys, policy tests and explanations, audit checks.

The CLI acts on the stores directly (a local operator of the data directory); every key change is
recorded in the audit trail with the operating system user as the actor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from shopops.cli.common import console, err_console, handle_errors
from shopops.core.errors import InvalidInputError
from shopops.governance.model import EntityRef, make_principal
from shopops.governance.service import GovernanceService

auth_app = typer.Typer(help="API keys: create, revoke, list.", no_args_is_help=True)
policy_app = typer.Typer(help="Cedar policies: check, test, explain, reload.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail: verify, tail.", no_args_is_help=True)


@contextmanager
def _governance() -> Iterator[GovernanceService]:
    from shopops.bootstrap import build_governance
    from shopops.cli.context import cli_settings

    service = build_governance(cli_settings())
    try:
        yield service
    finally:
        service.close()


def _policy_dir(directory: Path | None) -> Path:
    if directory is not None:
        return directory
    from shopops.cli.context import cli_settings
    from shopops.governance.policy import default_policy_dir

    return cli_settings().governance.policy_dir or default_policy_dir()


def _json(value: Any) -> None:
    console.print_json(orjson.dumps(value).decode())


# --- auth ----------------------------------------------------------------------------------------


@auth_app.command("create-key")
@handle_errors
def create_key(
    name: Annotated[str, typer.Option(help="Principal name (user name, service or agent name)")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="A role; repeat for several")],
    region: Annotated[str, typer.Option(help="Home region (residency of the personal data it may see)")],
    kind: Annotated[str, typer.Option(help="user, service or agent")] = "user",
    description: Annotated[str, typer.Option(help="What the key is for")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create an API key. Its value is printed once; only its hash is stored."""
    with _governance() as governance:
        issued = governance.create_key(
            kind=kind, name=name, roles=role, home_region=region, description=description
        )
    if as_json:
        _json({"key": issued.token, **issued.record.to_dict()})
        return
    p = issued.record.principal
    console.print(
        f"key {issued.record.key_id} for {p.label} (roles: {', '.join(p.roles)}, region: {p.home_region})"
    )
    console.print(issued.token, highlight=False, soft_wrap=True)
    err_console.print("store it now: it is not shown again. Use it as `Authorization: Bearer <key>`.")


@auth_app.command("revoke")
@handle_errors
def revoke(key_id: Annotated[str, typer.Argument(help="The key id (`shopops auth list`)")]) -> None:
    """Revoke a key (other running servers stop accepting it within governance.key_cache_ttl_s)."""
    with _governance() as governance:
        record = governance.revoke_key(key_id)
    console.print(f"revoked key {record.key_id} of {record.principal.label}")


@auth_app.command("list")
@handle_errors
def list_keys(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """API keys with their principals and roles (never their values)."""
    with _governance() as governance:
        keys = governance.list_keys(include_revoked)
    if as_json:
        _json([k.to_dict() for k in keys])
        return
    table = Table("key id", "principal", "roles", "region", "created by", "status")
    for k in keys:
        table.add_row(
            k.key_id,
            k.principal.label,
            ", ".join(k.principal.roles),
            k.principal.home_region,
            k.created_by,
            "active" if k.active else "revoked",
        )
    console.print(table)
    if not keys:
        err_console.print("no keys: `shopops auth create-key --name you --role admin --region vn` makes one")


# --- policy --------------------------------------------------------------------------------------

DirOption = Annotated[
    Path | None, typer.Option("--dir", help="Policy directory (default: governance.policy_dir)")
]


@policy_app.command("check")
@handle_errors
def check(directory: DirOption = None) -> None:
    """Parse and validate every policy against the schema (exit 78 naming file and line if not)."""
    from shopops.governance.policy import load_policies

    loaded = load_policies(_policy_dir(directory))
    console.print(f"{len(loaded.sources)} policies valid (version {loaded.version})")


@policy_app.command("test")
@handle_errors
def run_tests(
    directory: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Run the policy test cases in <policy dir>/tests/*.toml; exit 1 if one fails."""
    from shopops.governance.policy import PolicyEngine
    from shopops.governance.testing import run_cases

    engine = PolicyEngine(_policy_dir(directory))
    results = run_cases(engine)
    failed = [r for r in results if not r.passed]
    if as_json:
        _json(
            [
                {
                    "case": r.file,
                    "name": r.name,
                    "passed": r.passed,
                    "problem": r.problem,
                    **r.decision.to_dict(),
                }
                for r in results
            ]
        )
    else:
        for r in results:
            mark = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
            console.print(f"{mark} {r.file} {r.name}: {r.problem or r.decision.explain()}", highlight=False)
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@policy_app.command("explain")
@handle_errors
def explain(
    action: Annotated[str, typer.Option(help="Cedar action, e.g. read, write, read_pii, promote")],
    resource: Annotated[str, typer.Option(help='Cedar resource, e.g. Api::"events"')],
    key_id: Annotated[str | None, typer.Option(help="Ask for the holder of this key")] = None,
    principal: Annotated[str | None, typer.Option(help="Principal name (with --role, --region)")] = None,
    kind: Annotated[str, typer.Option(help="user, service or agent")] = "user",
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help="Role of --principal")] = None,
    region: Annotated[str, typer.Option(help="Home region of --principal")] = "vn",
    context: Annotated[str, typer.Option(help="Context as JSON")] = "{}",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Why a request is allowed or denied: the deciding policies, or the candidates after a default deny."""
    from shopops.governance.policy import PolicyEngine

    try:
        ctx = orjson.loads(context)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(
            f"--context is not JSON: {exc}", hint='e.g. --context \'{"method": "GET"}\''
        ) from exc
    if key_id:
        with _governance() as governance:
            record = governance.keys.get(key_id)
        if record is None:
            raise InvalidInputError(f"no API key {key_id!r}", hint="`shopops auth list` shows the key ids")
        who = record.principal
    elif principal:
        who = make_principal(kind, principal, role or [], region)
    else:
        raise InvalidInputError(
            "say who asks", hint="give --key-id, or --principal NAME --role ROLE --region R"
        )
    engine = PolicyEngine(_policy_dir(None))
    decision = engine.decide(who, action, EntityRef.parse(resource), ctx)
    by_id = {s.policy_id: s for s in engine.policies.sources}
    shown = [by_id[r] for r in decision.reasons if r in by_id] or engine.candidates(action)
    if as_json:
        _json(
            {
                **decision.to_dict(),
                "policies": [{"id": s.policy_id, "where": s.where, "text": s.text} for s in shown],
            }
        )
        return
    colour = "green" if decision.allowed else "red"
    console.print(
        f"[bold {colour}]{'ALLOW' if decision.allowed else 'DENY'}[/] {decision.principal} "
        f"(roles: {', '.join(who.roles)}, region: {who.home_region}) {action} {decision.resource}",
        highlight=False,
    )
    console.print(decision.explain(), highlight=False)
    for error in decision.errors:
        console.print(f"[yellow]policy error:[/] {error}", highlight=False)
    title = "deciding policies" if decision.reasons else f"policies about {action} (none matched)"
    if shown:
        console.print(f"\n{title}:")
        for s in shown:
            console.print(f"[cyan]{s.policy_id}[/] ({s.where})\n{s.text}\n", highlight=False)


@policy_app.command("reload")
@handle_errors
def reload() -> None:
    """Validate the policies and record a policy change in the audit trail.

    Running servers pick changed files up by themselves within governance.reload_interval_s.
    """
    with _governance() as governance:
        loaded = governance.reload_policies()
    console.print(f"{len(loaded.sources)} policies loaded (version {loaded.version})")


# --- audit ---------------------------------------------------------------------------------------


@audit_app.command("verify")
@handle_errors
def verify(
    anchor: Annotated[
        str | None, typer.Option(help="SEQ:HASH of a record seen elsewhere (e.g. the audit log lines)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Check the hash chain; exit 1 naming the first broken record (edited, deleted, reordered, truncated)."""
    from shopops.governance.api import parse_anchor

    with _governance() as governance:
        report = governance.verify_audit(parse_anchor(anchor))
    if as_json:
        _json(report.to_dict())
    elif report.ok:
        head = f" (head: record {report.head.seq}, {report.head.hash[:16]}…)" if report.head else ""
        console.print(f"[green]audit trail intact[/]: {report.checked} records verified{head}")
    else:
        err_console.print(
            f"[bold red]audit trail broken[/] at record {report.first_broken}: {report.problem} "
            f"({report.checked} records before it verified)",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("tail")
@handle_errors
def tail(
    n: Annotated[int, typer.Option("-n", help="How many of the last records")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The last audit records."""
    with _governance() as governance:
        head = governance.audit.head()
        start = max(1, (head.seq if head else 0) - n + 1)
        records = list(governance.audit.records(start))[-n:]
    if as_json:
        _json([r.to_dict() for r in records])
        return
    table = Table("seq", "kind", "principal", "action", "resource", "decision", "reasons")
    for r in records:
        table.add_row(str(r.seq), r.kind, r.principal, r.action, r.resource, r.decision, ", ".join(r.reasons))
    console.print(table)


def announce_first_admin(
    governance: GovernanceService,
    home: Path,
    demo: bool,
    region: str,
    url: str,
    try_path: str = "/v1/auth/whoami",
    portal: bool = True,
) -> None:
    """Server start-up: how to get in. The demo creates the first admin key into a 0600 file;
    otherwise, with no admin key yet, say which command makes one."""
    if demo:
        path = governance.ensure_first_admin(home, region)
        key_file = home / "admin.key"
        if path is not None:
            console.print(
                f"[bold]first admin key written to {path}[/] (only its hash is stored)", highlight=False
            )
        if key_file.is_file():
            console.print(
                f'call the API with it: curl -H "Authorization: Bearer $(cat {key_file})" {url}{try_path}'
                + (f" — or log in to the portal at {url}/login with it" if portal else ""),
                highlight=False,
                soft_wrap=True,
            )
        return
    if not governance.has_active_admin():
        console.print(
            "[bold yellow]no admin API key exists yet[/]: create the first one with "
            "`shopops auth create-key --name <you> --role admin --region <region>`",
            highlight=False,
        )
