"""Adaptive rounds in one swarm: fit → next batch (`olmix_core.adaptive`) → append → train → pull → fit → ...

Round 0 is the sampled swarm; each later round appends a batch chosen on everything pulled so far. A round's batch
is decided once and kept in the store (`rounds/round-{k}/next.json`), so a resumed swarm continues the same round
instead of choosing again; appending is idempotent (`launch.append`). The loop stops early when the batch's
expected improvement falls below `min_improvement`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from olmix_core.adaptive import NextBatch, load_models, suggest
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.stages.append import append_runs
from olmix_core.store import SwarmStore

Progress = Callable[[str], None]


class RoundSummary(BaseModel):
    """One round of an adaptive swarm: its fit's proposal and the batch chosen from it."""

    round: int
    runs: int  # runs the round's fit saw
    fit_id: str
    best_observed: float | None = None  # best observed objective among those runs
    predicted_objective: float | None = None  # of the fit's proposal
    proposal_std: float | None = None  # posterior std of the objective at the proposal
    proposed_weights: dict[str, float] = {}
    next_expected_improvement: float | None = None  # of the batch chosen after this round (None: last round)
    next_runs: list[str] = []
    stopped: str | None = None  # why no further round was run after this one


def check_rounds(rounds: int, round_variants: int | None, min_improvement: float) -> None:
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1 (got {rounds}; 1 = the sampled swarm only)", fields=("rounds",))
    if round_variants is not None and round_variants < 1:
        raise ConfigError(f"round_variants must be >= 1 (got {round_variants})", fields=("round_variants",))
    if not min_improvement >= 0:
        raise ConfigError(f"min_improvement must be >= 0 (got {min_improvement})", fields=("min_improvement",))


def batch_key(swarm: SwarmStore, round_: int) -> str:
    return swarm.key("rounds", f"round-{round_}", "next.json")


def summary_key(swarm: SwarmStore, round_: int) -> str:
    return swarm.key("rounds", f"round-{round_}", "summary.json")


def round_batch(config: ExperimentConfig, swarm: SwarmStore, round_: int, fit_id: str, variants: int) -> NextBatch:
    """The batch of `round_`: the stored one when the round was chosen before, else chosen now from the saved
    models and tables of `fit_id` (fits/{fit id}/, no refit) and stored."""
    stored = swarm.store.read_json_or(batch_key(swarm, round_), None)
    if stored is not None:
        return NextBatch.model_validate(stored)
    from olmix_core.fit.families import load_selection
    from olmix_core.fit.run import prepare
    from olmix_core.stages.fits import fit_options

    fit_dir = swarm.url("fits", fit_id)
    options = fit_options(config)
    options = options.model_copy(update={"regression": options.regression.model_copy(update={"seed": config.seed + round_})})
    priors = swarm.store.read_json(swarm.key(SwarmStore.PRIORS))
    selection = load_selection(f"{fit_dir}/ratios.csv", f"{fit_dir}/metrics.csv", options)
    setup = prepare(selection, options, priors)
    batch = suggest(selection.table, load_models(f"{fit_dir}/models"), setup, options, variants)
    swarm.store.write_text(batch_key(swarm, round_), batch.model_dump_json(indent=2) + "\n")
    return batch


def best_observed(config: ExperimentConfig, swarm: SwarmStore, fit_id: str) -> float:
    """The best observed objective (lower is better) among the fit's runs, computed as the verify stage does."""
    import io

    import pandas as pd

    from olmix_core.stages.verification import objective_values

    df = pd.read_csv(io.StringIO(swarm.store.read_text(swarm.fit_key(fit_id, "metrics.csv"))))
    values, _, _ = objective_values(config, df, [c for c in df.columns if c not in ("run", "name")])
    return float(values.min())


