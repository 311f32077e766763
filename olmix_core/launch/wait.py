"""Waiting for a group's runs, for any launcher: `poll_group`, the one polling loop (batched `status()` until every
run is finished, resubmitting preempted and failed runs up to their attempt limit). The poll stage
(`olmix_core.stages.runs`) and `LocalLauncher.wait` run it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from olmix_core.errors import LaunchError, OlmixError
from olmix_core.launch.base import Launcher
from olmix_core.runspec import RunSpec, RunState, RunStatus

Statuses = dict[str, RunStatus]
RESUBMIT = (RunState.failed, RunState.preempted)


class PollTimeout(OlmixError):
    """The group did not finish in time (its runs keep going; poll again to wait for them)."""


@dataclass
class PollResult:
    """The runs' last statuses and what polling cost."""

    statuses: Statuses
    resubmitted: dict[str, int] = field(default_factory=dict)  # run -> resubmissions made while polling
    rounds: int = 0
    seconds: float = 0.0

    @property
    def succeeded(self) -> list[str]:
        return [n for n, s in self.statuses.items() if s.state == RunState.succeeded]

    @property
    def failed(self) -> list[str]:
        return [n for n, s in self.statuses.items() if s.state != RunState.succeeded]


def poll_group(
    launcher: Launcher,
    runs: list[str],
    max_attempts: int,
    load_specs: Callable[[list[str]], list[RunSpec]],
    poll_s: float,
    timeout_s: float | None = None,
    on_round: Callable[[Statuses, list[str]], None] | None = None,
) -> PollResult:
    """Poll `runs` with one batched `status()` per round until all are finished and settled, resubmitting
    preempted or failed runs while they have fewer than `max_attempts` attempts (`load_specs` gives their specs).

    `on_round(statuses, unfinished)` sees every round. PollTimeout after `timeout_s`; LaunchError when the launcher
    does not know a run."""
    started = time.monotonic()
    specs: dict[str, RunSpec] = {}
    result = PollResult(statuses={})
    while True:
        result.rounds += 1
        current = launcher.status()
        missing = sorted(set(runs) - set(current))
        if missing:
            raise LaunchError(f"group {launcher.swarm.group_id}: the launcher does not know runs {missing[:5]} (were they submitted?)")
        statuses = {n: current[n] for n in runs}
        retry = [n for n, s in statuses.items() if s.state in RESUBMIT and s.attempts < max_attempts]
        if retry:
            todo = [n for n in retry if n not in specs]
            if todo:
                specs.update({s.run_name: s for s in load_specs(todo)})
            for name in retry:
                result.resubmitted[name] = result.resubmitted.get(name, 0) + 1
            statuses.update(launcher.resubmit([specs[n] for n in retry]))
        unfinished = [n for n in runs if n in retry or not (statuses[n].state.finished and launcher.settled(statuses[n]))]
        result.statuses = statuses
        if on_round is not None:
            on_round(statuses, unfinished)
        if not unfinished:
            result.seconds = round(time.monotonic() - started, 3)
            return result
        launcher.heal(statuses)
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise PollTimeout(
                f"group {launcher.swarm.group_id}: {len(unfinished)} of {len(runs)} runs unfinished after {timeout_s:.0f}s "
                f"(e.g. {', '.join(unfinished[:3])}); they keep running: re-run with group_id={launcher.swarm.group_id} to wait for them"
            )
        time.sleep(poll_s)
