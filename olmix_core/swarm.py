"""The whole local cycle in one call: prepare → submit → poll → pull → fit → propose → verify.

`run_swarm` chains the stages of `olmix_core.stages` for `olmix swarm` (and `bench/local_swarm.py`), the same
functions the Prefect flow runs as tasks. Every stage works from the store, so a second call with the same group id
reuses finished work: stored mixtures, succeeded runs, the pull state, the fit of unchanged tables, and the verify
run of an unchanged proposal.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from olmix_core import stages
from olmix_core.config import ExperimentConfig
from olmix_core.reuse import ReuseLineage, ReusePlan, lineage, resolve_reuse
from olmix_core.runspec import RunState, RunStatus
from olmix_core.stages.runs import state_counts
from olmix_core.stages.verification import VerifyResult
from olmix_core.store import SwarmStore

Progress = Callable[[str], None]


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
    rounds: list[dict[str, Any]] = []  # adaptive swarms: one `rounds.RoundSummary` per round


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


def run_swarm(
    config: ExperimentConfig,
    output_dir: str | None = None,
    group_id: str | None = None,
    verify: bool = True,
    train_command: list[str] | None = None,
    timeout_s: float | None = None,
    progress: Progress | None = None,
    rounds: int = 1,
    round_variants: int | None = None,
    min_improvement: float = 0.0,
) -> SwarmOutcome:
    """The local cycle end to end. With `output_dir`, leaves there: mixtures.json, ratios.csv, metrics.csv,
    pull_report.json, the fit outputs (proposed_weights.json, predicted_performance.json, fit_report.json, models/,
    plots/) and verify.json. `train_command` replaces `olmix train` (tests). Ctrl-C cancels the group's runs.

    `rounds` > 1 makes the swarm adaptive (`olmix_core.rounds`): after the sampled swarm, each further round appends
    `round_variants` runs (default: half the variants) chosen by batch Bayesian optimisation on everything so far,
    stopping early when their expected improvement is below `min_improvement`; the last round's fit is verified."""
    from olmix_core.launch.local import LocalLauncher
    from olmix_core.rounds import check_rounds

    check_rounds(rounds, round_variants, min_improvement)

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    config, plan = resolve_reuse(config)
    if plan is not None:
        _say(progress, plan.summary())
        if not plan.needs_swarm:
            return finish_without_swarm(config, plan, group_id, output_dir)
    ensure_data(config, progress)
    prepared = stages.prepare(config, group_id, launcher="local")
    swarm, specs = prepared.swarm, prepared.specs
    _say(progress, f"group {swarm.group_id}: {len(specs)} runs -> {swarm.url()}")
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        Path(output_dir, "mixtures.json").write_text(swarm.store.read_text(swarm.key(SwarmStore.MIXTURES)))
    lap("prepare")
    launcher = LocalLauncher(config, swarm, train_command=train_command)
    try:
        on_change = None if progress is None else (lambda st: progress("runs: " + state_counts(st)))
        statuses = stages.train(config, swarm, specs, launcher, timeout_s, on_change)
        lap("train")
        if not any(s.state == RunState.succeeded for s in statuses.values()):
            raise stages.NoRunSucceeded(f"no run of group {swarm.group_id} succeeded", group_id=swarm.group_id)
        pulled = stages.pull(config, swarm, "local", output_dir)
        pulled.require_results()
        report = pulled.report
        _say(progress, f"pulled {len(report.included)} runs x {len(report.metrics)} metrics")
        lap("pull")
        outcome = SwarmOutcome(
            group_id=swarm.group_id, swarm_url=swarm.url(), output_dir=output_dir, runs=statuses, included_runs=report.included,
            files={"ratios": report.ratios_path, "metrics": report.metrics_path, "pull_report": report.report_path},
        )
        fit = stages.fit(config, swarm)
        lap("fit")
        proposal = stages.propose(config, swarm, fit.fit_id)
        lap("propose")
        if rounds > 1:
            from olmix_core.rounds import run_rounds

            (pulled, fit, proposal), summaries = run_rounds(
                config, swarm, launcher, (pulled, fit, proposal), rounds, round_variants or max(1, config.variants // 2),
                min_improvement, output_dir, timeout_s, progress,
            )
            outcome.rounds = [s.model_dump() for s in summaries]
            outcome.included_runs = pulled.report.included
            outcome.runs = {**statuses, **{n: s for n, s in launcher.status().items() if n not in statuses}}
            lap("rounds")
        fit_dir = _fit_folder(swarm, fit.fit_id, output_dir)
        outcome.fit_id, outcome.fit_dir = fit.fit_id, fit_dir
        outcome.proposed_weights, outcome.predicted_objective = proposal.weights, proposal.predicted_objective
        outcome.reduced_weights = proposal.reduced_weights
        outcome.files.update({k: posixpath.join(fit_dir, v) for k, v in {**fit.files, **proposal.files}.items()})
        _say(progress, f"fit {fit.fit_id}: predicted objective {proposal.predicted_objective:.4f}; proposal {_fmt_weights(proposal.weights)}")
        if verify:
            outcome.verify = stages.verify(config, swarm, launcher, proposal, timeout_s, progress)
            outcome.files["verify"] = swarm.url("fits", fit.fit_id, stages.VERIFY_FILE)
            if output_dir:
                path = Path(output_dir, stages.VERIFY_FILE)
                path.write_text(outcome.verify.model_dump_json(indent=2) + "\n")
                outcome.files["verify"] = str(path.resolve())
            lap("verify")
    except KeyboardInterrupt:
        launcher.cancel()
        raise
    outcome.seconds = seconds
    outcome.reuse = lineage(plan) if plan is not None else None
    stages.record_fit(swarm, pulled, fit, proposal, outcome.verify.actual_objective if outcome.verify else None)
    return outcome


def finish_without_swarm(config: ExperimentConfig, plan: ReusePlan, group_id: str | None, output_dir: str | None) -> SwarmOutcome:
    """A reuse update that only removes leaves: no runs; the plan's final mixture is the proposal, stored as
    fits/final/proposed_weights.json (and in `output_dir`) so the next update can reuse it."""
    from olmix_core.metadata import update_metadata
    from olmix_core.reuse import EXPANDED_FILE, record_plan, write_final_weights
    from olmix_core.stages.setup import store_config

    swarm = stages.open_swarm(config, group_id)
    store_config(config, swarm)
    update_metadata(swarm, name=config.name, group_id=swarm.group_id, run_names=[])
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


def _fit_folder(swarm: SwarmStore, fit_id: str, output_dir: str | None) -> str:
    """The fit's folder in the store, or its copy in `output_dir` (models/, plots/ and the fit's files)."""
    if not output_dir:
        return swarm.url("fits", fit_id)
    source = swarm.store.path(swarm.fit_key(fit_id)).rstrip("/")
    for path in swarm.store.fs.find(source):
        rel = path[len(source) + 1:]
        if rel in ("ratios.csv", "metrics.csv", stages.VERIFY_FILE):  # the pulled tables are there already
            continue
        target = Path(output_dir, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(swarm.store.fs.cat_file(path))
    return os.path.abspath(output_dir)


def _fmt_weights(weights: dict[str, float] | None) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in (weights or {}).items())
