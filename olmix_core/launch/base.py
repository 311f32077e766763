"""The launcher interface shared by the local and Beaker backends (and in-process test launchers)."""

from __future__ import annotations

import abc
import importlib

from olmix_core.config import ExperimentConfig
from olmix_core.runspec import RunSpec, RunState, RunStatus
from olmix_core.store import SwarmStore

# kind -> "module:Class"; imported on use so the local path never needs beaker-py's gRPC stack loaded.
BACKENDS = {
    "local": "olmix_core.launch.local:LocalLauncher",
    "beaker": "olmix_core.launch.beaker:BeakerLauncher",
}

RETRY_STATES = (RunState.failed, RunState.preempted, RunState.canceled)  # a new submission may follow these


class Launcher(abc.ABC):
    """One swarm's runs on one backend. Idempotent by run name: submitting a run that already exists or finished
    is a no-op that returns its current status, so a crashed launch can be re-run safely."""

    kind: str = "abstract"
    poll_s: float = 30.0  # seconds between status polls while waiting for runs

    def __init__(self, config: ExperimentConfig, swarm: SwarmStore) -> None:
        self.config = config
        self.swarm = swarm

    @abc.abstractmethod
    def submit(self, specs: list[RunSpec]) -> dict[str, RunStatus]:
        """Submit the runs not yet submitted; statuses of all given runs."""

    @abc.abstractmethod
    def status(self) -> dict[str, RunStatus]:
        """Statuses of every run in the group, with a bounded number of backend calls (not one per run)."""

    @abc.abstractmethod
    def cancel(self) -> dict[str, RunStatus]:
        """Cancel every unfinished run of the group; statuses after cancelling."""

    @abc.abstractmethod
    def resubmit(self, specs: list[RunSpec]) -> dict[str, RunStatus]:
        """Submit again runs that were preempted or failed, counting an attempt (the caller enforces the limit)."""

    def heal(self, statuses: dict[str, RunStatus]) -> None:  # noqa: B027 - an optional hook; most launchers need none
        """Called on every poll round: a chance to restart a stalled queue (the local launcher's supervisor)."""

    def settled(self, status: RunStatus) -> bool:
        """Whether a finished run's status is final (the local launcher waits until the supervisor recorded the exit)."""
        return True


def get_launcher(kind: str, config: ExperimentConfig, swarm: SwarmStore) -> Launcher:
    if kind not in BACKENDS:
        raise ValueError(f"launcher {kind!r} is not one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[kind].split(":")
    return getattr(importlib.import_module(module), cls)(config, swarm)
