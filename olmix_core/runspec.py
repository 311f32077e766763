"""What one proxy run needs (RunSpec) and where it stands (RunStatus): the launcher/trainer boundary."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from olmix_core.checkpoints import checkpoint_dirs
from olmix_core.config import ExperimentConfig, TrainingConfig
from olmix_core.errors import ArtifactCorrupt, ArtifactMissing
from olmix_core.names import run_name
from olmix_core.store import SwarmStore, open_fs


class MixtureEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    leaf: str
    weight: float
    repetition_factor: float
    paths: list[str]
    max_repetition_factor: float = 1.0


class RunSpec(BaseModel):
    """Everything `olmix train --run-spec URL` needs; written to `runs/{run}/spec.json`."""

    model_config = ConfigDict(extra="forbid")

    run_name: str
    swarm_name: str
    group_id: str
    variant: int
    seed: int
    mixture: list[MixtureEntry]
    max_tokens: int
    sequence_length: int
    dtype: str
    tokenizer: str
    proxy_model_id: str | None = None
    training: TrainingConfig
    eval_sources: dict[str, list[str]] = {}
    eval_interval: int | None = None
    storage_root: str
    checkpoint_dir: str
    result_url: str  # result.json in the store
    status_url: str  # status.json in the store (done/failed marker)
    log_url: str | None = None
    purpose: str = "swarm"  # swarm | verify
    round: int = 0  # adaptive swarms: 0 = the sampled swarm, k = the k-th batch appended by `launch run --append`

    def weights(self) -> dict[str, float]:
        return {m.leaf: m.weight for m in self.mixture}


class RunState(str, enum.Enum):
    pending = "pending"
    submitted = "submitted"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    preempted = "preempted"
    canceled = "canceled"

    @property
    def finished(self) -> bool:
        return self in (RunState.succeeded, RunState.failed, RunState.preempted, RunState.canceled)

    @property
    def active(self) -> bool:
        return self in (RunState.submitted, RunState.running)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunProgress(BaseModel):
    """How far a run's training got: reported by the run itself as it trains (simulated by the in-process launcher)."""

    model_config = ConfigDict(extra="ignore")

    step: int = Field(ge=0)
    total_steps: int = Field(ge=0)
    start_step: int = Field(0, ge=0)  # where this attempt started (a resumed run starts at its checkpoint)
    train_loss: float | None = None  # the last logged train CE loss
    elapsed_s: float = Field(0.0, ge=0.0)  # training time of this attempt when `step` was reached
    updated: str = Field(default_factory=now_iso)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def steps_per_s(self) -> float | None:
        done = self.step - self.start_step
        return done / self.elapsed_s if done > 0 and self.elapsed_s > 0 else None


class RunStatus(BaseModel):
    """`runs/{run}/status.json`: kept by the launcher and the run itself, so any process can read it."""

    model_config = ConfigDict(extra="ignore")

    run_name: str
    state: RunState = RunState.pending
    attempts: int = 0
    launcher: str | None = None
    job_id: str | None = None  # local pid or Beaker experiment id
    url: str | None = None  # Beaker experiment URL
    wandb_url: str | None = None
    reason: str | None = None
    updated: str = Field(default_factory=now_iso)
    progress: RunProgress | None = None
    extra: dict[str, Any] = {}


def parse_status(swarm: SwarmStore, run: str, data: Any) -> RunStatus:
    """A run's status.json content as a RunStatus; invalid content is ArtifactCorrupt naming the file."""
    try:
        return RunStatus.model_validate(data)
    except ValueError as e:
        raise ArtifactCorrupt(f"{swarm.url('runs', run, 'status.json')}: invalid run status ({e})") from None


UNREADABLE = "unreadable status.json"


def unreadable_status(run: str, why: str) -> RunStatus:
    """What a run with a corrupt status.json shows as: failed (so a resume queues it again and writes a fresh status),
    with the reason starting `unreadable status.json` and `extra.unreadable` set."""
    return RunStatus(run_name=run, state=RunState.failed, reason=f"{UNREADABLE}, resume the group to re-create it: {why}", extra={"unreadable": True})


