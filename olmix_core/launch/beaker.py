"""The Beaker launcher: one Beaker experiment per proxy run, built with beaker-py 2.x.

Each experiment runs `olmix train --run-spec <store URL of runs/{run}/spec.json>` in `beaker.image`, named after
the run, in one Beaker group per swarm (`{name}-{group id}`). Design choices:

- Idempotent by name. Before creating anything the launcher lists the swarm's experiments (one paged
  ListWorkloads call filtered by workspace and the `{name}-{group id}-` name prefix); runs that already have one,
  or whose status in the store is finished, are skipped. A name conflict from the server (a create whose reply was
  lost, a listing that lags) means "it exists": the experiment is looked up by name and adopted.
- Attempts. Beaker names are unique per author, so attempt n > 1 of a run is the experiment `{run}-a{n}`; the
  highest attempt found in Beaker is the run's current one. `resubmit` creates the next attempt, so a crashed
  resubmission re-run finds the attempt it made and creates nothing.
- Statuses in bulk: the listing gives every experiment's workload status; only runs that ended canceled or failed
  need their job (one ListJobs call each, once: the classification is cached in status.json) to tell a preemption
  (`canceled_code` system/user/sibling preemption, node unavailable/unhealthy) from a failure or a cancellation.
  Every state is written to `runs/{run}/status.json` (job_id = experiment id, url = its Beaker page), so
  `olmix launch status` works from any machine. A run's own `succeeded` marker (written with its result) wins.
- Transient errors (UNAVAILABLE, HTTP 429/5xx, connection errors) are retried with exponential backoff, a bounded
  number of times. (beaker-py itself also retries reads: UNAVAILABLE on Get/List calls, every 2 s, without a limit.)
- Secrets by name only: `beaker.secrets` maps env var -> Beaker secret; `olmix workspace sync` writes them from
  this machine's environment. GOOGLE_APPLICATION_CREDENTIALS is special: its secret holds the key file's JSON and is
  mounted as a file that the variable points at.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shlex
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError, LaunchError
from olmix_core.launch.base import RETRY_STATES, Launcher
from olmix_core.metadata import update_metadata
from olmix_core.runspec import RunSpec, RunState, RunStatus, read_statuses, write_status
from olmix_core.store import SwarmStore

if TYPE_CHECKING:
    from beaker import Beaker, BeakerExperimentSpec
    from beaker import beaker_pb2 as pb2

log = logging.getLogger(__name__)
T = TypeVar("T")

RESULT_PATH = "/results"
GCP_CREDENTIALS_VAR = "GOOGLE_APPLICATION_CREDENTIALS"
GCP_CREDENTIALS_MOUNT = "/var/run/secrets/olmix/gcp-credentials.json"
TORCHRUN_PORT = 29400
RETRY_ATTEMPTS = 5  # tries per Beaker call on transient errors
RETRY_DELAY_S = 1.0  # first backoff; doubles per retry (jittered), at most RETRY_MAX_DELAY_S
RETRY_MAX_DELAY_S = 30.0
ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Beaker cancelation codes that mean "the machine was taken away", not "the run is broken": resubmitting helps.
PREEMPTION_CODE_NAMES = ("SYSTEM_PREEMPTION", "USER_PREEMPTION", "SIBLING_TASK_PREEMPTION", "NODE_UNAVAILABLE", "NODE_UNHEALTHY")


# names -------------------------------------------------------------------------------------------
def beaker_group_name(swarm: SwarmStore) -> str:
    return f"{swarm.name}-{swarm.group_id}"


def attempt_name(run: str, attempt: int) -> str:
    """The experiment name of a run's attempt: the run name, then `{run}-a2`, `{run}-a3`, ..."""
    return run if attempt <= 1 else f"{run}-a{attempt}"


def _name_pattern(swarm: SwarmStore) -> re.Pattern[str]:
    return re.compile(rf"^(?P<run>{re.escape(beaker_group_name(swarm))}-\d{{4,}})(?:-a(?P<attempt>\d+))?$")


