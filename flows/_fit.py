"""pull → (only when the tables changed since the last fit, or forced) fit → propose → verify: shared by the swarm
flow (in-loop evaluation) and the re-fit flow. Plain composition of tasks, not a sub-flow: one swarm stays one
flow run."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from flows._common import ORCHESTRATION, record
from olmix_core.config import ExperimentConfig
from olmix_core.errors import OlmixError
from olmix_core.runspec import now_iso
from tasks._common import in_store, open_swarm_store
from tasks.evals import pull_swarm_results
from tasks.fit import fit_swarm, propose_mixture, verify
from tasks.summary import swarm_summary


class NoResults(OlmixError):
    """No run of the swarm has results to fit on yet."""


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
    last = swarm.metadata().get(ORCHESTRATION, {}).get("last_fit") or {}
    still_open = bool(report.running or report.missing)
    outcome: dict[str, Any] = {"name": config.name, "group_id": group_id, "store": swarm.url(), "runs": len(report.expected),
                               "results": len(report.included), "new_results": report.new_runs, **(known or {})}
    if only_if_new and not force and last.get("tables_sha256") == pulled.tables_sha256:
        log.info("no new results since fit %s (%d runs); nothing to do", last.get("fit_id"), len(report.included))
        record(swarm, open=still_open, last_check=now_iso())
        swarm_summary(config, group_id, f"up to date: no new results since fit {last.get('fit_id')}")
        return {**outcome, "status": "up to date", "fit_id": last.get("fit_id")}
    if not report.included:
        raise NoResults(f"group {group_id}: no run has {source} results yet ({len(report.running)} running, "
                        f"{len(report.missing)} missing, {len(report.failed)} failed)")
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
    record(swarm, open=still_open, last_check=now_iso(), last_fit={
        "fit_id": fit.fit_id, "tables_sha256": pulled.tables_sha256, "runs": fit.runs, "time": now_iso(),
        "predicted_objective": proposal.predicted_objective,
        "actual_objective": verification.actual_objective if verification else None,
    })
    return {
        **outcome, "status": "fitted", "fit_id": fit.fit_id, "fit_url": fit.url, "objective": proposal.objective,
        "proposal": proposal.weights, "predicted_objective": proposal.predicted_objective,
        "prior_objective": proposal.prior_objective, "prior": proposal.prior,
        "verification": verification.model_dump(mode="json") if verification else None,
    }
