"""Build the olmo-core trainer for a RunSpec, train (resuming from the latest checkpoint), record the result."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olmo_core.data import TokenizerConfig
from olmo_core.distributed.parallel import DataParallelType
from olmo_core.distributed.utils import get_rank, get_world_size
from olmo_core.optim import AdamWConfig, CosWithWarmup
from olmo_core.train import Duration, TrainerConfig
from olmo_core.train.callbacks import (
    Callback,
    CheckpointerCallback,
    ConfigSaverCallback,
    ConsoleLoggerCallback,
    WandBCallback,
)
from olmo_core.train.train_module import (
    TransformerDataParallelConfig,
    TransformerTrainModuleConfig,
)

from olmix_core.errors import ConfigError
from olmix_core.runspec import RunProgress, RunSpec
from olmix_core.store import open_fs
from olmix_core.train import result as results
from olmix_core.train.data import (
    Batching,
    batching,
    build_data_loader,
    build_dataset,
    build_lm_evaluator,
)
from olmix_core.train.model import build_model, build_tokenizer


@dataclass
class MetricsCollector(Callback):
    """The latest value of every logged metric. Part of the checkpoint, so a run resumed after its last step
    still reports its final train loss."""

    latest: dict[str, float] = field(default_factory=dict)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.latest.update({k: float(v) for k, v in metrics.items()})

    def state_dict(self) -> dict[str, Any]:
        return {"latest": dict(self.latest)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.latest.update(state_dict.get("latest", {}))


@dataclass
class ProgressReporter(Callback):
    """Step and train loss into the run's status.json as it trains (at most every `every_s`, and at the end), so
    `olmix launch status` and the Prefect UI show real progress for local and Beaker runs alike. Rank 0 only."""

    spec: RunSpec | None = None
    total_steps: int = 0
    every_s: float = 5.0
    _start_step: int = 0
    _started: float = 0.0
    _last: float = -float("inf")
    _loss: float | None = None

    def pre_train(self) -> None:
        self._start_step, self._started = self.step, time.monotonic()

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if results.TRAIN_LOSS_METRIC in metrics:
            self._loss = float(metrics[results.TRAIN_LOSS_METRIC])
        if time.monotonic() - self._last >= self.every_s:
            self._report(step)

    def post_train(self) -> None:
        self._report(self.step)

    def _report(self, step: int) -> None:
        if self.spec is None or get_rank() != 0:
            return
        self._last = time.monotonic()
        try:
            results.report_progress(self.spec, RunProgress(
                step=step, total_steps=self.total_steps, start_step=min(self._start_step, step), train_loss=self._loss,
                elapsed_s=round(time.monotonic() - self._started, 2),
            ))
        except Exception as e:  # the store being briefly unreachable must not stop training; the next report retries
            print(f"olmix: could not record progress at step {step}: {e}", flush=True)


@dataclass
class OlmixWandBCallback(WandBCallback):
    """olmo-core's WandB callback, plus offline mode (no API key needed) and a stable run id (the run name),
    so a resumed run continues the same WandB run."""

    offline: bool = False
    run_id: str | None = None
    url: str | None = None

    def pre_train(self) -> None:
        if not self.enabled or get_rank() != 0:
            return
        if not self.offline and "WANDB_API_KEY" not in os.environ:
            raise ConfigError("training.wandb.mode is online but WANDB_API_KEY is not set in the environment")
        wandb_dir = Path(os.environ.get("WANDB_DIR") or self.trainer.work_dir / "wandb")
        wandb_dir.mkdir(parents=True, exist_ok=True)
        self.wandb.init(
            dir=wandb_dir,
            project=self.project,
            entity=self.entity,
            group=self.group,
            name=self.name,
            id=self.run_id,
            resume=None if self.offline else "allow",
            mode="offline" if self.offline else "online",
            tags=self.tags,
            config=self.config,
        )
        self._run_path = self.run.path  # type: ignore[union-attr]
        self.url = None if self.offline else self.run.url  # type: ignore[union-attr]


def work_dir_for(spec: RunSpec) -> str:
    """A local scratch folder for olmo-core's dataset indices and WandB files (`OLMIX_WORK_DIR` overrides)."""
    base = os.environ.get("OLMIX_WORK_DIR") or os.path.join(tempfile.gettempdir(), "olmix-work")
    return os.path.join(base, spec.group_id, spec.run_name)


