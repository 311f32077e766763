"""`olmix results pull`: a swarm's results as ratios.csv + metrics.csv (the input of `olmix fit`)."""

from __future__ import annotations

import click

from olmix_core.commands._common import config_option, handle_errors


@click.group()
def results() -> None:
    """Result pulling (local runs, WandB, eval dashboards)."""


@results.command()
@config_option
@click.option("--group-id", "-g", required=True, help="The swarm's group id (8 hex characters).")
@click.option("--from", "source", type=click.Choice(["local", "wandb", "dashboard"]), default="local", show_default=True, help="Where the results are.")
@click.option("--dashboard", "-d", default=None, help="Eval dashboard name (default olmix-{G}).")
@click.option("--results-prefix", default=None, help="Where dashboards live (default: evaluation.results_prefix, else {storage_root}/evals).")
@click.option("--csv", "dashboard_csv", default=None, type=click.Path(exists=True, dir_okay=False), help="With --from dashboard: import `olmo-cookbook-eval results --format csv` output instead.")
@click.option("--metrics", "-m", multiple=True, help="Metric names: a file (one a line) or a comma-separated list; repeatable.")
@click.option("--history-samples", type=int, default=None, help="WandB: mean of the last N history rows instead of the summary.")
@click.option("--wandb-project", default=None, help="WandB ENTITY/PROJECT (default: training.wandb in the config).")
@click.option("--output-dir", "-o", default=None, type=click.Path(file_okay=False), help="Where to write the tables (default output/results/{G}).")
@handle_errors
def pull(
    config_path: str,
    group_id: str,
    source: str,
    dashboard: str | None,
    results_prefix: str | None,
    dashboard_csv: str | None,
    metrics: tuple[str, ...],
    history_samples: int | None,
    wandb_project: str | None,
    output_dir: str | None,
) -> None:
    """Write ratios.csv, metrics.csv and pull_report.json (also into the store's results/); only what changed since
    the last pull is read again."""
    from olmix_core.config import ExperimentConfig
    from olmix_core.errors import ConfigError
    from olmix_core.names import check_group_id
    from olmix_core.results import parse_metrics_option, pull_results
    from olmix_core.store import SwarmStore

    config = ExperimentConfig.from_yaml(config_path)
    try:
        check_group_id(group_id)
    except ValueError as e:
        raise ConfigError(f"--group-id: {e}") from None
    if dashboard_csv and source != "dashboard":
        raise ConfigError("--csv imports an olmo-cookbook-eval table: use it with --from dashboard")
    swarm = SwarmStore.open(config.storage_root, config.name, group_id)
    report = pull_results(
        config,
        swarm,
        source=source,
        output_dir=output_dir or f"output/results/{group_id}",
        metrics=parse_metrics_option(list(metrics)),
        dashboard=dashboard,
        results_prefix_url=results_prefix,
        dashboard_csv=dashboard_csv,
        history_samples=history_samples,
        wandb_project=wandb_project,
    )
    click.echo(
        f"{report.group_id} from {report.source}: {len(report.expected)} expected, {len(report.found)} found, "
        f"{len(report.included)} in the tables ({len(report.new_runs)} new), {len(report.missing)} missing, "
        f"{len(report.failed)} failed, {len(report.running)} running"
    )
    for run, ms in report.missing_metrics.items():
        shown = ", ".join(ms[:5]) + (f", ... ({len(ms)} in all)" if len(ms) > 5 else "")
        click.echo(f"  {run}: missing {shown}")
    for run, why in report.excluded.items():
        click.echo(f"  {run}: left out: {why}")
    if report.dropped_metrics:
        click.echo(f"  no run has: {', '.join(report.dropped_metrics)}")
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"ratios:  {report.ratios_path}\nmetrics: {report.metrics_path}\nreport:  {report.report_path}")
