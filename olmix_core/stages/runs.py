"""The submit and poll stages: a group's runs on a launcher, and waiting for them to finish.

`submit_swarm` submits (idempotent by run name; failed, preempted or canceled runs again while they have attempts
left). `poll` waits with one batched `status()` per round (`olmix_core.launch.wait.poll_group`), resubmitting below
`max_attempts`, and returns a `PollSummary`. `PollProgress` decides, round by round, what a watcher should show
(resubmissions, new states, whether the live view — states and the steps runs reported — is due for an update); the
Prefect poll task only turns its decisions into artifacts and log lines.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ArtifactMissing, ConfigError, OlmixError
from olmix_core.launch.base import BACKENDS, RETRY_STATES, Launcher, get_launcher
from olmix_core.launch.wait import poll_group
from olmix_core.metadata import update_metadata
from olmix_core.runspec import RunSpec, RunState, RunStatus, read_statuses, write_status
from olmix_core.store import SwarmStore

LAUNCHERS = (*BACKENDS, "inprocess")
SHOW_EVERY_S = 3.0  # the live view of the runs (states, steps) is updated at most this often while polling

Statuses = dict[str, RunStatus]


class NoRunSucceeded(OlmixError):
    """Every run of the group ended without a result, after its allowed attempts."""

    def __init__(self, *args: object, group_id: str | None = None) -> None:
        super().__init__(*args)
        self.group_id = group_id


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


def make_launcher(kind: str, config: ExperimentConfig, swarm: SwarmStore, options: dict[str, Any] | None = None) -> Launcher:
    """The group's launcher: `local` / `beaker` (settings from the config) or `inprocess` (simulated runs, with
    `options`: see `InProcessOptions`)."""
    if kind == "inprocess":
        from olmix_core.launch.inprocess import InProcessLauncher

        return InProcessLauncher(config, swarm, options)
    if options:
        raise ConfigError(f"launcher_options: only the inprocess launcher takes options (launcher {kind!r} is set up by the config)",
                          fields=("launcher_options",))
    try:
        return get_launcher(kind, config, swarm)
    except ValueError:
        raise ConfigError(f"launcher {kind!r} is not one of {list(LAUNCHERS)}", fields=("launcher",)) from None


def read_specs(swarm: SwarmStore, runs: list[str]) -> list[RunSpec]:
    """The stored specs of `runs` (one batched read)."""
    stored = swarm.read_run_files("spec.json")
    missing = [r for r in runs if r not in stored]
    if missing:
        raise ArtifactMissing(f"group {swarm.group_id}: no spec.json for runs {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return [RunSpec.model_validate(stored[r]) for r in runs]


def submit_swarm(config: ExperimentConfig, swarm: SwarmStore, specs: list[RunSpec], launcher: Launcher) -> Statuses:
    """Submit the group: new runs are submitted, runs that failed, were preempted or canceled are submitted again
    while they have attempts left (`max_attempts`), queued/running/succeeded runs are left alone. Job ids and URLs
    go into metadata.json. Statuses a damaged file made wrong are repaired first (`repair_run_files`)."""
    repair_run_files(swarm)
    statuses = launcher.submit(specs)
    retry = [s for s in specs if statuses[s.run_name].state in RETRY_STATES and statuses[s.run_name].attempts < config.max_attempts]
    if retry:
        statuses.update(launcher.resubmit(retry))
    jobs = {name: {"job_id": st.job_id, "url": st.url} for name, st in statuses.items() if st.url}
    fields: dict[str, Any] = {"launcher": launcher.kind}
    if jobs:  # remote jobs with a page (Beaker); local pids live in each run's status.json
        fields["jobs"] = {**{n: j.model_dump() for n, j in swarm.metadata().jobs.items()}, **jobs}
    update_metadata(swarm, **fields)
    return statuses


def repair_run_files(swarm: SwarmStore) -> dict[str, str]:
    """Before a (re)submission, statuses that a corrupt file made wrong are rewritten: a run whose status.json cannot
    be read but whose result.json can is succeeded again (without training); a succeeded run whose result.json cannot
    be read is failed, so this submission trains it again (it would otherwise drop out of every table for good). A
    run with neither readable is left failed-unreadable, which the submission queues again. {run: what was done}."""
    corrupt: dict[str, str] = {}
    results = swarm.read_run_files("result.json", corrupt)
    for run, data in results.items():
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            corrupt[run] = f"{swarm.url('runs', run, 'result.json')}: not a result record (no metrics)"
    done: dict[str, str] = {}
    for run, st in read_statuses(swarm).items():
        if st.extra.get("unreadable") and run in results and run not in corrupt:
            write_status(swarm, RunStatus(run_name=run, state=RunState.succeeded, attempts=1, reason="status re-created from result.json"))
            done[run] = "status re-created from its result.json"
        elif st.state == RunState.succeeded and run in corrupt:
            write_status(swarm, st, state=RunState.failed, reason=f"unreadable result.json, trained again: {corrupt[run]}")
            done[run] = "unreadable result.json: trained again"
    return done


def submit_runs(config: ExperimentConfig, swarm: SwarmStore, runs: list[str], launcher: Launcher) -> Statuses:
    """`submit_swarm` for runs whose specs are in the store."""
    return submit_swarm(config, swarm, read_specs(swarm, runs), launcher)


def poll(
    config: ExperimentConfig,
    swarm: SwarmStore,
    launcher: Launcher,
    runs: list[str],
    poll_s: float | None = None,
    timeout_s: float | None = None,
    on_round: Callable[[Statuses, list[str]], None] | None = None,
    specs: list[RunSpec] | None = None,
) -> PollSummary:
    """Wait for `runs` to finish, resubmitting preempted/failed runs below `config.max_attempts` (their specs from
    `specs`, else the store). `poll_s`: default the launcher's interval. `on_round(statuses, unfinished)` sees
    every round. PollTimeout after `timeout_s`; NoRunSucceeded when no run succeeded."""
    by_name = {s.run_name: s for s in specs or []}

    def load(names: list[str]) -> list[RunSpec]:
        todo = [n for n in names if n not in by_name]
        if todo:
            by_name.update({s.run_name: s for s in read_specs(swarm, todo)})
        return [by_name[n] for n in names]

    result = poll_group(launcher, runs, config.max_attempts, load, launcher.poll_s if poll_s is None else poll_s, timeout_s, on_round)
    statuses = result.statuses
    if not result.succeeded:
        first = result.failed[0]
        raise NoRunSucceeded(f"group {swarm.group_id}: no run succeeded (e.g. {first}: {statuses[first].state.value}, "
                             f"{statuses[first].reason or 'see its train.log'})", group_id=swarm.group_id)
    return PollSummary(
        states={n: s.state.value for n, s in statuses.items()},
        attempts={n: s.attempts for n, s in statuses.items()},
        succeeded=result.succeeded, failed=result.failed, resubmitted=result.resubmitted, rounds=result.rounds,
        status_calls=result.rounds, seconds=result.seconds,
    )


def train(
    config: ExperimentConfig,
    swarm: SwarmStore,
    specs: list[RunSpec],
    launcher: Launcher,
    timeout_s: float | None = None,
    on_change: Callable[[Statuses], None] | None = None,
) -> Statuses:
    """Submit, then poll until every run finished; `on_change` sees the statuses whenever a run's state changed.
    Unlike `poll`, a group where nothing succeeded is returned, not raised (the caller reports it)."""
    submit_swarm(config, swarm, specs, launcher)
    return wait_for(config, swarm, launcher, specs, timeout_s, on_change)


def wait_for(
    config: ExperimentConfig,
    swarm: SwarmStore,
    launcher: Launcher,
    specs: list[RunSpec],
    timeout_s: float | None = None,
    on_change: Callable[[Statuses], None] | None = None,
) -> Statuses:
    """Poll `specs`' runs until all finished (resubmitting as `poll` does); the final statuses, whatever they are."""
    last: dict[str, str] = {}

    def on_round(statuses: Statuses, unfinished: list[str]) -> None:
        states = {n: s.state.value for n, s in statuses.items()}
        if on_change is not None and states != last:
            on_change(statuses)
        last.clear()
        last.update(states)

    by_name = {s.run_name: s for s in specs}
    return poll_group(launcher, list(by_name), config.max_attempts, lambda names: [by_name[n] for n in names], launcher.poll_s,
                      timeout_s, on_round).statuses


