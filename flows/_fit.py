"""pull → (only when the tables changed since the last fit, or forced) fit → propose → verify: shared by the swarm
flow (in-loop evaluation) and the re-fit flow. Plain composition of tasks, not a sub-flow: one swarm stays one
flow run."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from olmix_core import stages
from olmix_core.config import ExperimentConfig
from olmix_core.metadata import update_metadata
from olmix_core.runspec import now_iso
from tasks._common import in_store, open_swarm_store
from tasks.evals import pull_swarm_results
from tasks.fit import fit_swarm, propose_mixture, verify
from tasks.summary import swarm_summary


def fit_propose_verify(
    config: ExperimentConfig,
    group_id: str,
    source: str,
    only_if_new: bool,
    force: bool,
    verify_proposal: bool,
    launcher: str,
    launcher_options: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    known: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`only_if_new`: stop after pulling when the tables equal those of the last fit (the re-fit's rule); else go
    on, taking unchanged stages from the cache (a re-run swarm returns its proposal). `force`: recompute the fit,
    proposal and verification even when cached. `known`: what the caller already reports (run counts, eval script),
    kept in the summary. Returns `status` "fitted" (with the proposal) or "up to date"."""
    log = get_run_logger()
    swarm = open_swarm_store(config, group_id)
    swarm_summary(config, group_id, f"pulling {source} results")
    pulled = pull_swarm_results(config, group_id, source)
    report = pulled.report
    still_open = pulled.still_open
    outcome: dict[str, Any] = {"name": config.name, "group_id": group_id, "store": swarm.url(), "runs": len(report.expected),
                               "results": len(report.included), "new_results": report.new_runs, **(known or {})}
    last = stages.up_to_date(swarm, pulled) if only_if_new and not force else None
    if last is not None:
        log.info("no new results since fit %s (%d runs); nothing to do", last.fit_id, len(report.included))
        update_metadata(swarm, orchestration={"open": still_open, "last_check": now_iso()})
        swarm_summary(config, group_id, f"up to date: no new results since fit {last.fit_id}")
        return {**outcome, "status": "up to date", "fit_id": last.fit_id}
    pulled.require_results()
    swarm_summary(config, group_id, f"fitting on {len(report.included)} runs")
    fit = in_store(fit_swarm, config).with_options(refresh_cache=force)(config, group_id, pulled.tables_sha256)
    swarm_summary(config, group_id, "proposing", fit=fit)
    proposal = in_store(propose_mixture, config).with_options(refresh_cache=force)(config, group_id, fit.fit_id)
    verification = None
    if verify_proposal:
        swarm_summary(config, group_id, "verifying the proposal", fit=fit, proposal=proposal)
        verification = in_store(verify, config).with_options(refresh_cache=force)(config, group_id, proposal, launcher, launcher_options, timeout_s)
    swarm_summary(config, group_id, "done" if not still_open else "fitted (some runs still open)", fit=fit, proposal=proposal,
                  verification=verification)
    stages.record_fit(swarm, pulled, fit, proposal, verification.actual_objective if verification else None)
    update_metadata(swarm, orchestration={"open": still_open, "last_check": now_iso()})
    return {
        **outcome, "status": "fitted", "fit_id": fit.fit_id, "fit_url": fit.url, "objective": proposal.objective,
        "proposal": proposal.weights, "predicted_objective": proposal.predicted_objective,
        "prior_objective": proposal.prior_objective, "prior": proposal.prior,
        "verification": verification.model_dump(mode="json") if verification else None,
    }
