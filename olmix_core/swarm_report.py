"""What a user watching a swarm sees (the Prefect UI's artifacts; no Prefect here): one row per run, counts per
state, the share of training steps done, an ETA from the runs' own step rates, the resume commands, and the
swarm summary in markdown with the fit's plots embedded (data: URIs, which the Prefect UI's markdown renders; a
browser blocks file:// links from an http page) and, for object stores, presigned links to them."""

from __future__ import annotations

import base64
import posixpath
import shlex
import statistics
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import BaseModel

from olmix_core.runspec import RunState, RunStatus
from olmix_core.store import SwarmStore

EMBED_MAX_BYTES = 600_000  # larger plots are linked, not embedded (the artifact is stored in the Prefect database)
SIGNED_URL_S = 7 * 24 * 3600


class FitLike(Protocol):
    fit_id: str
    url: str
    runs: int
    metrics: list[str]
    chosen: dict[str, str]
    cv: dict[str, dict[str, dict[str, float | None]]]


class ProposalLike(Protocol):
    fit_id: str
    weights: dict[str, float]
    prior: dict[str, float]
    objective: str
    predicted_objective: float
    prior_objective: float
    proposer: str
    weights_url: str
    predicted_url: str


class VerificationLike(Protocol):
    verify_run: str
    actual_objective: float
    best_run: str
    swarm_best_objective: float
    swarm_median_objective: float
    rank: int
    n_runs: int


class SwarmView(BaseModel):
    """Where a swarm stands: its stage and its runs' statuses (the verify run's included)."""

    name: str
    group_id: str
    store: str  # the swarm's folder URL
    stage: str  # e.g. "setting up", "training", "fitting", "verifying", "done", "failed"
    statuses: dict[str, RunStatus] = {}
    verify_runs: list[str] = []
    launcher: str | None = None
    config_url: str | None = None  # the stored config.yaml (what the resume commands use)
    eval_script: str | None = None
    note: str | None = None
    reuse: str | None = None  # a reuse update's lineage line (olmix_core.reuse.ReuseLineage.line)
    rounds: list[dict[str, Any]] = []  # adaptive swarms: `rounds.RoundSummary` per round so far