def summarise(
    config: ExperimentConfig,
    swarm: SwarmStore,
    round_: int,
    fit_id: str,
    runs: int,
    proposed_weights: dict[str, float],
    batch: NextBatch | None,
) -> RoundSummary:
    """A round's line in the summary: its fit's proposal (predicted objective, and the posterior std there from
    the batch, else the models' own), the best observed objective among its runs, the batch chosen after it."""
    from olmix_core.fit.predicted import read_predicted

    objective = read_predicted(swarm.url("fits", fit_id, "predicted_performance.json")).objective
    return RoundSummary(
        round=round_, runs=runs, fit_id=fit_id,
        best_observed=best_observed(config, swarm, fit_id),
        predicted_objective=objective.predicted,
        proposal_std=batch.proposal.std if batch is not None else objective.std,
        proposed_weights=proposed_weights,
        next_expected_improvement=None if batch is None else batch.expected_improvement,
    )


def record_summary(swarm: SwarmStore, summary: RoundSummary) -> RoundSummary:
    """The round's summary as first recorded (a resumed swarm's first pull already sees later rounds' runs), else
    this one, recorded now."""
    stored = swarm.store.read_json_or(summary_key(swarm, summary.round), None)
    if stored is not None:
        return RoundSummary.model_validate(stored)
    swarm.store.write_text(summary_key(swarm, summary.round), summary.model_dump_json(indent=2) + "\n")
    return summary


def stored_summaries(swarm: SwarmStore) -> list[RoundSummary]:
    """Every round summary recorded so far, by round (none for a plain swarm)."""
    found = swarm.store.find_json(swarm.key("rounds"), "summary.json")
    return sorted((RoundSummary.model_validate(v) for v in found.values()), key=lambda r: r.round)


def stop_reason(batch: NextBatch, min_improvement: float) -> str | None:
    if batch.expected_improvement < min_improvement:
        return f"expected improvement {batch.expected_improvement:.4g} < min_improvement {min_improvement:g}"
    return None


def run_rounds(
    config: ExperimentConfig,
    swarm: SwarmStore,
    launcher: Any,
    first: tuple[Any, Any, Any],
    rounds: int,
    round_variants: int,
    min_improvement: float,
    output_dir: str | None = None,
    timeout_s: float | None = None,
    progress: Progress | None = None,
) -> tuple[tuple[Any, Any, Any], list[RoundSummary]]:
    """Rounds 1..rounds-1 after the sampled swarm, with the stage functions. `first` = (Pulled, FitSummary,
    ProposalSummary) of round 0; returns the same for the last round, and one summary per round."""
    from olmix_core import stages
    from olmix_core.stages.runs import state_counts

    check_rounds(rounds, round_variants, min_improvement)
    say = progress or (lambda _m: None)
    pulled, fit, proposal = first
    summaries: list[RoundSummary] = []
    for r in range(1, rounds):
        batch = round_batch(config, swarm, r, fit.fit_id, round_variants)
        summary = summarise(config, swarm, r - 1, fit.fit_id, fit.runs, proposal.weights, batch)
        say(f"round {r}: expected improvement of the next {len(batch.suggestions)} runs {batch.expected_improvement:.4g} "
            f"(proposal {batch.proposal.predicted_objective:.4f} ± {batch.proposal.std:.3g})")
        summary.stopped = stop_reason(batch, min_improvement)
        if summary.stopped:
            say(f"stopping: {summary.stopped}")
            summaries.append(record_summary(swarm, summary))
            return (pulled, fit, proposal), summaries
        appended = append_runs(config, swarm, batch.mixtures(), f"round {r} batch")
        summary.next_runs = [s.run_name for s in appended.specs]
        summaries.append(record_summary(swarm, summary))
        stages.train(config, swarm, appended.specs, launcher, timeout_s, lambda st: say("runs: " + state_counts(st)))
        pulled = stages.pull(config, swarm, "local", output_dir)
        pulled.require_results()
        say(f"round {r}: pulled {len(pulled.report.included)} runs x {len(pulled.report.metrics)} metrics")
        fit = stages.fit(config, swarm)
        proposal = stages.propose(config, swarm, fit.fit_id)
        say(f"round {r}: fit {fit.fit_id}, predicted objective {proposal.predicted_objective:.4f}")
    summaries.append(record_summary(swarm, summarise(config, swarm, rounds - 1, fit.fit_id, fit.runs, proposal.weights, None)))
    return (pulled, fit, proposal), summaries
