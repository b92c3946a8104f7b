"""`shopops train fraud|eta` and `shopops models list|card|promote|rollback|score`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from shopops.cli.common import console, err_console, handle_errors
from shopops.core.errors import InvalidInputError

models_app = typer.Typer(
    help="Registered models: list, model cards, promote, roll back, batch score.", no_args_is_help=True
)

_USE_CASES = ("fraud", "eta")


def _json(value: Any) -> None:
    console.print_json(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode())


def _num(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


@handle_errors
def train(
    use_case: Annotated[str, typer.Argument(help="fraud or eta")],
    tune: Annotated[
        bool, typer.Option("--tune", help="Search hyperparameters first (on Ray when ray.address is set)")
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed (default: ml.training.seed); the same seed gives the same model"),
    ] = None,
    regions: Annotated[
        str | None, typer.Option(help="Comma-separated regions to train on (default: all)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Train a model, score it against the simulator's truth, log and register it in MLflow."""
    from shopops.bootstrap import build_training
    from shopops.cli.context import cli_settings, open_platform
    from shopops.domain.regions import parse_regions

    if use_case not in _USE_CASES:
        raise InvalidInputError(f"unknown use case {use_case!r}", hint="use fraud or eta")
    settings = cli_settings()
    codes = [r.code for r in parse_regions(regions)] if regions else None
    with open_platform(settings) as platform:
        service = build_training(settings, platform.event_log)
        with console.status(f"training {use_case}…") as status:
            report = service.train(
                use_case,
                seed=settings.ml.training.seed if seed is None else seed,
                tune=tune,
                regions=codes,
                progress=lambda stage: status.update(f"training {use_case}: {stage}…"),
            )
    if as_json:
        _json(report.to_dict())
        return
    table = Table(
        "metric",
        "holdout",
        title=f"{report.model} v{report.version} (run {report.run_id[:12]}, {report.backend})",
    )
    for name, value in report.metrics.items():
        table.add_row(name, _num(value))
    console.print(table)
    regions_table = Table("region", *sorted({k for m in report.per_region.values() for k in m}))
    for region, metrics in report.per_region.items():
        regions_table.add_row(region, *(_num(metrics[k]) for k in sorted(metrics)))
    console.print(regions_table)
    verdict = "[green]met[/]" if report.truth_ok else "[red]NOT met[/]"
    bound = "≥" if report.truth_metric == "pr_auc_ratio" else "≤"
    console.print(
        f"against the simulator's truth: {report.truth_metric} = {_num(report.truth_ratio)} "
        f"(target {bound} {report.truth_bound}): {verdict}"
    )
    if report.tuned:
        console.print(f"search: {report.tuned['trials']} configurations, best #{report.tuned['best_trial']}")
    console.print(
        f"seed {report.seed}, {report.rows['train'] + report.rows['validation']} rows fitted, "
        f"{report.rows['holdout']} held out, {report.seconds:.1f} s; data versions: "
        + ", ".join(f"{k}={v}" for k, v in sorted(report.data_versions.items()))
    )
    console.print(f"next: `shopops models promote {report.model} {report.version} --approver NAME`")


@contextmanager
def _promotion() -> Iterator[Any]:
    from shopops.bootstrap import build_governance, build_promotion
    from shopops.cli.context import cli_settings

    settings = cli_settings()
    governance = build_governance(settings)
    try:
        yield build_promotion(settings, governance), governance
    finally:
        governance.close()


def _principal(governance: Any, key: str | None) -> Any:
    if not key:
        raise InvalidInputError(
            "promoting needs the promoter's API key",
            hint="pass --key or set SHOPOPS_API_KEY (`shopops auth create-key --role ml_engineer ...`)",
        )
    return governance.authenticate(key)


