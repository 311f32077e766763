"""The verify stage: one more proxy trained on the proposed mixture, exactly like the swarm's runs, compared with
its prediction and with the swarm's runs.

The verify run takes the next free variant number (see `store_verify_spec`) with `purpose: verify`, so result
pulls and fits leave it out. An unchanged proposal reuses its verify run.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.errors import LaunchError, OlmixError
from olmix_core.launch.base import Launcher
from olmix_core.runspec import RunState
from olmix_core.stages.fits import ProposalSummary
from olmix_core.stages.runs import state_counts, train
from olmix_core.stages.setup import store_verify_spec
from olmix_core.store import SwarmStore

VERIFY_FILE = "verify.json"
Progress = Callable[[str], None]


class VerifyResult(BaseModel):
    """verify.json: how the proposal did when trained, next to its prediction and the swarm it came from."""

    objective: str
    direction: str = "minimize"
    actual_objective: float
    predicted_objective: float | None
    swarm_best_objective: float
    swarm_median_objective: float
    rank: int  # 1 = better than every swarm run
    n_runs: int
    at_or_below_median: bool
    verify_run: str
    best_run: str
    fit_id: str
    group_id: str
    proposed_weights: dict[str, float]
    actual_metrics: dict[str, float]
    predicted_metrics: dict[str, float] = {}


def objective_values(config: ExperimentConfig, metrics: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, str, list[str]]:
    """The fit's objective (lower is better; maximised metrics enter negated) for each row of `metrics`, computed
    from actual values exactly as `run_fit` computes it from predictions. Returns (values, label, metrics used)."""
    from olmix_core.fit.families import observed_objective

    return observed_objective(config.fit, metrics, columns)


def verify(
    config: ExperimentConfig,
    swarm: SwarmStore,
    launcher: Launcher,
    proposal: ProposalSummary,
    timeout_s: float | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Train one more proxy on `proposal.weights` and compare its objective with the prediction and with the runs
    the proposal's fit was made on (fits/{fit id}/metrics.csv); writes fits/{fit id}/verify.json."""
    spec = store_verify_spec(config, swarm, proposal.weights)
    if progress is not None:
        progress(f"verify run {spec.run_name}")
    on_change = None if progress is None else (lambda st: progress("runs: " + state_counts(st)))
    status = train(config, swarm, [spec], launcher, timeout_s, on_change)[spec.run_name]
    if status.state != RunState.succeeded:
        raise LaunchError(f"verify run {spec.run_name} {status.state.value}: {status.reason or 'see its train.log'}")
    result = swarm.store.read_json(swarm.run_key(spec.run_name, "result.json"))
    metrics_key = swarm.fit_key(proposal.fit_id, "metrics.csv")
    swarm_metrics = pd.read_csv(io.StringIO(swarm.store.read_text(metrics_key)))
    if swarm_metrics.empty:
        raise OlmixError(f"{swarm.store.url(metrics_key)}: no swarm runs to compare the verify run with")
    columns = [c for c in swarm_metrics.columns if c not in ("run", "name")]
    values, label, used = objective_values(config, swarm_metrics, columns)
    missing = sorted(set(used) - set(result["metrics"]))
    if missing:
        raise OlmixError(f"verify run {spec.run_name}: its result lacks the metrics {missing}")
    actual = float(objective_values(config, pd.DataFrame([result["metrics"]]), columns)[0][0])
    best = int(np.argmin(values))
    outcome = VerifyResult(
        objective=label,
        actual_objective=actual,
        predicted_objective=proposal.predicted_objective,
        swarm_best_objective=float(values[best]),
        swarm_median_objective=float(np.median(values)),
        rank=1 + int((values < actual).sum()),
        n_runs=len(values),
        at_or_below_median=bool(actual <= np.median(values)),
        verify_run=spec.run_name,
        best_run=str(swarm_metrics["run"].iloc[best]),
        fit_id=proposal.fit_id,
        group_id=swarm.group_id,
        proposed_weights=spec.weights(),
        actual_metrics={m: float(result["metrics"][m]) for m in used},
        predicted_metrics={m: float(v) for m, v in proposal.predicted.items() if m in used},
    )
    swarm.store.write_text(swarm.fit_key(proposal.fit_id, VERIFY_FILE), outcome.model_dump_json(indent=2) + "\n")
    return outcome
