"""Submit and poll tasks: one task submits the group, one task polls the whole group (olmix_core.stages.runs).

Polling makes one batched `launcher.status()` call per round (never a call or a task per run); `PollProgress`
decides each round what changed, and this task shows it: the swarm's live artifacts (summary, runs table with each
run's step and loss, progress), updated in place; log lines for new states and resubmissions. A group not finished
in time gives a `PollTimeout` (a clear failed state, no retry).
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from olmix_core import stages
from olmix_core.config import ExperimentConfig
from olmix_core.launch.base import Launcher
from olmix_core.runspec import RunStatus
from olmix_core.stages import PollSummary
from tasks._common import OUTSIDE_WORLD, RESULT_SERIALIZER, SWARM_CACHE, open_swarm_store
from tasks.summary import swarm_summary


def make_launcher(kind: str, config: ExperimentConfig, group_id: str, options: dict[str, Any] | None = None) -> Launcher:
    """The group's launcher (`olmix_core.stages.make_launcher`)."""
    return stages.make_launcher(kind, config, open_swarm_store(config, group_id), options)


@task(name="submit-runs", task_run_name="submit {launcher} {config.name}/{group_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def submit_runs(config: ExperimentConfig, group_id: str, runs: list[str], launcher: str,
                launcher_options: dict[str, Any] | None = None) -> dict[str, str]:
    """Submit the group's runs: idempotent by run name (runs already queued, running or finished are left alone),
    and cached, so a re-run of the flow does not even ask the launcher again."""
    swarm = open_swarm_store(config, group_id)
    statuses = stages.submit_runs(config, swarm, runs, make_launcher(launcher, config, group_id, launcher_options))
    swarm_summary(config, group_id, "submitted", statuses)
    get_run_logger().info("submitted %d runs of %s/%s with the %s launcher", len(runs), config.name, group_id, launcher)
    return {name: st.state.value for name, st in statuses.items()}


@task(name="poll-runs", task_run_name="poll {config.name}/{group_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def poll_runs(config: ExperimentConfig, group_id: str, runs: list[str], launcher: str,
              launcher_options: dict[str, Any] | None = None, poll_interval: float = 10.0,
              timeout_s: float | None = None) -> PollSummary:
    """Wait for `runs` to finish (`olmix_core.stages.poll`: one `status()` per round, resubmitting preempted/failed
    runs below `config.max_attempts`). PollTimeout after `timeout_s`; NoRunSucceeded when none succeeded."""
    log = get_run_logger()
    watcher = stages.PollProgress()

    def on_round(statuses: dict[str, RunStatus], unfinished: list[str]) -> None:
        news = watcher.observe(statuses, unfinished)
        for name, attempt in news.resubmitted.items():
            log.warning("resubmitted %s (attempt %d of %d): %s", name, attempt, config.max_attempts, statuses[name].reason)
        if news.states is not None:
            log.info("%s/%s: %s", config.name, group_id, news.states)
        if news.show_due and unfinished:
            swarm_summary(config, group_id, "training", statuses)

    swarm = open_swarm_store(config, group_id)
    backend = make_launcher(launcher, config, group_id, launcher_options)
    try:
        summary = stages.poll(config, swarm, backend, runs, poll_interval, timeout_s, on_round)
    finally:
        if watcher.last is not None:
            swarm_summary(config, group_id, "training finished", watcher.last)
    if summary.failed:
        log.warning("%d runs did not succeed: %s", len(summary.failed),
                    ", ".join(f"{n} ({summary.states[n]})" for n in summary.failed[:10]))
    return summary
