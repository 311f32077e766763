"""The swarm's live artifacts in the UI, updated in place at each stage (olmix_core.swarm_report builds them):
`olmix-{group}-summary` (stage, runs per state, ETA, links, fit, proposal, verification, plots, how to resume),
`olmix-{group}-runs` (one row per run, the verify run's included) and `olmix-{group}-progress` (share of the
training steps done)."""

from __future__ import annotations

from olmix_core.config import ExperimentConfig
from olmix_core.rounds import stored_summaries
from olmix_core.runspec import RunStatus, read_statuses
from olmix_core.store import SwarmStore
from olmix_core.swarm_report import (
    FitLike,
    ProposalLike,
    SwarmView,
    VerificationLike,
    plot_sources,
    run_rows,
    steps_done,
    summary_markdown,
)
from tasks._artifacts import publish_markdown, publish_progress, publish_table
from tasks._common import artifact_key, open_swarm_store


def swarm_view(config: ExperimentConfig, group_id: str, stage: str, statuses: dict[str, RunStatus] | None = None,
               note: str | None = None) -> SwarmView:
    """The swarm as the store has it (run statuses, verify runs, eval script), with `statuses` (a launcher's
    latest, e.g. simulated progress) over the stored ones."""
    swarm = open_swarm_store(config, group_id)
    meta = swarm.metadata()
    stored = read_statuses(swarm)
    return SwarmView(
        name=config.name, group_id=group_id, store=swarm.url(), stage=stage, statuses={**stored, **(statuses or {})},
        verify_runs=list(meta.verify_runs), launcher=meta.orchestration.launcher or meta.launcher,
        config_url=swarm.url(SwarmStore.CONFIG) if swarm.store.exists(swarm.key(SwarmStore.CONFIG)) else None,
        eval_script=meta.eval_script.url if meta.eval_script else None, note=note,
        reuse=meta.reuse.line() if meta.reuse else None,
        rounds=[r.model_dump(mode="json") for r in stored_summaries(swarm)],
    )


def show_runs(view: SwarmView) -> None:
    """The runs table and the progress bar (training steps done, the verify run's included)."""
    publish_table(artifact_key(view.group_id, "runs"), run_rows(view),
                  f"**{view.name}** `{view.group_id}`: one row per run ({view.stage})")
    publish_progress(artifact_key(view.group_id, "progress"), steps_done(view.statuses) if view.statuses else 0.0,
                     f"{view.name} `{view.group_id}`: training steps done ({len(view.statuses)} runs)")


def swarm_summary(
    config: ExperimentConfig,
    group_id: str,
    stage: str,
    statuses: dict[str, RunStatus] | None = None,
    note: str | None = None,
    fit: FitLike | None = None,
    proposal: ProposalLike | None = None,
    verification: VerificationLike | None = None,
    failure: str | None = None,
) -> str:
    """Update the summary, runs table and progress artifacts of this flow run in place; returns the summary."""
    view = swarm_view(config, group_id, stage, statuses, note)
    fit_id = fit.fit_id if fit is not None else proposal.fit_id if proposal is not None else None
    plots = plot_sources(open_swarm_store(config, group_id), fit_id) if fit_id else None
    text = summary_markdown(view, fit=fit, proposal=proposal, verification=verification, plots=plots, failure=failure)
    publish_markdown(artifact_key(group_id, "summary"), text, f"olmix swarm {config.name} / {group_id}: {stage}")
    show_runs(view)
    return text
