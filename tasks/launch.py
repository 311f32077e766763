"""Submission and completion polling: one task submits the group, one task polls the whole group.

Polling makes one batched `launcher.status()` call per round (never a call or a task per run), keeps the swarm's
live artifacts (summary, runs table with each run's step and loss, progress) up to date in place, resubmits
preempted or failed runs until they reach `config.max_attempts`, and gives up with a `PollTimeout` (a clear failed
state, no retry) when the group is not finished in time.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from prefect import get_run_logger, task
from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ArtifactMissing, ConfigError, OlmixError
from olmix_core.launch import swarm_setup
from olmix_core.launch.base import BACKENDS, Launcher, get_launcher
from olmix_core.launch.wait import poll_group
from olmix_core.runspec import RunSpec, RunStatus
from tasks._common import OUTSIDE_WORLD, RESULT_SERIALIZER, SWARM_CACHE, open_swarm_store
from tasks.summary import swarm_summary

LAUNCHERS = (*BACKENDS, "inprocess")
LIVE_EVERY_S = 3.0  # the live artifacts are updated at most this often while polling


class NoRunSucceeded(OlmixError):
    """Every run of the group ended without a result, after its allowed attempts."""


class PollSummary(BaseModel):
    """What polling saw last: every run's state, and what it cost."""

    states: dict[str, str]
    attempts: dict[str, int]
    succeeded: list[str]
    failed: list[str]  # finished without a result after the last allowed attempt (or canceled)
    resubmitted: dict[str, int]  # run -> resubmissions made by this poll
    rounds: int
    status_calls: int
    seconds: float


def make_launcher(kind: str, config: ExperimentConfig, group_id: str, options: dict[str, Any] | None = None) -> Launcher:
    """The group's launcher: `local` / `beaker` (settings from the config) or `inprocess` (simulated runs, with
    `options`: see `InProcessOptions`)."""
    swarm = open_swarm_store(config, group_id)
    if kind == "inprocess":
        from olmix_core.launch.inprocess import InProcessLauncher

        return InProcessLauncher(config, swarm, options)
    if options:
        raise ConfigError(f"launcher_options: only the inprocess launcher takes options (launcher {kind!r} is set up by the config)")
    try:
        return get_launcher(kind, config, swarm)
    except ValueError:
        raise ConfigError(f"launcher {kind!r} is not one of {list(LAUNCHERS)}") from None


def read_specs(config: ExperimentConfig, group_id: str, runs: list[str]) -> list[RunSpec]:
    """The stored specs of `runs` (one batched read)."""
    stored = open_swarm_store(config, group_id).read_run_files("spec.json")
    missing = [r for r in runs if r not in stored]
    if missing:
        raise ArtifactMissing(f"group {group_id}: no spec.json for runs {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return [RunSpec.model_validate(stored[r]) for r in runs]


@task(name="submit-runs", task_run_name="submit {launcher} {config.name}/{group_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def submit_runs(config: ExperimentConfig, group_id: str, runs: list[str], launcher: str,
                launcher_options: dict[str, Any] | None = None) -> dict[str, str]:
    """Submit the group's runs (swarm_setup.submit_swarm): idempotent by run name (runs already queued, running or
    finished are left alone), and cached, so a re-run of the flow does not even ask the launcher again."""
    backend = make_launcher(launcher, config, group_id, launcher_options)
    statuses = swarm_setup.submit_swarm(config, open_swarm_store(config, group_id), read_specs(config, group_id, runs), backend)
    swarm_summary(config, group_id, "submitted", statuses)
    get_run_logger().info("submitted %d runs of %s/%s with the %s launcher", len(runs), config.name, group_id, launcher)
    return {name: st.state.value for name, st in statuses.items()}


@task(name="poll-runs", task_run_name="poll {config.name}/{group_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def poll_runs(config: ExperimentConfig, group_id: str, runs: list[str], launcher: str,
              launcher_options: dict[str, Any] | None = None, poll_interval: float = 10.0,
              timeout_s: float | None = None) -> PollSummary:
    """Wait for `runs` to finish (`olmix_core.launch.wait.poll_group`: one `status()` per round, resubmitting
    preempted/failed runs below `config.max_attempts`), updating the live artifacts as runs report their steps.
    PollTimeout after `timeout_s`."""
    log = get_run_logger()
    backend = make_launcher(launcher, config, group_id, launcher_options)
    seen: dict[str, Any] = {"states": {}, "shown_at": -LIVE_EVERY_S, "attempts": {}}

    def on_round(statuses: dict[str, RunStatus], unfinished: list[str]) -> None:
        for name, st in statuses.items():
            if st.attempts > seen["attempts"].get(name, st.attempts):
                log.warning("resubmitted %s (attempt %d of %d): %s", name, st.attempts, config.max_attempts, st.reason)
            seen["attempts"][name] = st.attempts
        states = {n: s.state.value for n, s in statuses.items()}
        if states != seen["states"]:
            log.info("%s/%s: %s", config.name, group_id, ", ".join(f"{k} {v}" for k, v in sorted(Counter(states.values()).items())))
            seen["states"] = states
        if unfinished and time.monotonic() - seen["shown_at"] >= LIVE_EVERY_S:
            swarm_summary(config, group_id, "training", statuses)
            seen["shown_at"] = time.monotonic()

    result = poll_group(backend, runs, config.max_attempts, lambda names: read_specs(config, group_id, names),
                        poll_interval, timeout_s, on_round)
    statuses = result.statuses
    swarm_summary(config, group_id, "training finished", statuses)
    failed = result.failed
    if failed:
        log.warning("%d runs did not succeed: %s", len(failed), ", ".join(f"{n} ({statuses[n].state.value})" for n in failed[:10]))
    if not result.succeeded:
        raise NoRunSucceeded(f"group {group_id}: no run succeeded (e.g. {failed[0]}: {statuses[failed[0]].reason})")
    return PollSummary(
        states={n: s.state.value for n, s in statuses.items()},
        attempts={n: s.attempts for n, s in statuses.items()},
        succeeded=result.succeeded, failed=failed, resubmitted=result.resubmitted, rounds=result.rounds,
        status_calls=result.rounds, seconds=result.seconds,
    )