def checkpoint_folder(spec: RunSpec) -> str:
    """The save folder: local paths made absolute, URLs (s3://, gs://) kept as they are."""
    fs, path = open_fs(spec.checkpoint_dir)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return os.path.abspath(path) if protocol in ("file", "local") else spec.checkpoint_dir.rstrip("/")


def build_train_module(spec: RunSpec, batch: Batching, world_size: int = 1) -> TransformerTrainModuleConfig:
    """AdamW with a cosine schedule after a linear warm-up of `warmup_fraction` of the steps."""
    t = spec.training
    warmup = round(t.warmup_fraction * batch.steps)
    rank_batch = batch.global_batch_tokens // world_size
    return TransformerTrainModuleConfig(
        rank_microbatch_size=min(batch.microbatch_tokens, rank_batch),
        max_sequence_length=spec.sequence_length,
        optim=AdamWConfig(lr=t.learning_rate, weight_decay=t.weight_decay, betas=(0.9, 0.95), eps=1e-8),
        scheduler=CosWithWarmup(warmup=max(warmup, 1) if t.warmup_fraction > 0 else 0),
        max_grad_norm=1.0,
        dp_config=TransformerDataParallelConfig(name=DataParallelType.ddp) if world_size > 1 else None,
    )


def wandb_config(spec: RunSpec) -> dict[str, Any]:
    """What a WandB run records about the proxy: enough to tie it back to its swarm and mixture."""
    return {
        "olmix": {
            "run_name": spec.run_name,
            "swarm_name": spec.swarm_name,
            "group_id": spec.group_id,
            "variant": spec.variant,
            "purpose": spec.purpose,
            "seed": spec.seed,
            "max_tokens": spec.max_tokens,
        },
        "mixture": spec.weights(),
        "group_id": spec.group_id,
    }


