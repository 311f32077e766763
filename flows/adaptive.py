"""Adaptive rounds of the `olmix` flow: after the sampled swarm, each round (a sub-flow) fits on everything pulled
so far, chooses the next batch by batch Bayesian optimisation, appends it to the group, trains and polls it. Every
step is a cached task with its result in the store, so a re-run swarm resumes inside the round it stopped in."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows._fit import fit_propose_verify
from olmix_core.config import ExperimentConfig
from olmix_core.rounds import RoundSummary, record_summary, stop_reason, summarise
from tasks._common import in_store, open_swarm_store
from tasks.adaptive import append_batch, next_batch
from tasks.launch import poll_runs, submit_runs


@flow(name="olmix-round", flow_run_name="round {round_} of {config.name}/{group_id}")
def adaptive_round(config: ExperimentConfig, group_id: str, round_: int, source: str, launcher: str, variants: int,
                   min_improvement: float, launcher_options: dict[str, Any] | None = None, poll_interval: float = 10.0,
                   timeout_s: float | None = None) -> RoundSummary:
    """Fit round `round_ - 1`'s results, choose round `round_`'s batch, and (unless its expected improvement is
    below `min_improvement`) append, submit and poll it. Returns the summary of round `round_ - 1`."""
    swarm = open_swarm_store(config, group_id)
    fitted = fit_propose_verify(config, group_id, source, only_if_new=False, force=False, verify_proposal=False,
                                launcher=launcher, launcher_options=launcher_options)
    batch = in_store(next_batch, config)(config, group_id, round_, fitted["fit_id"], variants)
    summary = summarise(config, swarm, round_ - 1, fitted["fit_id"], fitted["results"], fitted["proposal"], batch)
    summary.stopped = stop_reason(batch, min_improvement)
    if summary.stopped:
        get_run_logger().info("stopping before round %d: %s", round_, summary.stopped)
        return record_summary(swarm, summary)
    runs = in_store(append_batch, config)(config, group_id, round_, batch)
    summary.next_runs = runs
    in_store(submit_runs, config)(config, group_id, runs, launcher, launcher_options)
    in_store(poll_runs, config)(config, group_id, runs, launcher, launcher_options, poll_interval, timeout_s)
    return record_summary(swarm, summary)


def run_rounds(config: ExperimentConfig, group_id: str, source: str, launcher: str, rounds: int, round_variants: int,
               min_improvement: float, launcher_options: dict[str, Any] | None = None, poll_interval: float = 10.0,
               timeout_s: float | None = None) -> list[RoundSummary]:
    """Rounds 1..rounds-1 as sub-flows, stopping after the first whose batch is not worth running; then the summary
    of the last round's fit (which the caller verifies). One summary per round."""
    out: list[RoundSummary] = []
    for r in range(1, rounds):
        summary = adaptive_round(config, group_id, r, source, launcher, round_variants, min_improvement,
                                 launcher_options, poll_interval, timeout_s)
        out.append(summary)
        if summary.stopped:
            return out
    swarm = open_swarm_store(config, group_id)
    fitted = fit_propose_verify(config, group_id, source, only_if_new=False, force=False, verify_proposal=False,
                                launcher=launcher, launcher_options=launcher_options)
    last = summarise(config, swarm, rounds - 1, fitted["fit_id"], fitted["results"], fitted["proposal"], None)
    out.append(record_summary(swarm, last))
    return out