# what a job needs --------------------------------------------------------------------------------
def _config_urls(config: ExperimentConfig) -> list[str]:
    urls = [config.storage_root, config.training.checkpoint_root or "", *config.checkpoint_roots.values()]
    urls += [p for paths in config.leaf_paths().values() for p in paths]
    urls += [p for paths in config.eval_sources.values() for p in paths]
    return [u for u in urls if u]


def secret_env(config: ExperimentConfig, user: str | None) -> dict[str, str]:
    """Env var -> Beaker secret name for the jobs: `beaker.secrets` when set (taken as complete), else
    `{user}_{VAR}` for what the config needs (WandB online: WANDB_API_KEY; s3:// paths: the AWS key pair;
    gs:// paths: GOOGLE_APPLICATION_CREDENTIALS)."""
    if config.beaker.secrets:
        return dict(config.beaker.secrets)
    needed: list[str] = []
    if config.training.wandb.mode == "online":
        needed.append("WANDB_API_KEY")
    urls = _config_urls(config)
    if any(u.startswith("s3://") for u in urls):
        needed += ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    if any(u.startswith("gs://") for u in urls):
        needed.append(GCP_CREDENTIALS_VAR)
    if needed and not user:
        raise ConfigError("beaker.user: needed to name the default secrets ({user}_WANDB_API_KEY, ...); set it or list beaker.secrets")
    return {var: f"{user}_{var}" for var in needed}


def weka_buckets(config: ExperimentConfig) -> list[str]:
    """Weka buckets the config reads or writes (`/weka/<bucket>/...` paths), mounted at /weka/<bucket>."""
    return sorted({u.split("/")[2] for u in _config_urls(config) if u.startswith("/weka/") and len(u.split("/")) > 2 and u.split("/")[2]})


def clusters(config: ExperimentConfig) -> list[str]:
    return list(config.beaker.clusters) or [config.cluster]


def check_beaker_config(config: ExperimentConfig) -> None:
    """Everything the Beaker path needs from the config, all problems in one ConfigError naming the fields."""
    problems = []
    if not config.workspace:
        problems.append("workspace: required for the Beaker launcher (e.g. ai2/olmix)")
    if not config.budget:
        problems.append("budget: required for Beaker experiments (e.g. ai2/oe-data)")
    if any(c == "local" or not c for c in clusters(config)):
        problems.append("cluster / beaker.clusters: name Beaker clusters (e.g. ai2/jupiter), not 'local'")
    root = config.storage_root
    if not (root.startswith(("s3://", "gs://")) or (config.weka and root.startswith("/weka/"))):
        problems.append(f"storage_root: Beaker jobs must read the run specs, so use s3://, gs:// or (with weka: true) a /weka/ path (got {root!r})")
    if config.weka and not weka_buckets(config):
        problems.append("weka: true but no /weka/<bucket>/ path in storage_root, checkpoint roots, sources or eval_sources")
    if config.beaker.max_submit_workers < 1:
        problems.append(f"beaker.max_submit_workers: must be >= 1 (got {config.beaker.max_submit_workers})")
    if config.gpus < 0:
        problems.append(f"gpus: must be >= 0 (got {config.gpus})")
    for var, name in config.beaker.secrets.items():
        if not ENV_VAR_RE.match(var):
            problems.append(f"beaker.secrets: {var!r} is not an environment variable name")
        if not SECRET_NAME_RE.match(name):
            problems.append(f"beaker.secrets.{var}: {name!r} is not a Beaker secret name ([A-Za-z0-9][A-Za-z0-9._-]*)")
    if problems:
        raise ConfigError("config not ready for Beaker:\n  " + "\n  ".join(problems))


