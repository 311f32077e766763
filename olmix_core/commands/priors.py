"""`olmix priors compute`: token counts per leaf, as a `priors:` block to paste into the config."""

from __future__ import annotations

import click
import yaml

from olmix_core.commands._common import config_option, handle_errors, write_local_file


@click.group()
def priors() -> None:
    """Token-count priors."""


@priors.command()
@config_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Also write the block to this YAML file.")
@click.option("--no-cache", is_flag=True, help="List the files again even when the store has cached counts.")
@handle_errors
def compute(config_path: str, output: str | None, no_cache: bool) -> None:
    """Print `priors: {relative_sizes, token_counts}` for every leaf (listed in bulk through fsspec; cached in the store)."""
    from olmix_core.config import ExperimentConfig
    from olmix_core.priors import compute_priors
    from olmix_core.store import ArtifactStore

    config = ExperimentConfig.from_yaml(config_path)
    result = compute_priors(config, None if no_cache else ArtifactStore(config.storage_root))
    text = yaml.safe_dump({"priors": result}, sort_keys=False)
    click.echo(text, nl=False)
    if output:
        write_local_file(output, text)