def _fmt(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def elapsed_s(st: RunStatus) -> float | None:
    """Training time of the run's latest attempt: what it reported, else the launcher's wall time."""
    if st.progress is not None and st.progress.elapsed_s:
        return st.progress.elapsed_s
    wall = st.extra.get("wall_s") or st.extra.get("wall_time_s")
    return float(wall) if isinstance(wall, int | float) else None


def steps_text(st: RunStatus) -> str:
    p = st.progress
    return f"{p.step}/{p.total_steps}" if p is not None else ""


def run_rows(view: SwarmView) -> list[dict[str, Any]]:
    """The runs table: state, attempt, step / total steps, last train loss, elapsed, folder and log, job link."""
    verify = set(view.verify_runs)
    rows = []
    for name, st in sorted(view.statuses.items(), key=lambda kv: (kv[0] in verify, kv[0])):
        folder = f"{view.store}/runs/{name}"
        log = st.url if st.launcher == "beaker" and st.url else f"{folder}/train.log"
        rows.append({
            "run": name, "purpose": "verify" if name in verify else "swarm", "state": st.state.value, "attempt": st.attempts,
            "step": steps_text(st), "train loss": _fmt(st.progress.train_loss) if st.progress and st.progress.train_loss is not None else "",
            "elapsed": duration(elapsed_s(st)), "folder": folder, "log": log, "wandb": st.wandb_url or "",
            "reason": (st.reason or "").replace("\n", " ")[:200],
        })
    return rows


def state_counts(statuses: Mapping[str, RunStatus]) -> dict[str, int]:
    return dict(sorted(Counter(s.state.value for s in statuses.values()).items()))


def _run_total_s(st: RunStatus) -> float | None:
    """The whole training time of a run, projected from its step rate."""
    p = st.progress
    if p is None:
        return None
    rate = p.steps_per_s
    if st.state == RunState.succeeded and p.elapsed_s:
        return p.elapsed_s * p.total_steps / max(1, p.total_steps - p.start_step)
    return p.total_steps / rate if rate else None


def steps_done(statuses: Mapping[str, RunStatus]) -> float:
    """Percent of the training steps done: a succeeded run counts whole, a run that has not reported steps yet
    counts as many steps as the others have; runs that ended without a result are left out. Without any step
    report, the share of runs finished."""
    live = [s for s in statuses.values() if not (s.state.finished and s.state != RunState.succeeded)]
    totals = [s.progress.total_steps for s in live if s.progress and s.progress.total_steps]
    if not totals:
        return round(100.0 * sum(1 for s in statuses.values() if s.state.finished) / max(1, len(statuses)), 1)
    typical = statistics.median(totals)
    done = total = 0.0
    for st in live:
        steps = st.progress.total_steps if st.progress and st.progress.total_steps else typical
        total += steps
        done += steps if st.state == RunState.succeeded else min(st.progress.step, steps) if st.progress else 0
    return round(100.0 * done / total, 1)


def eta_s(statuses: Mapping[str, RunStatus]) -> float | None:
    """Seconds until the unfinished runs are done: the running runs' remaining steps at their own rates, plus the
    queued runs at the median run time, spread over as many runs as are running now. None without step rates."""
    running = [s for s in statuses.values() if s.state == RunState.running]
    queued = [s for s in statuses.values() if s.state in (RunState.pending, RunState.submitted)]
    if not running and not queued:
        return 0.0
    totals = [t for t in (_run_total_s(s) for s in statuses.values()) if t]
    if not totals:
        return None
    typical = statistics.median(totals)
    remaining = 0.0
    for st in running:
        p, rate = st.progress, st.progress.steps_per_s if st.progress else None
        remaining += (p.total_steps - p.step) / rate if p is not None and rate else typical
    remaining += typical * len(queued)
    return remaining / max(1, len(running))


def resume_commands(view: SwarmView) -> list[str]:
    """How to resume the swarm: the deployment run (keeps every finished stage and run) and the CLI equivalent."""
    gid = shlex.quote(view.group_id)
    config = shlex.quote(view.config_url or "CONFIG")
    return [
        f"prefect deployment run olmix/swarm --param group_id={gid} --param config={config}",
        f"olmix swarm --config {config} --group-id {gid}",
    ]


def plot_sources(swarm: SwarmStore, fit_id: str) -> dict[str, tuple[str | None, str]]:
    """Every PNG the fit wrote under fits/{fit id}/ (the proposal's plots too): name -> (data: URI to embed, or None
    when too large; the best link: a presigned URL for object stores, else the store URL)."""
    base = swarm.key("fits", fit_id)
    store = swarm.store
    try:
        paths = sorted(p for p in store.fs.find(store.path(base)) if p.endswith(".png"))
    except FileNotFoundError:
        return {}
    out: dict[str, tuple[str | None, str]] = {}
    root = store.path(base).rstrip("/") + "/"
    for path in paths:
        rel = path[len(root):] if path.startswith(root) else posixpath.basename(path)
        key = f"{base}/{rel}"
        link = store.url(key)
        if not store.is_local:
            try:
                link = store.fs.sign(path, expiration=SIGNED_URL_S)
            except (NotImplementedError, AttributeError, ValueError, OSError):
                pass
        data = store.read_bytes(key)
        uri = f"data:image/png;base64,{base64.b64encode(data).decode()}" if len(data) <= EMBED_MAX_BYTES else None
        out[posixpath.splitext(rel)[0]] = (uri, link)
    return out


def _link(url: str) -> str:
    """Store URLs as code (a browser cannot open file:// from an http page), http(s) URLs as links."""
    return f"[{posixpath.basename(url.split('?', 1)[0])}]({url})" if url.startswith(("http://", "https://")) else f"`{url}`"


def summary_markdown(
    view: SwarmView,
    fit: FitLike | None = None,
    proposal: ProposalLike | None = None,
    verification: VerificationLike | None = None,
    plots: Mapping[str, tuple[str | None, str]] | None = None,
    failure: str | None = None,
) -> str:
    """The swarm summary: stage, runs per state, training progress and ETA, where things are, then (when known)
    the fit with its plots, the proposal and its verification; for a failed swarm the reason and how to resume."""
    swarm_runs = {n: s for n, s in view.statuses.items() if n not in set(view.verify_runs)}
    counts = state_counts(view.statuses)
    lines = [f"# olmix swarm `{view.name}` / `{view.group_id}`", "", f"**Stage: {view.stage}**", ""]
    lines.append(f"- runs: {len(swarm_runs)}" + (f" + {len(view.statuses) - len(swarm_runs)} verify" if len(view.statuses) > len(swarm_runs) else "")
                 + (" — " + ", ".join(f"{n} {state}" for state, n in counts.items()) if counts else ""))
    if view.statuses and not all(s.state.finished for s in view.statuses.values()):
        eta = eta_s(view.statuses)
        lines.append(f"- training: {steps_done(view.statuses):.0f}% of steps done"
                     + (f", ETA ≈ {duration(eta)}" if eta else ", ETA: once runs report steps"))
    lines.append(f"- store: `{view.store}`" + (f" (launcher: {view.launcher})" if view.launcher else ""))
    lines.append(f"- runs' folders and logs: `{view.store}/runs/<run>/` (`status.json`, `train.log`, `result.json`)")
    if view.eval_script:
        lines.append(f"- offline eval script: `{view.eval_script}`")
    if view.reuse:
        lines.append(f"- {view.reuse}")
    if view.note:
        lines += ["", view.note]
    if view.rounds:
        lines += ["", "## Rounds (adaptive swarm)", "", "| round | runs fitted | best observed | proposal: predicted ± std | "
                  "next batch EI | note |", "|---|---|---|---|---|---|"]
        for r in view.rounds:
            std = "" if r.get("proposal_std") is None else f" ± {r['proposal_std']:.3g}"
            ei = r.get("next_expected_improvement")
            lines.append(f"| {r['round']} | {r['runs']} | {_fmt(r.get('best_observed'))} | {_fmt(r.get('predicted_objective'))}{std} | "
                         f"{'—' if ei is None else f'{ei:.4g}'} | {r.get('stopped') or ''} |")
    if failure:
        lines += ["", "## Failed", "", f"`{failure.strip()[:2000]}`", "", "Resume (finished stages and runs are kept):", "", "```",
                  *resume_commands(view), "```"]
    if fit is not None:
        lines += ["", f"## Fit `{fit.fit_id}` ({fit.runs} runs)", "", "| metric | model | CV Spearman | CV MAE |", "|---|---|---|---|"]
        for m in fit.metrics:
            s = fit.cv.get(m, {}).get(fit.chosen[m], {})
            lines.append(f"| `{m}` | {fit.chosen[m]} | {_fmt(s.get('spearman'))} | {_fmt(s.get('mae'))} |")
        lines += ["", f"Fit folder: `{fit.url}`"]
    if proposal is not None:
        lines += [
            "", f"## Proposal ({proposal.proposer} proposer)", "", f"Objective: `{proposal.objective}` (lower is better).", "",
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
        lines += ["", f"Files: `{proposal.weights_url}`, `{proposal.predicted_url}`"]
    if plots:
        lines += ["", "## Plots", ""]
        for name, (uri, link) in sorted(plots.items()):
            lines += [f"**{name}** ({_link(link)})", ""]
            if uri:
                lines += [f"![{name}]({uri})", ""]
    return "\n".join(lines).rstrip() + "\n"