def train_command(spec_url: str, nodes: int = 1, gpus: int = 0) -> list[str]:
    """argv of a run's task: `olmix train --run-spec URL`, under torchrun for several GPUs or nodes. Only the
    multi-node form goes through a shell (for Beaker's rank variables); the URL is quoted there."""
    base = ["olmix", "train", "--run-spec", spec_url]
    if nodes <= 1 and gpus <= 1:
        return base
    if nodes <= 1:
        return ["torchrun", "--standalone", f"--nproc-per-node={gpus}", "--no-python", *base]
    script = " ".join([
        "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={max(gpus, 1)}", '--node-rank="$BEAKER_REPLICA_RANK"',
        '--master-addr="$BEAKER_LEADER_REPLICA_HOSTNAME"', f"--master-port={TORCHRUN_PORT}", "--no-python",
        *(shlex.quote(a) for a in base),
    ])
    return ["bash", "-c", script]


def experiment_spec(
    config: ExperimentConfig, spec: RunSpec, spec_url: str, secrets: Mapping[str, str], attempt: int = 1, beaker_group_id: str | None = None
) -> "BeakerExperimentSpec":
    """The Beaker experiment of one run attempt: one task, secrets by name, in the swarm's Beaker group."""
    from beaker import (
        BeakerConstraints,
        BeakerDataMount,
        BeakerEnvVar,
        BeakerExperimentSpec,
        BeakerImageSource,
        BeakerJobPriority,
        BeakerResultSpec,
        BeakerTaskContext,
        BeakerTaskResources,
        BeakerTaskSpec,
    )

    env = [BeakerEnvVar(name=var, secret=name) for var, name in sorted(secrets.items()) if var != GCP_CREDENTIALS_VAR]
    mounts = [BeakerDataMount.new(f"/weka/{b}", weka=b) for b in weka_buckets(config)] if config.weka else []
    if GCP_CREDENTIALS_VAR in secrets:
        env.append(BeakerEnvVar(name=GCP_CREDENTIALS_VAR, value=GCP_CREDENTIALS_MOUNT))
        mounts.append(BeakerDataMount.new(GCP_CREDENTIALS_MOUNT, secret=secrets[GCP_CREDENTIALS_VAR]))
    image = config.beaker.image
    source = BeakerImageSource(docker=image.removeprefix("docker://")) if image.startswith("docker://") else BeakerImageSource(beaker=image)
    multi = config.nodes > 1
    with warnings.catch_warnings():
        # `preemptible` is deprecated in favour of min_runtime/auto_resume, which say something else; the API takes it.
        warnings.simplefilter("ignore", DeprecationWarning)
        context = BeakerTaskContext(priority=BeakerJobPriority[config.priority.value], preemptible=config.preemptible)
    task = BeakerTaskSpec(
        name="train",
        image=source,
        context=context,
        command=train_command(spec_url, config.nodes, config.gpus),
        env_vars=env,
        datasets=mounts or None,
        resources=BeakerTaskResources(gpu_count=config.gpus) if config.gpus else None,
        constraints=BeakerConstraints(cluster=clusters(config)),
        result=BeakerResultSpec(path=RESULT_PATH),
        replicas=config.nodes if multi else None,
        leader_selection=multi,
        host_networking=multi,
        propagate_failure=True if multi else None,
        propagate_preemption=True if multi else None,
    )
    description = f"olmix {spec.swarm_name} group {spec.group_id} variant {spec.variant} ({spec.purpose}) attempt {attempt}"
    return BeakerExperimentSpec(budget=config.budget, description=description, tasks=[task], groups=[beaker_group_id] if beaker_group_id else None)


# client and retries ------------------------------------------------------------------------------
def beaker_client(config: ExperimentConfig) -> "Beaker":
    """`Beaker.from_env()` (BEAKER_TOKEN or ~/.beaker/config.yml), with the config's workspace as the default."""
    from beaker import Beaker
    from beaker.exceptions import BeakerConfigurationError

    try:
        return Beaker.from_env(check_for_upgrades=False, default_workspace=config.workspace)
    except BeakerConfigurationError as e:
        raise LaunchError(f"Beaker client: {e} (set BEAKER_TOKEN or run `beaker account login`)") from None