def read_statuses(swarm: SwarmStore) -> dict[str, RunStatus]:
    """Every stored run status of the group, in one listing and one batched read. A corrupt file hides nothing else:
    that run alone reads as `unreadable_status`."""
    corrupt: dict[str, str] = {}
    out: dict[str, RunStatus] = {}
    for name, data in swarm.read_run_files("status.json", corrupt).items():
        try:
            out[name] = parse_status(swarm, name, data)
        except ArtifactCorrupt as e:
            corrupt[name] = str(e)
    out.update({name: unreadable_status(name, why) for name, why in corrupt.items()})
    return dict(sorted(out.items()))


def write_status(swarm: SwarmStore, status: RunStatus, **update: Any) -> RunStatus:
    """Store `status` (with `update` applied and a fresh `updated` time) as runs/{run}/status.json; returns it."""
    new = status.model_copy(update={**update, "updated": now_iso()})
    swarm.store.write_json(swarm.run_key(new.run_name, "status.json"), new.model_dump(mode="json"))
    return new


def mixture_entries(config: ExperimentConfig, mixture: dict[str, list[float]]) -> list[MixtureEntry]:
    """Non-zero leaves of a mixture (olmo-core wants every target ratio in (0, 1])."""
    paths = config.leaf_paths()
    caps = config.leaf_repetition_caps()
    unknown = sorted(set(mixture) - set(paths))
    if unknown:
        raise ValueError(f"mixture names leaves not in the config: {unknown}")
    return [
        MixtureEntry(leaf=leaf, weight=float(w), repetition_factor=float(r), paths=paths[leaf], max_repetition_factor=caps[leaf])
        for leaf, (w, r) in mixture.items()
        if w > 0
    ]


def build_run_specs(
    config: ExperimentConfig,
    swarm: SwarmStore,
    mixtures: list[dict[str, list[float]]],
    purpose: str = "swarm",
    first_variant: int = 0,
    round: int = 0,
) -> list[RunSpec]:
    """One spec per mixture, named `{name}-{group}-{variant:04d}`; checkpoints where the eval script will look."""
    names = [run_name(config.name, swarm.group_id, first_variant + i) for i in range(len(mixtures))]
    ckpt_dirs = checkpoint_dirs(config, swarm.group_id, names, config.beaker.user)
    specs = []
    for i, (mixture, name) in enumerate(zip(mixtures, names)):
        variant = first_variant + i
        specs.append(
            RunSpec(
                run_name=name,
                swarm_name=config.name,
                group_id=swarm.group_id,
                variant=variant,
                seed=config.seed + variant,
                mixture=mixture_entries(config, mixture),
                max_tokens=config.target_tokens,
                sequence_length=config.sequence_length,
                dtype=config.dtype.value,
                tokenizer=config.tokenizer,
                proxy_model_id=config.proxy_model_id,
                training=config.training,
                eval_sources=config.eval_sources,
                eval_interval=config.eval_interval,
                storage_root=swarm.store.root_url,
                checkpoint_dir=ckpt_dirs[name],
                result_url=swarm.store.url(swarm.run_key(name, "result.json")),
                status_url=swarm.store.url(swarm.run_key(name, "status.json")),
                log_url=swarm.store.url(swarm.run_key(name, "train.log")),
                purpose=purpose,
                round=round,
            )
        )
    return specs


def write_run_specs(swarm: SwarmStore, specs: list[RunSpec]) -> list[str]:
    """Write each spec to `runs/{run}/spec.json` (idempotent: same config + seed → same bytes); returns URLs."""
    return [swarm.store.write_json(swarm.run_key(s.run_name, "spec.json"), s.model_dump(mode="json")) for s in specs]


def read_run_spec(url: str) -> RunSpec:
    """Load a spec from a store URL (local path, s3://, gs://)."""
    fs, path = open_fs(url)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise ArtifactMissing(f"{url}: run spec not found") from None
    try:
        return RunSpec.model_validate(json.loads(data))
    except (json.JSONDecodeError, ValueError) as e:
        raise ArtifactCorrupt(f"{url}: invalid run spec ({e})") from None
