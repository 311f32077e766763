"""Fit, propose and verify tasks: the stages after results are pulled (olmix_core.stages.fits, .verification).

The fit task is cached on the content of the pulled tables (`tables_sha256`), so the same tables and options give
the same fit, while new results give a new fit next to the old ones (see olmix_core.stages.fits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from olmix_core import stages
from olmix_core.config import ExperimentConfig
from olmix_core.runspec import RunStatus
from olmix_core.stages import FitSummary, ProposalSummary, VerifyResult
from olmix_core.stages.fits import fit_score_rows, proposal_rows
from tasks._common import OUTSIDE_WORLD, RESULT_SERIALIZER, SWARM_CACHE, artifact_key, open_swarm_store
from tasks.launch import make_launcher
from tasks.summary import swarm_summary


def progress_artifact(key: str, what: str, step: float = 0.05) -> Callable[[float, str], None]:
    """A Prefect progress artifact fed by olmix_core's `progress(fraction, message)` hook (updates `step` apart)."""
    artifact_id = create_progress_artifact(0.0, key=key, description=f"{what}: starting")
    last = [0.0]

    def update(fraction: float, message: str) -> None:
        if fraction - last[0] >= step or fraction >= 1.0:
            last[0] = fraction
            update_progress_artifact(artifact_id, round(100 * fraction, 1), description=f"{what}: {message}")

    return update


@task(name="fit", task_run_name="fit {config.name}/{group_id} on tables {tables_sha256:.12}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def fit_swarm(config: ExperimentConfig, group_id: str, tables_sha256: str) -> FitSummary:
    """One model per metric (config `fit.regression_type`, cross-validated) on the pulled tables, saved with its
    report and plots in `fits/{fit id}/`. `tables_sha256` (of results/ratios.csv + metrics.csv) keys the cache."""
    progress = progress_artifact(artifact_key(group_id, "fit-progress"), f"fit {config.name}/{group_id}")
    fit = stages.fit(config, open_swarm_store(config, group_id), progress=progress)
    create_table_artifact(fit_score_rows(fit), key=artifact_key(group_id, "fit"),
                          description=f"**{config.name}** `{group_id}` {fit.fit_id}: cross-validated scores per metric and regressor "
                                      f"({fit.runs} runs)")
    get_run_logger().info("fit %s on %d runs: %s", fit.fit_id, fit.runs, ", ".join(f"{m}: {c}" for m, c in fit.chosen.items()))
    return fit


@task(name="propose", task_run_name="propose {config.name}/{group_id} from {fit_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def propose_mixture(config: ExperimentConfig, group_id: str, fit_id: str) -> ProposalSummary:
    """The mixture that optimises the config's objective under its constraints, from the saved models of `fit_id`."""
    proposal = stages.propose(config, open_swarm_store(config, group_id), fit_id)
    create_table_artifact(
        proposal_rows(proposal), key=artifact_key(group_id, "proposal"),
        description=(f"**{config.name}** `{group_id}`: proposed mixture next to the prior ({proposal.proposer} proposer); "
                     f"predicted {proposal.objective}: {proposal.predicted_objective:.4f} (prior: {proposal.prior_objective:.4f})"),
    )
    return proposal


@task(name="verify", task_run_name="verify {config.name}/{group_id} proposal of {proposal.fit_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def verify(config: ExperimentConfig, group_id: str, proposal: ProposalSummary, launcher: str,
           launcher_options: dict[str, Any] | None = None, timeout_s: float | None = None) -> VerifyResult:
    """Train one more proxy on the proposed mixture, like the swarm's runs, and compare its actual objective with
    the predicted one and the swarm's runs; writes fits/{fit id}/verify.json."""
    log = get_run_logger()
    backend = make_launcher(launcher, config, group_id, launcher_options)
    polled, watcher = backend.status, stages.PollProgress()

    def status_shown() -> dict[str, RunStatus]:  # the verify run's progress in the live artifacts, as it is polled
        statuses = polled()
        if watcher.observe(statuses, []).show_due:
            swarm_summary(config, group_id, "verifying the proposal", statuses, proposal=proposal)
        return statuses

    backend.status = status_shown  # type: ignore[method-assign]
    result = stages.verify(config, open_swarm_store(config, group_id), backend, proposal, timeout_s, progress=log.info)
    log.info("verified: actual %.4f, predicted %.4f, swarm best %.4f / median %.4f, rank %d of %d",
             result.actual_objective, proposal.predicted_objective, result.swarm_best_objective,
             result.swarm_median_objective, result.rank, result.n_runs + 1)
    return result
