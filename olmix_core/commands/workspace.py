"""`olmix workspace sync`: write the Beaker secrets the swarm's jobs read, from this machine's environment."""

from __future__ import annotations

import click

from olmix_core.commands._common import config_option, handle_errors


@click.group()
def workspace() -> None:
    """Beaker workspace set-up."""


@workspace.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Show which secrets would be written; write nothing.")
@handle_errors
def sync(config_path: str, dry_run: bool) -> None:
    """Write the Beaker secrets the jobs read, from this machine's environment.

    Each entry of `beaker.secrets` (env var -> secret name; default `{user}_{VAR}` for what the config needs) is
    written into the config's workspace from the environment variable of the same name (for
    GOOGLE_APPLICATION_CREDENTIALS: the content of the key file it names). Prints names, never values; exit 1 when a
    needed variable is neither in the environment nor already in the workspace."""
    from olmix_core.config import ExperimentConfig
    from olmix_core.errors import ConfigError
    from olmix_core.launch.beaker import format_sync, sync_secrets

    config = ExperimentConfig.from_yaml(config_path)
    results = sync_secrets(config, dry_run=dry_run)
    click.echo(format_sync(results))
    missing = [r for r in results if r.action == "missing"]
    if missing:
        raise ConfigError(
            "not in the environment and not in workspace " + f"{config.beaker.workspace}: "
            + ", ".join(f"{r.env_var} (secret {r.secret})" for r in missing)
        )
