"""The whole local cycle as library functions: sample → train → pull → fit → propose → verify.

`run_swarm` chains the stages that `olmix swarm` (and `bench/local_swarm.py`) run; each stage is its own function
so a caller can stop, resume or replace one. Every stage works from the store, so a second call with the same group
id reuses finished work: stored mixtures, succeeded runs, the pull state, and the verify run of an unchanged
proposal.

The verify run is one more proxy trained on the proposed mixture exactly like the swarm's runs. It takes the next
free variant number (see `store_verify_spec`) with `purpose: verify`, so result pulls and fits leave it out.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import posixpath
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.errors import LaunchError, OlmixError
from olmix_core.launch.base import Launcher
from olmix_core.launch.swarm_setup import prepare_swarm, store_verify_spec, submit_swarm
from olmix_core.launch.wait import poll_specs
from olmix_core.reuse import ReuseLineage
from olmix_core.runspec import RunSpec, RunState, RunStatus
from olmix_core.store import SwarmStore

Progress = Callable[[str], None]
VERIFY_FILE = "verify.json"

logger = logging.getLogger(__name__)


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


class SwarmOutcome(BaseModel):
    """What `run_swarm` did and where it left things."""

    group_id: str
    swarm_url: str
    output_dir: str | None
    runs: dict[str, RunStatus]
    included_runs: list[str]
    fit_id: str | None = None
    fit_dir: str | None = None
    proposed_weights: dict[str, float] | None = None  # over every leaf (a reuse swarm's proposal expanded)
    reduced_weights: dict[str, float] | None = None  # a reuse swarm's proposal over {existing, free leaves}
    predicted_objective: float | None = None
    verify: VerifyResult | None = None
    reuse: ReuseLineage | None = None  # when the config reuses a mixture
    seconds: dict[str, float] = {}
    files: dict[str, str] = {}


def _say(progress: Progress | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


def demo_data_dir(config: ExperimentConfig) -> str | None:
    """The folder named `demo-data` that all of the config's data (sources and eval sources) lives in, if any:
    such a config trains on `olmix demo-data`, which `run_swarm` then generates when it is missing."""
    paths = [p for _, ps, _ in config.leaves() for p in ps] + [p for ps in config.eval_sources.values() for p in ps]
    roots = set()
    for p in paths:
        parts = Path(p).parts
        if "demo-data" not in parts or "://" in p:
            return None
        roots.add(str(Path(*parts[: parts.index("demo-data") + 1])))
    return roots.pop() if len(roots) == 1 else None


def ensure_data(config: ExperimentConfig, progress: Progress | None = None) -> None:
    directory = demo_data_dir(config)
    if directory is not None:
        from olmix_core.demo_data import ensure_demo_data

        _say(progress, f"demo data: {directory}")
        ensure_demo_data(directory)


def train_group(
    config: ExperimentConfig,
    swarm: SwarmStore,
    specs: list[RunSpec],
    launcher: Launcher,
    timeout_s: float | None = None,
    progress: Progress | None = None,
) -> dict[str, RunStatus]:
    """Submit the runs and wait for them, resubmitting failed or preempted runs while they have attempts left."""

    def report(statuses: dict[str, RunStatus]) -> None:
        counts = Counter(s.state.value for s in statuses.values())
        _say(progress, "runs: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))

    submit_swarm(config, swarm, specs, launcher)
    return poll_specs(launcher, specs, config.max_attempts, timeout_s, report)


def fit_options(config: ExperimentConfig) -> dict[str, Any]:
    """`config.fit` (and the config's token caps) as `olmix_core.fit.FitOptions` fields."""
    leaves_of = {s.name: [leaf for leaf, _, _ in s.leaves()] for s in config.sources}
    fixed = {src: w for src, w in config.fixed_weights().items() if leaves_of.get(src) == [src]}
    grouped = sorted(set(config.fixed_weights()) - set(fixed))
    if grouped:
        logger.warning(
            "fixed weights of sources with topics (%s) constrain the sampled swarm only: the proposal fixes weights "
            "per leaf, so pass --fixed-weight per topic to `olmix fit` to pin them there",
            ", ".join(grouped),
        )
    return {
        "metrics": config.fit.metrics,
        "objective": config.fit.objective,
        "maximize": list(config.fit.maximize),
        "regression_type": config.fit.regression_type,
        "proposer_type": config.fit.proposer_type,
        "min_weight_per_domain": config.fit.min_weight_per_domain,
        "kl_reg": config.fit.kl_reg,
        "fixed_weights": fixed,
        "target_tokens": float(config.target_tokens),
        "repetition_factor": config.fit.repetition_factor or config.leaf_repetition_caps(),
        "seed": config.seed,
    }


def fit_id_for(ratios_csv: str, metrics_csv: str, options: dict[str, Any]) -> str:
    """Same tables and options, same fit id: a re-run reuses the fit folder (and its verify run)."""
    payload = ratios_csv + "\0" + metrics_csv + "\0" + json.dumps(options, sort_keys=True, default=str)
    return "fit-" + hashlib.sha256(payload.encode()).hexdigest()[:8]


def fit_and_propose(config: ExperimentConfig, swarm: SwarmStore, ratios_path: str, metrics_path: str, output_dir: str | None = None) -> tuple[str, str, Any]:
    """run_fit on the pulled tables into `output_dir` (or the store's fits/{fit id}/), copied into the store too.
    Returns (fit id, fit folder, FitResult)."""
    from olmix_core import reuse
    from olmix_core.fit import run_fit

    options = fit_options(config)
    priors = swarm.store.read_json(swarm.key(SwarmStore.PRIORS))
    options, priors = reuse.reduced_fit_inputs(config, options, priors)
    ratios_csv, metrics_csv = _read(ratios_path), _read(metrics_path)
    fit_id = fit_id_for(ratios_csv, metrics_csv, options)
    target = output_dir or swarm.url("fits", fit_id)
    result = run_fit(ratios_path, metrics_path, target, options, priors=priors)
    if config.reuse is not None and result.proposal is not None:  # the proposal over every leaf, next to the reduced one
        result, _ = reuse.propose_expanded(config, result, str(ratios_path), str(metrics_path), target, options, priors)
        result.files["proposed_weights_expanded"] = reuse.EXPANDED_FILE
    if output_dir:
        for path in sorted(Path(output_dir).rglob("*")):
            rel = path.relative_to(output_dir).as_posix()
            if path.is_file() and (rel.startswith(("models/", "plots/")) or rel in result.files.values()):
                swarm.store.upload(str(path), swarm.fit_key(fit_id, rel))
    return fit_id, target, result


def _read(path: str) -> str:
    from olmix_core.store import open_fs

    fs, p = open_fs(path)
    return fs.cat_file(p).decode()


def objective_values(config: ExperimentConfig, metrics: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, str, list[str]]:
    """The fit's objective (lower is better; maximised metrics enter negated) for each row of `metrics`, computed
    from actual values exactly as `run_fit` computes it from predictions. Returns (values, label, metrics used)."""
    from olmix_core.fit import build_objective

    used = config.fit.metrics or columns
    objective = build_objective(used, np.full(1, 1.0), objective=config.fit.objective, maximize=config.fit.maximize)
    return objective.from_predictions(metrics[objective.metrics].to_numpy(float)), objective.label, objective.metrics


def verify_proposal(
    config: ExperimentConfig,
    swarm: SwarmStore,
    launcher: Launcher,
    weights: dict[str, float],
    predicted: dict[str, Any] | None,
    metrics_path: str,
    fit_id: str,
    timeout_s: float | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Train one more proxy on `weights` and compare its objective with the prediction and the swarm's runs."""
    spec = store_verify_spec(config, swarm, weights)
    _say(progress, f"verify run {spec.run_name}")
    status = train_group(config, swarm, [spec], launcher, timeout_s, progress)[spec.run_name]
    if status.state != RunState.succeeded:
        raise LaunchError(f"verify run {spec.run_name} {status.state.value}: {status.reason or 'see its train.log'}")
    result = swarm.store.read_json(swarm.run_key(spec.run_name, "result.json"))
    swarm_metrics = pd.read_csv(io.StringIO(_read(metrics_path)))
    if swarm_metrics.empty:
        raise OlmixError(f"{metrics_path}: no swarm runs to compare the verify run with")
    columns = [c for c in swarm_metrics.columns if c not in ("run", "name")]
    values, label, used = objective_values(config, swarm_metrics, columns)
    missing = sorted(set(used) - set(result["metrics"]))
    if missing:
        raise OlmixError(f"verify run {spec.run_name}: its result lacks the metrics {missing}")
    actual = float(objective_values(config, pd.DataFrame([result["metrics"]]), columns)[0][0])
    best = int(np.argmin(values))
    pred_metrics = {m: v["predicted"] for m, v in ((predicted or {}).get("metrics") or {}).items()}
    return VerifyResult(
        objective=label,
        actual_objective=actual,
        predicted_objective=((predicted or {}).get("objective") or {}).get("predicted"),
        swarm_best_objective=float(values[best]),
        swarm_median_objective=float(np.median(values)),
        rank=1 + int((values < actual).sum()),
        n_runs=len(values),
        at_or_below_median=bool(actual <= np.median(values)),
        verify_run=spec.run_name,
        best_run=str(swarm_metrics["run"].iloc[best]),
        fit_id=fit_id,
        group_id=swarm.group_id,
        proposed_weights=spec.weights(),
        actual_metrics={m: float(result["metrics"][m]) for m in used},
        predicted_metrics={m: float(v) for m, v in pred_metrics.items() if m in used},
    )


def run_swarm(
    config: ExperimentConfig,
    output_dir: str | None = None,
    group_id: str | None = None,
    verify: bool = True,
    train_command: list[str] | None = None,
    timeout_s: float | None = None,
    progress: Progress | None = None,
) -> SwarmOutcome:
    """The local cycle end to end. With `output_dir`, leaves there: mixtures.json, ratios.csv, metrics.csv,
    pull_report.json, the fit outputs (proposed_weights.json, predicted_performance.json, fit_report.json, models/,
    plots/) and verify.json. `train_command` replaces `olmix train` (tests). Ctrl-C cancels the group's runs."""
    from olmix_core.launch.local import LocalLauncher
    from olmix_core.results import pull_results

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    from olmix_core.reuse import resolve_reuse

    config, plan = resolve_reuse(config)
    if plan is not None:
        _say(progress, plan.summary())
        if not plan.needs_swarm:
            return finish_without_swarm(config, plan, group_id, output_dir)
    ensure_data(config, progress)
    swarm, specs = prepare_swarm(config, group_id, launcher="local")
    _say(progress, f"group {swarm.group_id}: {len(specs)} runs -> {swarm.url()}")
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        Path(output_dir, "mixtures.json").write_text(swarm.store.read_text(swarm.key(SwarmStore.MIXTURES)))
    lap("prepare")
    launcher = LocalLauncher(config, swarm, train_command=train_command)
    try:
        statuses = train_group(config, swarm, specs, launcher, timeout_s, progress)
        lap("train")
        succeeded = [n for n, s in statuses.items() if s.state == RunState.succeeded]
        if not succeeded:
            raise LaunchError(f"no run of group {swarm.group_id} succeeded; see `olmix launch status --group-id {swarm.group_id}`")
        report = pull_results(config, swarm, source="local", output_dir=output_dir)
        _say(progress, f"pulled {len(report.included)} runs x {len(report.metrics)} metrics")
        lap("pull")
        outcome = SwarmOutcome(
            group_id=swarm.group_id, swarm_url=swarm.url(), output_dir=output_dir, runs=statuses, included_runs=report.included,
            files={"ratios": report.ratios_path, "metrics": report.metrics_path, "pull_report": report.report_path},
        )
        fit_id, fit_dir, fit = fit_and_propose(config, swarm, report.ratios_path, report.metrics_path, output_dir)
        lap("fit")
        outcome.fit_id, outcome.fit_dir = fit_id, fit_dir
        outcome.proposed_weights, outcome.predicted_objective = fit.proposed_weights, fit.predicted_objective
        if plan is not None:  # verify (and report) the mixture over every leaf
            from olmix_core.reuse import expand_weights

            outcome.reduced_weights = fit.proposed_weights
            outcome.proposed_weights = expand_weights(config, fit.proposed_weights)
        outcome.files.update({k: posixpath.join(fit_dir, v) for k, v in fit.files.items()})
        _say(progress, f"fit {fit_id}: predicted objective {fit.predicted_objective:.4f}; proposal {_fmt_weights(fit.proposed_weights)}")
        if verify:
            outcome.verify = verify_proposal(
                config, swarm, launcher, outcome.proposed_weights, fit.predicted, report.metrics_path, fit_id, timeout_s, progress
            )
            text = outcome.verify.model_dump_json(indent=2) + "\n"
            outcome.files["verify"] = swarm.store.write_text(swarm.fit_key(fit_id, VERIFY_FILE), text)
            if output_dir:
                Path(output_dir, VERIFY_FILE).write_text(text)
                outcome.files["verify"] = os.path.abspath(os.path.join(output_dir, VERIFY_FILE))
            lap("verify")
    except KeyboardInterrupt:
        launcher.cancel()
        raise
    outcome.seconds = seconds
    if plan is not None:
        from olmix_core.reuse import lineage

        outcome.reuse = lineage(plan)
    swarm.update_metadata(last_fit=fit_id, verify=outcome.verify.model_dump() if outcome.verify else None)
    return outcome


def finish_without_swarm(config: ExperimentConfig, plan: Any, group_id: str | None, output_dir: str | None) -> SwarmOutcome:
    """A reuse update that only removes leaves: no runs; the plan's final mixture is the proposal, stored as
    fits/final/proposed_weights.json (and in `output_dir`) so the next update can reuse it."""
    from olmix_core.launch.swarm_setup import open_swarm, store_config
    from olmix_core.reuse import EXPANDED_FILE, lineage, record_plan, write_final_weights

    swarm = open_swarm(config, group_id)
    store_config(config, swarm)
    swarm.update_metadata(name=config.name, group_id=swarm.group_id, run_names=[], last_fit="final")
    record_plan(swarm, plan)
    weights = plan.final_weights or {}
    files = {"proposed_weights": write_final_weights(swarm.url("fits", "final", "proposed_weights.json"), weights)}
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        for name in ("proposed_weights.json", EXPANDED_FILE):
            files[name.removesuffix(".json")] = write_final_weights(os.path.abspath(os.path.join(output_dir, name)), weights)
    return SwarmOutcome(
        group_id=swarm.group_id, swarm_url=swarm.url(), output_dir=output_dir, runs={}, included_runs=[], fit_id="final",
        proposed_weights=weights, files=files, reuse=lineage(plan),
    )


def _fmt_weights(weights: dict[str, float] | None) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in (weights or {}).items())