def state_counts(statuses: Statuses) -> str:
    """`2 running, 3 succeeded`: the runs per state."""
    counts = Counter(s.state.value for s in statuses.values())
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


class RoundNews(BaseModel):
    """What changed in one poll round, as far as someone watching cares."""

    resubmitted: dict[str, int] = {}  # run -> its new attempt number
    states: str | None = None  # the runs per state, when any state changed
    show_due: bool = False  # states or reported steps changed, and the live view is older than SHOW_EVERY_S


class PollProgress:
    """Remembers what a watcher was last shown, so each round reports only what changed."""

    def __init__(self, show_every_s: float = SHOW_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.show_every_s = show_every_s
        self.clock = clock
        self.states: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.shown: dict[str, tuple[str, int | None]] = {}
        self.shown_at = -float("inf")
        self.last: Statuses | None = None  # the statuses of the latest round

    def observe(self, statuses: Statuses, unfinished: list[str]) -> RoundNews:
        self.last = statuses
        news = RoundNews()
        for name, st in statuses.items():
            if st.attempts > self.attempts.get(name, st.attempts):
                news.resubmitted[name] = st.attempts
            self.attempts[name] = st.attempts
        states = {n: s.state.value for n, s in statuses.items()}
        if states != self.states:
            self.states = states
            news.states = state_counts(statuses)
        view = {n: (s.state.value, s.progress.step if s.progress else None) for n, s in statuses.items()}
        if view != self.shown and self.clock() - self.shown_at >= self.show_every_s:
            news.show_due = True
            self.shown, self.shown_at = view, self.clock()
        return news
