"""`olmix mix generate`: sample a swarm's mixtures from a config."""

from __future__ import annotations

import json

import click

from olmix_core.commands._common import config_option, handle_errors, write_local_file


@click.group()
def mix() -> None:
    """Mixture sampling."""


@mix.command()
@config_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write mixtures.json.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Override the config's seed.")
@click.option("--variants", type=click.IntRange(min=1), default=None, help="Override the config's number of variants.")
@handle_errors
def generate(config_path: str, output: str, seed: int | None, variants: int | None) -> None:
    """Write one `{leaf: [weight, repetition_factor]}` object per variant (the seed's format) and print a summary."""
    from olmix_core.config import ExperimentConfig
    from olmix_core.priors import compute_priors
    from olmix_core.sampling import generate_mixtures, summary_rows
    from olmix_core.store import ArtifactStore

    config = ExperimentConfig.from_yaml(config_path)
    overrides = {k: v for k, v in {"seed": seed, "variants": variants}.items() if v is not None}
    if overrides:
        config = ExperimentConfig.from_dict({**config.model_dump(mode="json"), **overrides}, config_path)
    priors = compute_priors(config, ArtifactStore(config.storage_root))
    mixtures = generate_mixtures(config, priors["token_counts"])
    write_local_file(output, json.dumps(mixtures, indent=2))
    click.echo(f"{len(mixtures)} mixtures over {len(config.leaf_names())} leaves -> {output}")
    click.echo(format_summary(summary_rows(mixtures, config.leaf_names(), priors["relative_sizes"])))


def format_summary(rows: list[dict]) -> str:
    width = max(len("leaf"), *(len(r["leaf"]) for r in rows))
    head = f"{'leaf':<{width}}  {'prior':>7}  {'min':>7}  {'mean':>7}  {'max':>7}  {'used':>6}  {'max rep':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['leaf']:<{width}}  {r['prior']:7.4f}  {r['min']:7.4f}  {r['mean']:7.4f}  {r['max']:7.4f}  "
            f"{r['used']:6.0%}  {r['max_repetition']:7.2f}"
        )
    return "\n".join(lines)
