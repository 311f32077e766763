"""`olmix mix generate|reuse|expand|next`: sample a swarm's mixtures; plan a reuse update and expand its proposal;
the next batch of an adaptive swarm (batch Bayesian optimisation on the swarm's results)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from olmix_core.commands._common import config_option, handle_errors, write_local_file
from olmix_core.commands.fit import constraint_options, fit_options_from_cli, objective_options, regression_type_option

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
    from olmix_core.reuse import domains_of, reduced_fit_inputs, resolved

    config = resolved(config)
    mixtures = generate_mixtures(config, priors["token_counts"])
    write_local_file(output, json.dumps(mixtures, indent=2))
    domains = domains_of(config)
    sizes = reduced_fit_inputs(config, {"constraints": {"repetition_factor": 1.0}}, priors)[1]["relative_sizes"]
    click.echo(f"{len(mixtures)} mixtures over {len(domains)} domains -> {output}")
    click.echo(format_summary(summary_rows(mixtures, domains, sizes)))


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


@mix.command()
@config_option
@click.option("--previous", default=None, help="The previous mixture: a fit's proposed_weights.json or a {leaf: weight} JSON/YAML file (path or URL); default: the config's reuse.previous.")
@click.option("--recompute", default=None, help="Comma-separated leaves or sources to free again (changed data); added to reuse.recompute.")
@click.option("--mode", type=click.Choice(["partial", "full"]), default=None, help="partial: freeze untouched leaves into `existing` (default); full: recompute every leaf.")
@click.option("--output-config", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write the explicit config (existing's ratios in reuse.frozen).")
@handle_errors
def reuse(config_path: str, previous: str | None, recompute: str | None, mode: str | None, output_config: str) -> None:
    """Plan a reuse update of CONFIG against the previous mixture and write the explicit config: frozen leaves (in
    `existing`, at their previous ratios renormalised), free leaves, and the swarm size for the reduced swarm."""
    import yaml

    from olmix_core.config import ExperimentConfig
    from olmix_core.errors import ConfigError
    from olmix_core.reuse import read_text, resolve_reuse

    config = ExperimentConfig.from_yaml(config_path)
    block = config.reuse.model_dump(mode="json", exclude_none=True) if config.reuse else {}
    if previous is not None:
        block["previous"] = previous
        block.pop("frozen", None)
    if recompute:
        block["recompute"] = list(dict.fromkeys([*block.get("recompute", []), *(x.strip() for x in recompute.split(",") if x.strip())]))
    if mode is not None:
        block["mode"] = mode
    if "previous" not in block and "frozen" not in block:
        raise ConfigError("--previous: the config has no reuse.previous; name the previous mixture")
    raw = yaml.safe_load(read_text(config_path, "--config"))  # as written: an unset `variants` stays unset
    raw["reuse"] = block
    try:
        explicit, plan = resolve_reuse(ExperimentConfig.from_dict(raw, config_path))
    except ConfigError as e:
        raise ConfigError(str(e).replace("reuse.previous", "--previous").replace("reuse.recompute", "--recompute")) from None
    assert plan is not None
    with open(output_config, "w") as f:
        f.write(explicit.to_yaml())
    click.echo(plan.summary())
    click.echo(f"explicit config -> {output_config}")
    if not plan.needs_swarm:
        click.echo(f"no swarm needed; `olmix mix expand --config {output_config} --output full.json` writes the final mixture")


@mix.command()
@config_option
@click.option("--proposal", default=None, help="A reduced proposal ({existing, free leaves}: the reuse fit's proposed_weights.json); omit when the update needs no swarm.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write the mixture over every leaf (JSON).")
@handle_errors
def expand(config_path: str, proposal: str | None, output: str) -> None:
    """Expand a reduced proposal over every leaf: existing's weight times the frozen ratios, plus the free leaves."""
    from olmix_core.config import ExperimentConfig
    from olmix_core.errors import ConfigError, DataError
    from olmix_core.fit.tables import load_mixture
    from olmix_core.reuse import domains_of, expand_weights, plan_for

    config = ExperimentConfig.from_yaml(config_path)
    if config.reuse is None:
        raise ConfigError(f"--config: {config_path} has no reuse block (write one with `olmix mix reuse`)")
    if proposal is None:
        plan = plan_for(config)
        if plan.needs_swarm:
            raise ConfigError(f"--proposal: the update frees {plan.free}, so it needs the reduced swarm's proposal")
        weights = dict(plan.final_weights or {})
    else:
        try:
            weights = expand_weights(config, load_mixture(proposal, domains_of(config), "proposal"))
        except DataError as e:
            raise DataError(f"--proposal: {e}") from None
    with open(output, "w") as f:
        json.dump(weights, f, indent=2)
        f.write("\n")
    click.echo(f"{len(weights)} leaves -> {output}")
    for leaf, w in weights.items():
        click.echo(f"  {leaf:<24} {w:.6f}")
@mix.command("next")
@click.option("--ratios", required=True, help="The swarm's mixture ratios CSV (as for `olmix fit`).")
@click.option("--metrics", required=True, help="The swarm's metrics CSV, joined with the ratios on the run id.")
@click.option("--variants", required=True, type=int, help="How many new mixtures to suggest.")
@click.option("--output", "-o", required=True, help="Where to write the new mixtures (JSON list of {domain: weight}).")
@click.option("--priors", help="Priors JSON/YAML {relative_sizes, token_counts} (needed with --target-tokens).")
@regression_type_option
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
    if model_dir is not None and cli.get("regression_type") is not None:
        raise click.UsageError("--regression-type chooses the models to fit; with --model-dir the saved models are used")
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
        "models: " + ", ".join(f"{m}={r}" for m, r in batch.models.items()),
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
