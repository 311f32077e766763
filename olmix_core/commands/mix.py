"""`olmix mix generate` (sample a swarm's mixtures from a config) and `olmix mix next` (the next batch of an
adaptive swarm, chosen by batch Bayesian optimisation on the swarm's results)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from olmix_core.commands._common import config_option, handle_errors, write_local_file
from olmix_core.commands.fit import constraint_options, fit_options_from_cli, objective_options

if TYPE_CHECKING:
    from olmix_core.adaptive import NextBatch


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


@mix.command("next")
@click.option("--ratios", required=True, help="The swarm's mixture ratios CSV (as for `olmix fit`).")
@click.option("--metrics", required=True, help="The swarm's metrics CSV, joined with the ratios on the run id.")
@click.option("--variants", required=True, type=int, help="How many new mixtures to suggest.")
@click.option("--output", "-o", required=True, help="Where to write the new mixtures (JSON list of {domain: weight}).")
@click.option("--priors", help="Priors JSON/YAML {relative_sizes, token_counts} (needed with --target-tokens).")
@objective_options
@constraint_options
@click.option("--seed", type=int, default=None, help="Seed for the fit, the candidates and the posterior draws. [0]")
@click.option("--model-dir", default=None, help="Use the models `olmix fit` saved here instead of fitting again.")
@handle_errors
def next_(variants: int, output: str, model_dir: str | None, ratios: str, metrics: str, **cli: object) -> None:
    """Suggest the next batch of an adaptive swarm: N new mixtures that satisfy the constraints, differ from each
    other and from the existing runs, and are where the fitted models, with their uncertainty, expect the most
    improvement (batch Thompson sampling from a GP posterior over the fitted models; see docs/adaptive.md)."""
    from olmix_core.adaptive import next_mixtures, write_mixtures

    priors = cli.pop("priors", None)
    options = fit_options_from_cli(cli)
    batch = next_mixtures(ratios, metrics, variants, options, priors=priors, model_dir=model_dir)
    write_mixtures(output, batch)
    click.echo(format_batch(batch))
    click.echo(f"wrote {len(batch.suggestions)} mixtures to {output}")


def format_batch(batch: NextBatch) -> str:
    """The batch, its expected improvement and the fit's proposal, as the posterior sees them."""
    p = batch.proposal
    lines = [
        f"objective: {batch.objective} (lower is better); {batch.runs} runs, best observed {batch.best_observed:.6g}, "
        f"best predicted at a run {batch.incumbent:.6g}",
        f"fitted models' proposal: predicted {p.predicted_objective:.6g} ± {p.std:.3g} (posterior std)",
        f"expected improvement of the batch: {batch.expected_improvement:.4g} "
        f"({len(batch.suggestions)} mixtures from {batch.candidates} feasible candidates, {batch.seconds:.1f}s)",
        "",
        f"{'#':>3}  {'predicted':>10}  {'std':>8}  {'EI':>9}  weights",
    ]
    for i, s in enumerate(batch.suggestions):
        top = sorted(((w, d) for d, w in s.weights.items() if w > 0), reverse=True)[:4]
        lines.append(
            f"{i:>3}  {s.predicted_objective:10.5g}  {s.std:8.3g}  {s.expected_improvement:9.3g}  "
            + ", ".join(f"{d}={w:.3f}" for w, d in top)
            + (" ..." if sum(w > 0 for w in s.weights.values()) > 4 else "")
        )
    return "\n".join(lines)