def build_trainer(spec: RunSpec, batch: Batching, tokenizer: TokenizerConfig, work_dir: str) -> TrainerConfig:
    """Checkpoints to `spec.checkpoint_dir` (olmo-core layout `step<N>/`, each with the config.json HF conversion
    reads), resume from the latest one there, the LM evaluator, and WandB when asked for."""
    t = spec.training
    log_every = max(1, min(10, batch.steps // 20 or 1))
    cfg = TrainerConfig(
        save_folder=checkpoint_folder(spec),
        work_dir=work_dir,
        save_overwrite=True,  # a half-written step<N>/ from a killed attempt is rewritten, not an error
        max_duration=Duration.steps(batch.steps),
        metrics_collect_interval=log_every,
        cancel_check_interval=10,
    )
    cfg.add_callback(
        "checkpointer",
        CheckpointerCallback(save_interval=t.checkpoint_interval, pre_train_checkpoint=False, save_async=False),
    )
    cfg.add_callback("console_logger", ConsoleLoggerCallback(metrics_log_interval=log_every))
    cfg.add_callback("config_saver", ConfigSaverCallback())
    cfg.add_callback("olmix_metrics", MetricsCollector())
    cfg.add_callback("olmix_progress", ProgressReporter(spec=spec, total_steps=batch.steps))
    evaluator = build_lm_evaluator(spec, tokenizer, batch.steps, work_dir)
    if evaluator is not None:
        cfg.add_callback("lm_evaluator", evaluator)  # type: ignore[arg-type]
    if t.wandb.mode != "off":
        cfg.add_callback(
            "wandb",
            OlmixWandBCallback(
                name=spec.run_name,
                run_id=spec.run_name,
                project=t.wandb.project,
                entity=t.wandb.entity,
                group=spec.group_id,
                tags=[spec.swarm_name, spec.purpose],
                config=wandb_config(spec),
                offline=t.wandb.mode == "offline",
                cancel_tags=None if t.wandb.mode == "offline" else ["cancel", "canceled", "cancelled"],
            ),
        )
    return cfg


def _backend(device: str) -> str | None:
    """None (no process group) on a CPU-only machine; gloo to force CPU next to a GPU or for several CPU ranks;
    gloo+nccl on GPUs. olmo-core's default backend crashes on CPU-only torch (`_cuda_setDevice`)."""
    import torch

    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ConfigError("training.device is cuda but no GPU is available")
    if cuda and device != "cpu":
        return "cpu:gloo,cuda:nccl"
    return "gloo" if cuda or int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def _train(spec: RunSpec, started: float) -> dict[str, Any]:
    import multiprocessing as mp

    import torch
    from olmo_core.train import prepare_training_environment, teardown_training_environment

    # Everything that can be checked without torch state is checked first: bad specs fail in milliseconds.
    tokenizer = build_tokenizer(spec)
    model_config = build_model(spec, tokenizer)
    batch = batching(spec)
    work_dir = work_dir_for(spec)
    dataset_config = build_dataset(spec, tokenizer, batch, work_dir)
    trainer_config = build_trainer(spec, batch, tokenizer, work_dir)
    backend = _backend(spec.training.device)
    os.makedirs(work_dir, exist_ok=True)

    prepare_training_environment(seed=spec.seed, backend=backend)
    if backend is None or "cuda" not in backend:
        # prepare_training_environment forces "spawn", so dataset preparation re-imports torch in every worker
        # (~40 s per run). On CPU forking is safe; with CUDA, olmo-core's spawn stays.
        mp.set_start_method("fork", force=True)
    torch.set_num_threads(spec.training.threads_per_run)
    try:
        world_size = get_world_size()
        model = model_config.build(init_device="meta")
        train_module_config = build_train_module(spec, batch, world_size)
        train_module = train_module_config.build(model)
        dataset = dataset_config.build()
        data_loader = build_data_loader(spec, batch, work_dir).build(dataset, dp_process_group=train_module.dp_process_group)
        trainer = trainer_config.build(train_module, data_loader)
        trainer.callbacks["config_saver"].config = {  # type: ignore[attr-defined]
            "run_name": spec.run_name,
            "model": model_config.as_config_dict(),
            "dataset": dataset_config.as_config_dict(),
            "train_module": train_module_config.as_config_dict(),
            "olmix": spec.model_dump(mode="json"),
        }
        resumed_from = _latest_step(trainer)
        trainer.fit()

        if trainer.global_step < batch.steps:
            raise results.RunStopped(
                f"stopped at step {trainer.global_step} of {batch.steps}: {trainer._cancel_reason or 'canceled'}"
            )
        collector: MetricsCollector = trainer.callbacks["olmix_metrics"]  # type: ignore[assignment]
        wandb_cb = trainer.callbacks.get("wandb")
        return results.result_record(
            spec,
            collector.latest,
            tokens_seen=trainer.global_train_tokens_seen,
            steps=trainer.global_step,
            wall_time_s=time.monotonic() - started,
            checkpoint=str(trainer.checkpointer.latest_checkpoint(trainer.save_folder)),
            resumed_from_step=resumed_from,
            model_params=model_config.num_params,
            wandb_url=getattr(wandb_cb, "url", None),
        )
    finally:
        teardown_training_environment()


def _latest_step(trainer: Any) -> int | None:
    """The step of the checkpoint this attempt will resume from (None: a fresh start)."""
    try:
        steps = [step for step, _ in trainer.checkpointer.find_checkpoints(trainer.save_folder)]
    except FileNotFoundError:
        return None
    return max(steps) if steps else None


def run_training(spec: RunSpec) -> dict[str, Any]:
    """Train one proxy: status `running`, then result.json + `succeeded`, or `failed` with the reason (re-raised).

    Under torchrun only rank 0 writes to the store."""
    started = time.monotonic()
    writer = int(os.environ.get("RANK", "0")) == 0
    if writer:
        results.mark_running(spec, pid=os.getpid(), host=socket.gethostname())
    try:
        record = _train(spec, started)
    except results.RunStopped as e:
        if writer:
            results.mark_stopped(spec, str(e))
        raise
    except BaseException as e:
        if writer:
            results.mark_failed(spec, e)
        raise
    if writer:
        results.write_result(spec, record)
    return record
