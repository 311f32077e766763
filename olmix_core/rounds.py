"""Adaptive rounds in one swarm: fit → next batch (`olmix_core.adaptive`) → append → train → pull → fit → ...

Round 0 is the sampled swarm; each later round appends a batch chosen on everything pulled so far. A round's batch
is decided once and kept in the store (`rounds/round-{k}/next.json`), so a resumed swarm continues the same round
instead of choosing again; appending is idempotent (`launch.append`). The loop stops early when the batch's
expected improvement falls below `min_improvement`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from olmix_core.adaptive import NextBatch, load_models, suggest
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.launch.append import append_runs
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
        raise ConfigError(f"rounds must be >= 1 (got {rounds}; 1 = the sampled swarm only)")
    if round_variants is not None and round_variants < 1:
        raise ConfigError(f"round_variants must be >= 1 (got {round_variants})")
    if not min_improvement >= 0:
        raise ConfigError(f"min_improvement must be >= 0 (got {min_improvement})")


def batch_key(swarm: SwarmStore, round_: int) -> str:
    return swarm.key("rounds", f"round-{round_}", "next.json")


def summary_key(swarm: SwarmStore, round_: int) -> str:
    return swarm.key("rounds", f"round-{round_}", "summary.json")


def round_batch(
    config: ExperimentConfig,
    swarm: SwarmStore,
    round_: int,
    ratios_path: str,
    metrics_path: str,
    fit_dir: str,
    variants: int,
) -> NextBatch:
    """The batch of `round_`: the stored one when the round was chosen before, else chosen now from the fit's
    models (no refit) and stored."""
    stored = swarm.store.read_json_or(batch_key(swarm, round_), None)
    if stored is not None:
        return NextBatch.model_validate(stored)
    from olmix_core.fit import FitOptions, load_tables, prepare
    from olmix_core.swarm import fit_options

    options = FitOptions(**{**fit_options(config), "seed": config.seed + round_})
    priors = swarm.store.read_json(swarm.key(SwarmStore.PRIORS))
    table = load_tables(ratios_path, metrics_path, options.metrics)
    setup = prepare(table, options, priors)
    models = load_models(posixpath.join(fit_dir, "models"))
    batch = suggest(table, models, setup, options, variants)
    swarm.store.write_text(batch_key(swarm, round_), batch.model_dump_json(indent=2) + "\n")
    return batch


def best_observed(config: ExperimentConfig, metrics_path: str) -> float:
    """The best observed objective (lower is better) in a metrics table, computed as the verify step does."""
    import io

    import pandas as pd

    from olmix_core.swarm import _read, objective_values

    df = pd.read_csv(io.StringIO(_read(metrics_path)))
    values, _, _ = objective_values(config, df, [c for c in df.columns if c not in ("run", "name")])
    return float(values.min())


def summarise(
    config: ExperimentConfig,
    round_: int,
    metrics_path: str,
    runs: int,
    fit_id: str,
    predicted: dict[str, Any] | None,
    proposed_weights: dict[str, float] | None,
    batch: NextBatch | None,
) -> RoundSummary:
    """A round's line in the summary: its fit (`predicted`: the fit's predicted_performance.json), the best
    observed objective among its runs, and the batch chosen after it (with the posterior std at the proposal)."""
    objective = (predicted or {}).get("objective") or {}
    return RoundSummary(
        round=round_, runs=runs, fit_id=fit_id,
        best_observed=best_observed(config, metrics_path),
        predicted_objective=objective.get("predicted"),
        proposal_std=batch.proposal.std if batch is not None else objective.get("std"),
        proposed_weights=proposed_weights or {},
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


def stop_reason(batch: NextBatch, min_improvement: float) -> str | None:
    if batch.expected_improvement < min_improvement:
        return f"expected improvement {batch.expected_improvement:.4g} < min_improvement {min_improvement:g}"
    return None


def run_rounds(
    config: ExperimentConfig,
    swarm: SwarmStore,
    launcher: Any,
    first: tuple[Any, str, str, Any],
    rounds: int,
    round_variants: int,
    min_improvement: float,
    output_dir: str | None = None,
    timeout_s: float | None = None,
    progress: Progress | None = None,
) -> tuple[tuple[Any, str, str, Any], list[RoundSummary]]:
    """Rounds 1..rounds-1 after the sampled swarm. `first` = (pull report, fit id, fit folder, FitResult) of round
    0; returns the same for the last round, and one summary per round."""
    from olmix_core.results import pull_results
    from olmix_core.swarm import fit_and_propose, train_group

    check_rounds(rounds, round_variants, min_improvement)
    say = progress or (lambda _m: None)
    report, fit_id, fit_dir, fit = first
    summaries: list[RoundSummary] = []
    for r in range(1, rounds):
        batch = round_batch(config, swarm, r, report.ratios_path, report.metrics_path, fit_dir, round_variants)
        summary = summarise(config, r - 1, report.metrics_path, len(report.included), fit_id, fit.predicted,
                            fit.proposed_weights, batch)
        say(f"round {r}: expected improvement of the next {len(batch.suggestions)} runs {batch.expected_improvement:.4g} "
            f"(proposal {batch.proposal.predicted_objective:.4f} ± {batch.proposal.std:.3g})")
        summary.stopped = stop_reason(batch, min_improvement)
        if summary.stopped:
            say(f"stopping: {summary.stopped}")
            summaries.append(record_summary(swarm, summary))
            return (report, fit_id, fit_dir, fit), summaries
        appended = append_runs(config, swarm, batch.mixtures(), f"round {r} batch")
        summary.next_runs = [s.run_name for s in appended.specs]
        summaries.append(record_summary(swarm, summary))
        train_group(config, swarm, appended.specs, launcher, timeout_s, progress)
        report = pull_results(config, swarm, source="local", output_dir=output_dir)
        say(f"round {r}: pulled {len(report.included)} runs x {len(report.metrics)} metrics")
        fit_id, fit_dir, fit = fit_and_propose(config, swarm, report.ratios_path, report.metrics_path, output_dir)
        say(f"round {r}: fit {fit_id}, predicted objective {fit.predicted_objective:.4f}")
    last = summarise(config, rounds - 1, report.metrics_path, len(report.included), fit_id, fit.predicted, fit.proposed_weights, None)
    summaries.append(record_summary(swarm, last))
    return (report, fit_id, fit_dir, fit), summaries
