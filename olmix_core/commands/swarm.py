"""`olmix swarm`: the whole local cycle in one command (sample → train → pull → fit → propose → verify)."""

from __future__ import annotations

import click

from olmix_core.commands._common import config_option, handle_errors


@click.command()
@config_option
@click.option("--output-dir", "-o", default=None, type=click.Path(file_okay=False), help="Also leave the tables, fit outputs and verify.json here.")
@click.option("--group-id", default=None, help="Resume this group (finished runs, pulls and fits are reused).")
@click.option("--no-verify", is_flag=True, help="Stop after the proposal; do not train the verify run.")
@click.option("--rounds", type=int, default=1, show_default=True,
              help="Adaptive swarm: rounds in all (1 = the sampled swarm only; each further round appends a batch).")
@click.option("--round-variants", type=int, default=None, help="Runs per further round. [half the config's variants]")
@click.option("--min-improvement", type=float, default=0.0, show_default=True,
              help="Stop the rounds early when the next batch's expected improvement (objective units) is below this.")
@handle_errors
def swarm(config_path: str, output_dir: str | None, group_id: str | None, no_verify: bool, rounds: int,
          round_variants: int | None, min_improvement: float) -> None:
    """Run a swarm on this machine with the local launcher, fit, propose a mixture, and verify the proposal by
    training one more proxy on it. Demo data (a config whose data lives under a `demo-data` folder) is generated
    when missing. Ctrl-C cancels the runs."""
    from olmix_core.config import ExperimentConfig
    from olmix_core.stages import NoRunSucceeded
    from olmix_core.swarm import run_swarm

    config = ExperimentConfig.from_yaml(config_path)
    try:
        outcome = run_swarm(config, output_dir, group_id, verify=not no_verify, progress=lambda m: click.echo(m, err=True),
                            rounds=rounds, round_variants=round_variants, min_improvement=min_improvement)
    except NoRunSucceeded as e:
        raise NoRunSucceeded(f"{e}; see `olmix launch status --group-id {e.group_id}`", group_id=e.group_id) from None
    click.echo(f"group {outcome.group_id}: {len(outcome.included_runs)} runs fitted; store {outcome.swarm_url}")
    if outcome.reuse is not None:
        click.echo(outcome.reuse.line())
    if outcome.reduced_weights is not None:
        click.echo("reduced proposal: " + ", ".join(f"{k}={v:.4f}" for k, v in outcome.reduced_weights.items()))
    if outcome.rounds:
        click.echo(format_rounds(outcome.rounds))
    click.echo("proposed mixture: " + ", ".join(f"{k}={v:.4f}" for k, v in (outcome.proposed_weights or {}).items()))
    v = outcome.verify
    if v is not None:
        pred = "n/a" if v.predicted_objective is None else f"{v.predicted_objective:.4f}"
        click.echo(
            f"verify ({v.objective}): actual {v.actual_objective:.4f}, predicted {pred}; swarm best {v.swarm_best_objective:.4f} "
            f"({v.best_run}), median {v.swarm_median_objective:.4f}; rank {v.rank} of {v.n_runs + 1} "
            f"({'at or below' if v.at_or_below_median else 'above'} the median)"
        )
    for name, path in outcome.files.items():
        click.echo(f"  {name}: {path}")
    click.echo("seconds: " + ", ".join(f"{k} {s:.1f}" for k, s in outcome.seconds.items()))


def format_rounds(rounds: list[dict]) -> str:
    """One line per adaptive round: runs fitted, best observed, the proposal's predicted objective ± std, and the
    expected improvement of the batch that followed."""

    def f(v: float | None, spec: str = ".4f") -> str:
        return "-" if v is None else format(v, spec)

    lines = [f"{'round':>5}  {'runs':>4}  {'best observed':>13}  {'proposal':>9}  {'± std':>8}  {'next EI':>9}  note"]
    for r in rounds:
        lines.append(
            f"{r['round']:>5}  {r['runs']:>4}  {f(r['best_observed']):>13}  {f(r['predicted_objective']):>9}  "
            f"{f(r['proposal_std'], '.3g'):>8}  {f(r['next_expected_improvement'], '.4g'):>9}  {r.get('stopped') or ''}"
        )
    return "\n".join(lines)
