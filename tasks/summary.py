"""The markdown artifact that summarises a swarm in the UI: where it stands, the proposal, predicted vs verified."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact

from olmix_core.config import ExperimentConfig
from olmix_core.stages import VERIFY_FILE, FitSummary, ProposalSummary, VerifyResult
from tasks._common import artifact_key, open_swarm_store


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def _link(url: str) -> str:
    """A clickable form of a store URL (local paths become file:// URLs)."""
    return f"file://{url}" if url.startswith("/") else url


def swarm_summary(
    config: ExperimentConfig,
    group_id: str,
    outcome: dict[str, Any],
    note: str | None = None,
    fit: FitSummary | None = None,
    proposal: ProposalSummary | None = None,
    verification: VerifyResult | None = None,
) -> str:
    """Create (a new version of) the `olmix-{group}-summary` markdown artifact; returns its text."""
    swarm = open_swarm_store(config, group_id)
    lines = [
        f"# olmix swarm `{config.name}` / `{group_id}`",
        "",
        f"- store: `{swarm.url()}`",
        f"- runs: {outcome.get('runs', '?')}" + (f", succeeded {outcome['succeeded']}" if "succeeded" in outcome else "")
        + (f", not succeeded {len(outcome['failed'])}" if outcome.get("failed") else ""),
    ]
    if outcome.get("eval_script"):
        lines.append(f"- offline eval script: `{outcome['eval_script']}`")
    if note:
        lines += ["", note]
    if fit is not None:
        lines += ["", f"## Fit `{fit.fit_id}` ({fit.runs} runs)", "", "| metric | model | CV Spearman | CV MAE |", "|---|---|---|---|"]
        for m in fit.metrics:
            s = fit.cv[m].get(fit.chosen[m], {})
            lines.append(f"| `{m}` | {fit.chosen[m]} | {_fmt(s.get('spearman'))} | {_fmt(s.get('mae'))} |")
        if fit.plots:
            lines += ["", "Plots: " + ", ".join(f"[{name}]({_link(url)})" for name, url in sorted(fit.plots.items()))]
    if proposal is not None:
        lines += [
            "", f"## Proposal ({proposal.proposer} proposer)", "",
            f"Objective: `{proposal.objective}` (lower is better).", "",
            "| | objective |", "|---|---|",
            f"| predicted at the proposal | {_fmt(proposal.predicted_objective)} |",
            f"| predicted at the prior | {_fmt(proposal.prior_objective)} |",
        ]
        if verification is not None:
            lines += [
                f"| **verified** (run `{verification.verify_run}`) | **{_fmt(verification.actual_objective)}** |",
                f"| best swarm run (`{verification.best_run}`) | {_fmt(verification.swarm_best_objective)} |",
                f"| median swarm run | {_fmt(verification.swarm_median_objective)} |",
                "", f"The verified proposal ranks **{verification.rank}** of {verification.n_runs + 1} (the swarm's runs and itself).",
            ]
        lines += ["", "| leaf | prior | proposed |", "|---|---|---|"]
        for leaf in sorted(proposal.prior):
            lines.append(f"| `{leaf}` | {proposal.prior[leaf]:.4f} | {proposal.weights.get(leaf, 0.0):.4f} |")
        files = {"proposed_weights.json": proposal.weights_url, "predicted_performance.json": proposal.predicted_url}
        if verification is not None:
            files[VERIFY_FILE] = swarm.url("fits", proposal.fit_id, VERIFY_FILE)
        lines += ["", "Files: " + ", ".join(f"[{name}]({_link(url)})" for name, url in files.items())]
    text = "\n".join(lines) + "\n"
    create_markdown_artifact(text, key=artifact_key(group_id, "summary"), description=f"olmix swarm {config.name} / {group_id}")
    return text