@models_app.command("list")
@handle_errors
def list_models(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered models, their versions, champions and holdout metrics."""
    with _promotion() as (promotion, _):
        models = promotion.list_models()
    if as_json:
        _json(models)
        return
    if not models:
        err_console.print("no registered models: `shopops train fraud` registers the first")
        return
    table = Table("model", "version", "aliases", "metrics", "run")
    for model in models:
        for v in model["versions"]:
            metrics = ", ".join(f"{k}={float(x):.4f}" for k, x in sorted(v["metrics"].items()) if k != "seed")
            aliases = ", ".join(v["aliases"])
            table.add_row(
                model["name"],
                str(v["version"]),
                f"[bold green]{aliases}[/]" if aliases else "",
                metrics,
                v["run_id"][:12],
            )
    console.print(table)


@models_app.command("card")
@handle_errors
def card(
    name: Annotated[str, typer.Argument(help="Model name (fraud, eta)")],
    version: Annotated[
        int | None, typer.Option(help="Version (default: the champion, else the newest)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The card as JSON instead of Markdown")] = False,
) -> None:
    """Print a model card (intended use, data, metrics per region, SHAP, limitations, owner)."""
    with _promotion() as (promotion, _):
        content = promotion.card(name, version, "json" if as_json else "md")
    if as_json:
        _json(content)
    else:
        from rich.markdown import Markdown

        console.print(Markdown(str(content)))


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        _json(report.to_dict())
        return
    if report.gates:
        table = Table("gate", "passed", "detail")
        for gate in report.gates:
            table.add_row(gate.name, "[green]yes[/]" if gate.passed else "[red]no[/]", gate.detail)
        console.print(table)
    console.print(
        f"[bold green]{report.model} champion → v{report.version}[/] (was {report.previous or 'none'}), "
        f"by {report.principal}, approved by {', '.join(report.approvers) or 'nobody'}; "
        f"policy: {', '.join(report.decision) or 'permit'}"
    )


@models_app.command("promote")
@handle_errors
def promote(
    name: Annotated[str, typer.Argument(help="Model name (fraud, eta)")],
    version: Annotated[int, typer.Argument(help="The candidate version")],
    approver: Annotated[
        list[str] | None, typer.Option("--approver", "-a", help="Who approved; repeat for several")
    ] = None,
    key: Annotated[str | None, typer.Option(envvar="SHOPOPS_API_KEY", help="The promoter's API key")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Gates (beats the champion, no region worse, no input drift, model card) → policy → champion."""
    from shopops.ml.promotion.model import PromotionRefusedError

    with _promotion() as (promotion, governance):
        principal = _principal(governance, key)
        try:
            report = promotion.promote(name, version, principal, approver or [])
        except PromotionRefusedError as exc:
            table = Table("gate", "detail", title=f"{name} v{version}: gates that failed")
            for gate in exc.failed:
                table.add_row(gate.name, gate.detail)
            err_console.print(table)
            raise
    _print_report(report, as_json)


@models_app.command("rollback")
@handle_errors
def rollback(
    name: Annotated[str, typer.Argument(help="Model name (fraud, eta)")],
    approver: Annotated[
        list[str] | None, typer.Option("--approver", "-a", help="Who approved; repeat for several")
    ] = None,
    key: Annotated[
        str | None, typer.Option(envvar="SHOPOPS_API_KEY", help="The API key of who rolls back")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Point the champion back at the version that held it before (policy-checked, audited)."""
    with _promotion() as (promotion, governance):
        report = promotion.rollback(name, _principal(governance, key), approver or [])
    _print_report(report, as_json)


@models_app.command("score")
@handle_errors
def score(
    name: Annotated[str, typer.Argument(help="Model name (fraud, eta)")],
    source: Annotated[
        Path, typer.Option("--input", help="Parquet file or folder with the model's feature columns")
    ],
    output: Annotated[Path, typer.Option("--output", help="Where the scored rows go (Parquet)")],
    version: Annotated[int | None, typer.Option(help="Version (default: the champion)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Batch-score a table with a model (on Ray Data when ray.address is set)."""
    from shopops.bootstrap import build_tracking
    from shopops.cli.context import cli_settings
    from shopops.core.errors import NotFoundError
    from shopops.ml.serving.batch import score_table
    from shopops.ml.serving.loader import load_model
    from shopops.ml.tracking.service import CHAMPION
    from shopops.ml.training.tuning import ray_session

    settings = cli_settings()
    tracking = build_tracking(settings)
    chosen = version if version is not None else tracking.alias_version(name, CHAMPION)
    if chosen is None:
        raise NotFoundError(f"{name} has no champion", hint="pass --version or promote one first")
    model = load_model(tracking, name, chosen, settings.home / "ml" / "cache")
    if settings.ray.address:
        with ray_session(settings.ray.address, settings.ray.num_cpus, settings.home) as ray:
            report = score_table(model, source, output, ray=ray)
    else:
        report = score_table(model, source, output)
    if as_json:
        _json(report.to_dict())
    else:
        console.print(
            f"scored {report.rows:,} rows with {report.model} v{report.version} ({report.backend}) into "
            f"{report.output} in {report.seconds:.2f} s; "
            f"{report.defaulted:,} missing feature values defaulted"
        )
