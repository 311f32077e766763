"""`olmix eval`: offline evaluation of a swarm (`eval script` here, `eval launch` in its own module)."""

from __future__ import annotations

import click

from olmix_core.commands._common import config_option, handle_errors
from olmix_core.commands.eval_launch import launch


@click.group("eval")
def eval_group() -> None:
    """Offline evaluation: the olmo-cookbook-eval script of a swarm, or evaluating its checkpoints (launch)."""


@eval_group.command("script")
@config_option
@click.option("--group-id", "-g", required=True, help="The swarm's group id (8 hex characters).")
@click.option("--beaker-user", default=None, help="Beaker user in the checkpoint paths (default: beaker.user in the config).")
@click.option("--output-dir", default="output/eval_scripts", show_default=True, type=click.Path(file_okay=False))
@handle_errors
def script(config_path: str, group_id: str, beaker_user: str | None, output_dir: str) -> None:
    """Write olmix-{G}.sh: one `olmo-cookbook-eval evaluate` per variant on its latest checkpoint.

    When the swarm is in the store, its variant count comes from its mixtures and the script is also stored there
    (eval_scripts/olmix-{G}.sh) and recorded in its metadata."""
    from olmix_core.checkpoints import uses_beaker_user
    from olmix_core.config import ExperimentConfig
    from olmix_core.errors import ConfigError
    from olmix_core.evals import dashboard_name, script_results_prefix, write_eval_script
    from olmix_core.names import check_group_id
    from olmix_core.store import SwarmStore

    config = ExperimentConfig.from_yaml(config_path)
    try:
        check_group_id(group_id)
    except ValueError as e:
        raise ConfigError(f"--group-id: {e}") from None
    if beaker_user and not uses_beaker_user(config):
        why = "the config's launcher is local" if config.launcher == "local" else "the checkpoint folders do not contain {user}"
        click.echo(f"warning: --beaker-user {beaker_user!r} is not used: {why}, so checkpoint paths have no Beaker user", err=True)
    swarm = SwarmStore.open(config.storage_root, config.name, group_id)
    in_store = swarm.store.exists(swarm.prefix)
    runs: int | None = None
    if in_store:
        mixtures = swarm.store.read_json_or(swarm.key(SwarmStore.MIXTURES), None)
        if isinstance(mixtures, list) and mixtures:
            runs = len(mixtures)
    path = write_eval_script(config, group_id, runs, beaker_user, output_dir, swarm if in_store else None)
    click.echo(f"eval script: {path}")
    if in_store:
        click.echo(f"stored: {swarm.url('eval_scripts', f'olmix-{group_id}.sh')}")
    click.echo(f"dashboard: {dashboard_name(group_id)}  (results under {script_results_prefix(config)}/{dashboard_name(group_id)}/)")


eval_group.add_command(launch)