def is_transient(e: BaseException) -> bool:
    """Errors worth retrying: the server unavailable or overloaded, a dropped connection."""
    import grpc
    import requests
    from beaker.exceptions import BeakerServerError

    if isinstance(e, BeakerServerError):
        return True
    if isinstance(e, requests.HTTPError):
        return e.response is not None and e.response.status_code in (429, 500, 502, 503, 504)
    if isinstance(e, (requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(e, grpc.RpcError) and isinstance(e, grpc.Call):
        return e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)
    return False


def with_retries(fn: Callable[[], T], what: str, attempts: int | None = None, delay_s: float | None = None) -> T:
    """`fn()`, retried on transient errors with jittered exponential backoff, at most `attempts` tries
    (defaults: RETRY_ATTEMPTS, RETRY_DELAY_S)."""
    attempts = RETRY_ATTEMPTS if attempts is None else attempts
    delay_s = RETRY_DELAY_S if delay_s is None else delay_s
    for i in range(max(1, attempts)):
        try:
            return fn()
        except Exception as e:
            if i >= attempts - 1 or not is_transient(e):
                raise
            wait = min(delay_s * 2**i, RETRY_MAX_DELAY_S) * (0.5 + random.random() / 2)
            log.warning("%s: transient Beaker error (%s: %s); retry %d/%d in %.1fs", what, type(e).__name__, e, i + 1, attempts - 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _beaker_errors() -> tuple[type[BaseException], ...]:
    import grpc
    import requests
    from beaker.exceptions import BeakerError

    return (BeakerError, requests.RequestException, grpc.RpcError)


# the launcher ------------------------------------------------------------------------------------
@dataclass
class _Attempt:
    """The latest Beaker experiment of a run."""

    attempt: int
    workload: "pb2.Workload"


class BeakerLauncher(Launcher):
    """A swarm's runs as Beaker experiments (see the module doc). `client` is injectable (tests use a stand-in
    server); by default `Beaker.from_env()` is opened on first use."""

    kind = "beaker"
    poll_s = 60.0

    def __init__(
        self,
        config: ExperimentConfig,
        swarm: SwarmStore,
        client: "Beaker | None" = None,
        retry_attempts: int | None = None,
        retry_delay_s: float | None = None,
    ) -> None:
        super().__init__(config, swarm)
        check_beaker_config(config)
        self._client = client
        self.retry_attempts = retry_attempts
        self.retry_delay_s = retry_delay_s
        self._ws: pb2.Workspace | None = None
        self._user: str | None = config.beaker.user
        self.group_name = beaker_group_name(swarm)
        self.group_url: str | None = None

    # plumbing --------------------------------------------------------------------------------
    @property
    def client(self) -> "Beaker":
        if self._client is None:
            self._client = beaker_client(self.config)
        return self._client

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return with_retries(fn, what, self.retry_attempts, self.retry_delay_s)

    @property
    def workspace(self) -> "pb2.Workspace":
        if self._ws is None:
            self._ws = self._retry(lambda: self.client.workspace.get(self.config.workspace), f"workspace {self.config.workspace}")
        return self._ws

    @property
    def org(self) -> "pb2.Organization | None":
        return self.workspace.owner_org if self.workspace.owner_org.id else None

    @property
    def user(self) -> str:
        if self._user is None:
            self._user = self._retry(lambda: self.client.user_name, "current user")
        return self._user

    def secrets(self) -> dict[str, str]:
        return secret_env(self.config, self._user if self.config.beaker.secrets else self.user)

    def spec_url(self, run: str) -> str:
        return self.swarm.store.url(self.swarm.run_key(run, "spec.json"))

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        """Beaker and transport errors as LaunchError (OlmixError: the CLI prints one line, exit 1)."""
        try:
            return fn()
        except _beaker_errors() as e:
            raise LaunchError(f"Beaker: {what} failed: {type(e).__name__}: {e}") from e

    # listing and statuses --------------------------------------------------------------------
    def _experiments(self) -> dict[str, _Attempt]:
        """The latest attempt of every run of this swarm in Beaker: one paged, filtered ListWorkloads call."""
        from beaker import BeakerWorkloadType

        pattern = _name_pattern(self.swarm)
        prefix = f"{self.group_name}-"
        workloads = self._retry(
            lambda: list(self.client.workload.list(org=self.org, workspace=self.workspace, workload_type=BeakerWorkloadType.experiment,
                                                   name_or_description=prefix)),
            f"list experiments {prefix}*",
        )
        out: dict[str, _Attempt] = {}
        for wl in workloads:
            m = pattern.match(wl.experiment.name)
            if not m:
                continue
            attempt = int(m["attempt"] or 1)
            if m["run"] not in out or attempt > out[m["run"]].attempt:
                out[m["run"]] = _Attempt(attempt, wl)
        return out

    def _stored(self) -> dict[str, RunStatus]:
        return read_statuses(self.swarm)

    def _write(self, status: RunStatus) -> RunStatus:
        return write_status(self.swarm, status)

    def _classify(self, wl: "pb2.Workload") -> tuple[RunState, str | None, dict[str, Any]]:
        """A workload's state; for a canceled or failed one, its latest job tells preemption from failure."""
        from beaker import BeakerSortOrder
        from beaker import beaker_pb2 as pb2

        S, C = pb2.WorkloadStatus, pb2.CancelationCode
        status = wl.status
        extra: dict[str, Any] = {"beaker_status": S.Name(status).removeprefix("STATUS_").lower()}
        if status in (S.STATUS_RUNNING, S.STATUS_STOPPING, S.STATUS_UPLOADING_RESULTS):
            return RunState.running, None, extra
        if status == S.STATUS_SUCCEEDED:
            return RunState.succeeded, None, extra
        if status not in (S.STATUS_CANCELED, S.STATUS_FAILED):
            return RunState.submitted, None, extra  # submitted, queued, ready to start, initializing
        extra["beaker_final"] = wl.experiment.id  # classified once; later polls reuse it
        if wl.experiment.HasField("canceled"):
            return RunState.canceled, "canceled in Beaker" + (f": {wl.experiment.canceled_for}" if wl.experiment.canceled_for else ""), extra
        if not wl.experiment.tasks:
            return RunState.failed, "the experiment has no task", extra
        task = wl.experiment.tasks[0]
        jobs = self._retry(lambda: list(self.client.job.list(org=self.org, task=task, sort_order=BeakerSortOrder.descending, limit=1)),
                           f"latest job of {wl.experiment.name}")
        if not jobs:
            return RunState.failed, "no job was started", extra
        js = jobs[0].status
        code = js.canceled_code
        code_name = C.Name(code).removeprefix("CANCELATION_CODE_").lower() if code in C.values() else str(code)
        if code:
            extra["canceled_code"] = code_name
        detail = "; ".join(x for x in [js.message, js.canceled_for] if x)
        suffix = f": {detail}" if detail else ""
        if code in {C.Value(f"CANCELATION_CODE_{n}") for n in PREEMPTION_CODE_NAMES}:
            return RunState.preempted, f"preempted ({code_name}){suffix}", extra
        if status == S.STATUS_CANCELED and code == C.CANCELATION_CODE_MANUAL:
            return RunState.canceled, f"canceled in Beaker{suffix}", extra
        why = f"exit code {js.exit_code}" if js.exit_code else (code_name if code else "failed")
        return RunState.failed, f"{why}{suffix}", extra

    def _merge(self, run: str, prev: RunStatus | None, latest: _Attempt | None) -> RunStatus:
        """The run's status from its latest experiment and what the store has (the run's own succeeded marker wins;
        a finished classification of the same experiment is reused without asking Beaker again)."""
        if latest is None:
            return prev or RunStatus(run_name=run, state=RunState.pending, launcher=self.kind)
        wl = latest.workload
        exp_id = wl.experiment.id
        base = prev or RunStatus(run_name=run)
        same = base.job_id == exp_id
        this_attempt = same or base.job_id is None  # no job id: written by the run itself (or never submitted)
        fields = {"launcher": self.kind, "job_id": exp_id, "url": self.client.workload.url(wl), "attempts": latest.attempt}
        if base.state == RunState.succeeded and this_attempt:
            return base.model_copy(update=fields)
        if same and base.state.finished and base.extra.get("beaker_final") == exp_id:
            return base
        state, reason, extra = self._classify(wl)
        if same and base.state == RunState.canceled and base.extra.get("canceled_by") == "olmix" and not state.finished:
            return base  # our cancel request is in; Beaker is still stopping the job
        if this_attempt and base.state == state and base.reason:
            reason = base.reason  # keep what the run itself said (e.g. the trainer's failure reason)
        return base.model_copy(update={**fields, "state": state, "reason": reason,
                                       "extra": {**base.extra, **extra, "beaker_name": wl.experiment.name}})

    def _statuses(self, experiments: dict[str, _Attempt] | None = None) -> dict[str, RunStatus]:
        stored = self._stored()
        experiments = self._experiments() if experiments is None else experiments
        names = set(self.swarm.run_names()) | set(stored) | set(experiments)
        out = {}
        for run in sorted(names):
            new = self._merge(run, stored.get(run), experiments.get(run))
            prev = stored.get(run)
            if run in experiments and (prev is None or prev.model_dump(exclude={"updated"}) != new.model_dump(exclude={"updated"})):
                new = self._write(new)
            out[run] = new
        return out

    # group and creation ----------------------------------------------------------------------
    def _group(self) -> "pb2.Group":
        """The swarm's Beaker group, created on first use."""
        def find() -> "pb2.Group | None":
            groups = self._retry(lambda: list(self.client.group.list(org=self.org, workspace=self.workspace, name_or_description=self.group_name)),
                                 f"find group {self.group_name}")
            return next((g for g in groups if g.name == self.group_name), None)

        group = find()
        if group is None:
            try:
                group = self._retry(lambda: self.client.group.create(
                    self.group_name, workspace=self.workspace, description=f"olmix swarm {self.swarm.name}, group id {self.swarm.group_id}"),
                    f"create group {self.group_name}")
            except _beaker_errors():
                group = find()  # created by a concurrent launch, or our create's reply was lost
                if group is None:
                    raise
        self.group_url = self.client.group.url(group)
        return group

    def _create(self, spec: RunSpec, attempt: int, bspec: "BeakerExperimentSpec", prev: RunStatus | None) -> RunStatus:
        """Create one experiment (adopting an existing one of the same name) and record it in the store."""
        from beaker.exceptions import BeakerExperimentConflict

        name = attempt_name(spec.run_name, attempt)
        key = self.swarm.run_key(spec.run_name, "spec.json")
        if not self.swarm.store.exists(key):  # the job reads its spec from the store; an existing one is never replaced
            self.swarm.store.write_json(key, spec.model_dump(mode="json"))
        try:
            wl = self._retry(lambda: self.client.experiment.create(name=name, spec=bspec, workspace=self.workspace), f"create {name}")
            created = True
        except BeakerExperimentConflict:
            wl = self._retry(lambda: self.client.workload.get(f"{self.user}/{name}"), f"look up {name}")
            created = False
        base = prev or RunStatus(run_name=spec.run_name)
        status = base.model_copy(update={
            "state": RunState.submitted, "attempts": attempt, "launcher": self.kind, "job_id": wl.experiment.id,
            "url": self.client.workload.url(wl), "reason": None,
            "extra": {k: v for k, v in base.extra.items() if k not in ("beaker_final", "canceled_code", "canceled_by")}
            | {"beaker_name": name, "beaker_workspace": self.config.workspace, "beaker_group": self.group_name,
               "created": created, "submitted_at": time.time()},
        })
        return self._write(status)

    def _create_all(self, todo: list[tuple[RunSpec, int]], current: dict[str, RunStatus]) -> dict[str, RunStatus]:
        """Create experiments in parallel (at most beaker.max_submit_workers at once); one LaunchError at the end
        names every run that could not be submitted (the others are submitted and recorded)."""
        if not todo:
            return {}
        group = self._group()
        secrets = self.secrets()
        _ = self.user  # resolve once, before the pool (conflicts look experiments up by author/name)
        bspecs = [experiment_spec(self.config, s, self.spec_url(s.run_name), secrets, attempt=a, beaker_group_id=group.id) for s, a in todo]
        workers = min(self.config.beaker.max_submit_workers, len(todo))
        errors: dict[str, BaseException] = {}
        out: dict[str, RunStatus] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="beaker-submit") as pool:
            futures = {pool.submit(self._create, s, a, b, current.get(s.run_name)): s.run_name for (s, a), b in zip(todo, bspecs)}
            for fut, run in futures.items():
                try:
                    out[run] = fut.result()
                except _beaker_errors() as e:
                    errors[run] = e
        update_metadata(self.swarm, beaker_workspace=self.config.workspace, beaker_group=self.group_name, beaker_group_id=group.id,
                        beaker_group_url=self.group_url)
        if errors:
            lines = [f"{run}: {type(e).__name__}: {e}" for run, e in sorted(errors.items())]
            raise LaunchError(f"Beaker: could not submit {len(errors)} of {len(todo)} runs (the others were submitted; "
                              "submit again to retry):\n  " + "\n  ".join(lines))
        return out

    # interface -------------------------------------------------------------------------------
    def _submit(self, specs: list[RunSpec], retry: bool) -> dict[str, RunStatus]:
        """Attempt 1 for runs with no experiment that are not finished in the store; with `retry`, also the next
        attempt for runs whose latest one failed, was preempted or canceled."""
        experiments = self._experiments()
        current = self._statuses(experiments)
        todo = []
        for s in specs:
            st = current.get(s.run_name)
            if s.run_name not in experiments:
                if st is None or not st.state.finished or (retry and st.state in RETRY_STATES):
                    todo.append((s, 1))
            elif retry and st is not None and st.state in RETRY_STATES:
                todo.append((s, experiments[s.run_name].attempt + 1))
        current.update(self._create_all(todo, current))
        return {s.run_name: current[s.run_name] for s in specs}

    def submit(self, specs: list[RunSpec]) -> dict[str, RunStatus]:
        """Create an experiment for each run that has none yet and is not finished in the store."""
        return self._guard("submit", lambda: self._submit(specs, retry=False))

    def resubmit(self, specs: list[RunSpec]) -> dict[str, RunStatus]:
        """A new attempt (`{run}-a{n}`) for each run that failed, was preempted or canceled; runs never submitted are
        submitted; the others are left alone. The caller enforces max_attempts."""
        return self._guard("resubmit", lambda: self._submit(specs, retry=True))

    def status(self) -> dict[str, RunStatus]:
        """Every run of the group: one paged listing of its experiments plus one job lookup per run that newly ended
        canceled or failed; changed states are written to the store. Without Beaker credentials on this machine:
        the states last recorded in the store, with a warning."""
        try:
            _ = self.client
        except LaunchError as e:
            log.warning("%s; showing the run states last recorded in the store", e)
            stored = self._stored()
            names = set(self.swarm.run_names()) | set(stored)
            return {r: stored.get(r) or RunStatus(run_name=r, state=RunState.pending, launcher=self.kind) for r in sorted(names)}
        return self._guard("status", self._statuses)

    def cancel(self) -> dict[str, RunStatus]:
        """Cancel every unfinished experiment of the group in one CancelWorkloads call; runs never submitted are
        marked canceled too (so a re-run submit leaves them alone; resubmit starts them)."""
        def run() -> dict[str, RunStatus]:
            experiments = self._experiments()
            current = self._statuses(experiments)
            active = [experiments[r].workload for r, st in current.items() if r in experiments and not st.state.finished]
            if active:
                self._retry(lambda: self.client.workload.cancel(*active), f"cancel {len(active)} experiments")
            for r, st in current.items():
                if not st.state.finished:
                    reason = "canceled by olmix" if r in experiments else "canceled before it was submitted"
                    current[r] = self._write(st.model_copy(update={"state": RunState.canceled, "reason": reason,
                                                                   "extra": {**st.extra, "canceled_by": "olmix"}}))
            return current

        return self._guard("cancel", run)


# secrets -----------------------------------------------------------------------------------------
@dataclass
class SecretSync:
    env_var: str
    secret: str
    action: str  # written | would write | kept (not in the environment; the workspace has it) | missing


def _secret_value(var: str, environ: Mapping[str, str]) -> str | None:
    value = environ.get(var)
    if not value:
        return None
    if var == GCP_CREDENTIALS_VAR:  # a path to the key file; the secret holds the file's content
        try:
            with open(value) as f:
                return f.read()
        except OSError as e:
            raise ConfigError(f"{GCP_CREDENTIALS_VAR}: cannot read the credentials file it names ({e.strerror})") from None
    return value


def sync_secrets(
    config: ExperimentConfig, client: "Beaker | None" = None, environ: Mapping[str, str] | None = None, dry_run: bool = False,
) -> list[SecretSync]:
    """Write the jobs' secrets (see `secret_env`) into the config's workspace from this machine's environment.
    Values are never logged or returned."""
    if not config.workspace:
        raise ConfigError("workspace: required to write Beaker secrets (e.g. ai2/olmix)")
    for var, name in config.beaker.secrets.items():
        if not ENV_VAR_RE.match(var) or not SECRET_NAME_RE.match(name):
            raise ConfigError(f"beaker.secrets: {var!r} -> {name!r} is not an env var -> Beaker secret name pair")
    environ = os.environ if environ is None else environ
    client = client or beaker_client(config)

    def run() -> list[SecretSync]:
        ws = with_retries(lambda: client.workspace.get(config.workspace), f"workspace {config.workspace}")
        user = config.beaker.user or (None if config.beaker.secrets else with_retries(lambda: client.user_name, "current user"))
        mapping = secret_env(config, user)
        existing = {s.name for s in with_retries(lambda: list(client.secret.list(workspace=ws)), "list secrets")}
        out = []
        for var, name in sorted(mapping.items()):
            value = _secret_value(var, environ)
            if value is None:
                action = "kept" if name in existing else "missing"
            elif dry_run:
                action = "would write"
            else:
                with_retries(lambda name=name, value=value: client.secret.write(name, value, workspace=ws), f"write secret {name}")
                action = "written"
            out.append(SecretSync(var, name, action))
        return out

    try:
        return run()
    except _beaker_errors() as e:
        raise LaunchError(f"Beaker: workspace sync failed: {type(e).__name__}: {e}") from e


def format_sync(results: Iterable[SecretSync]) -> str:
    rows = [(r.env_var, r.secret, r.action) for r in results]
    if not rows:
        return "no secrets needed (beaker.secrets is empty and the config needs no credentials)"
    w0 = max(len("ENV VAR"), *(len(r[0]) for r in rows))
    w1 = max(len("SECRET"), *(len(r[1]) for r in rows))
    lines = [f"{'ENV VAR':<{w0}}  {'SECRET':<{w1}}  ACTION"] + [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)
