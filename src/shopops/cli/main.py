"""The `shopops` command: every capability of the platform, one sub-command each."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from shopops import __version__
from shopops.agents.cli import app as agent_app
from shopops.catalog.cli import app as catalog_app
from shopops.cli.common import console, handle_errors
from shopops.events.cli import app as events_app
from shopops.governance.cli import audit_app, auth_app, policy_app
from shopops.inventory.cli import app as inventory_app
from shopops.lake.cli import app as lake_app
from shopops.llm.cli import app as llm_app
from shopops.ml.cli import models_app, train
from shopops.ml.features.cli import app as features_app
from shopops.quality.cli import app as contracts_app
from shopops.rag.cli import app as rag_app
from shopops.reconciliation.cli import app as reconcile_app
from shopops.schemas.cli import app as schemas_app
from shopops.simulator.cli import simulate

app = typer.Typer(
    name="shopops",
    help="shopops: AI/ML/Data/Agent-Ops for an ecommerce company. `shopops up` starts the platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(events_app, name="events")
app.add_typer(inventory_app, name="inventory")
app.add_typer(schemas_app, name="schemas")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(lake_app, name="lake")
app.add_typer(contracts_app, name="contracts")
app.add_typer(catalog_app, name="catalog")
app.add_typer(features_app, name="features")
app.add_typer(models_app, name="models")
app.add_typer(llm_app, name="llm")
app.add_typer(agent_app, name="agent")
app.add_typer(rag_app, name="rag")
app.command("train")(train)
app.add_typer(auth_app, name="auth")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.command("simulate")(simulate)


@app.command()
@handle_errors
def up(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: api.host setting, 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api.port setting, 8000)")] = None,
    seed_demo: Annotated[bool, typer.Option(help="Seed a demo world into an empty data directory")] = True,
) -> None:
    """Start the platform: HTTP API, stream workers; seeds a demo world on first start."""
    from shopops.runtime import run_platform

    run_platform(host=host, port=port, seed_demo=seed_demo)


@app.command()
def version() -> None:
    """Print the shopops version."""
    console.print(f"shopops {__version__}")


config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
@handle_errors
def config_show() -> None:
    """Print the effective settings (environment, shopops.toml and defaults merged) as JSON."""
    from shopops.core.settings import load_settings

    console.print_json(orjson.dumps(load_settings().model_dump(mode="json")).decode())
