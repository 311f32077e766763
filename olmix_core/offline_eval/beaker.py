"""The `beaker` backend: one Beaker experiment per run, each running the local evaluator on that run alone.

The job runs `olmix eval launch --backend local --run RUN` against the swarm's stored config, so it writes the
same dashboard layout as a local evaluation. Specs are built by the Beaker launcher (`experiment_spec`: image,
budget, clusters, priority, secrets by name) with the task's command replaced, on one node with at most one GPU.
Experiments are named `{run}-eval-step{N}`: submitting again finds the existing one (a name conflict) and creates
nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from olmix_core.config import ExperimentConfig
from olmix_core.convert.group import FinishedRun
from olmix_core.errors import ConfigError
from olmix_core.runspec import RunSpec
from olmix_core.store import SwarmStore

if TYPE_CHECKING:
    from beaker import Beaker


def eval_command(config_url: str, group_id: str, run: str, dashboard: str) -> list[str]:
    """argv of an eval job (no shell: values reach it as separate arguments)."""
    return ["olmix", "eval", "launch", "--config", config_url, "--group-id", group_id, "--backend", "local", "--run", run, "--dashboard", dashboard]


def experiment_name(run: str, step: int | None) -> str:
    return f"{run}-eval" if step is None else f"{run}-eval-step{step}"


class BeakerEvalSubmitter:
    """Submits eval experiments for a swarm; `client` is injectable (tests use the Beaker stand-in server)."""

    def __init__(self, config: ExperimentConfig, swarm: SwarmStore, prefix: str, client: Beaker | None = None,
                 retry_attempts: int = 5, retry_delay_s: float = 1.0) -> None:
        from olmix_core.launch.beaker import check_beaker_config

        check_beaker_config(config)
        if "://" not in prefix and not (config.beaker.weka and prefix.startswith("/weka/")):
            raise ConfigError(f"evaluation.results_prefix: Beaker eval jobs must write to s3://, gs:// or (with beaker.weka) /weka/ (got {prefix!r})")
        self.config = config
        self.swarm = swarm
        self._client = client
        self.retry_attempts = retry_attempts
        self.retry_delay_s = retry_delay_s
        self._specs: dict[str, Any] | None = None
        self._ws: Any = None
        self._user: str | None = config.beaker.user
        self._config_url: str | None = None

    @property
    def client(self) -> Beaker:
        from olmix_core.launch.beaker import beaker_client

        if self._client is None:
            self._client = beaker_client(self.config)
        return self._client

    def _retry(self, fn: Any, what: str) -> Any:
        from olmix_core.launch.beaker import with_retries

        return with_retries(fn, what, self.retry_attempts, self.retry_delay_s)

    def config_url(self) -> str:
        """The swarm's config in the store (written there if the launch did not)."""
        if self._config_url is None:
            key = self.swarm.key(SwarmStore.CONFIG)
            if not self.swarm.store.exists(key):
                self.swarm.store.write_text(key, self.config.to_yaml())
            self._config_url = self.swarm.store.url(key)
        return self._config_url

    def spec(self, fr: FinishedRun, step: int | None, dashboard: str) -> Any:
        """The BeakerExperimentSpec of one run's eval job."""
        from olmix_core.errors import ArtifactMissing
        from olmix_core.launch.beaker import experiment_spec, secret_env

        if self._specs is None:
            self._specs = self.swarm.read_run_files("spec.json")
        if fr.run not in self._specs:
            raise ArtifactMissing(f"{self.swarm.url('runs', fr.run, 'spec.json')}: no run spec (needed for the Beaker job)")
        run_spec = RunSpec.model_validate(self._specs[fr.run])
        secrets = secret_env(self.config, self._user if self.config.beaker.secrets else self.user)
        one_node = self.config.model_copy(update={"beaker": self.config.beaker.model_copy(update={"nodes": 1, "gpus": min(self.config.beaker.gpus, 1)})})
        bspec = experiment_spec(one_node, run_spec, self.swarm.store.url(self.swarm.run_key(fr.run, "spec.json")), secrets)
        task = bspec.tasks[0]
        task.name = "eval"
        task.command = eval_command(self.config_url(), self.swarm.group_id, fr.run, dashboard)
        bspec.description = f"olmix offline eval of {fr.run} (step {step}) into dashboard {dashboard}"
        return bspec

    @property
    def user(self) -> str:
        if self._user is None:
            self._user = self._retry(lambda: self.client.user_name, "current user")
        return self._user

    def submit(self, fr: FinishedRun, step: int | None, dashboard: str) -> dict[str, Any]:
        """Create the run's eval experiment, or adopt the one already there; {state, experiment id, url, name}."""
        from beaker.exceptions import BeakerExperimentConflict

        name = experiment_name(fr.run, step)
        bspec = self.spec(fr, step, dashboard)
        if self._ws is None:
            self._ws = self._retry(lambda: self.client.workspace.get(self.config.beaker.workspace), f"workspace {self.config.beaker.workspace}")
        try:
            wl = self._retry(lambda: self.client.experiment.create(name=name, spec=bspec, workspace=self._ws), f"create {name}")
            existing = False
        except BeakerExperimentConflict:
            wl = self._retry(lambda: self.client.workload.get(f"{self.user}/{name}"), f"look up {name}")
            existing = True
        return {"state": "submitted", "experiment": wl.experiment.id, "url": self.client.workload.url(wl), "name": name, "existing": existing}

    def dry_run(self, fr: FinishedRun, step: int | None, dashboard: str) -> dict[str, Any]:
        return {"state": "dry-run", "name": experiment_name(fr.run, step), "spec": self.spec(fr, step, dashboard).to_json()}
