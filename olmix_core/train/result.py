"""What a run writes about itself to the store: its status (running → succeeded/failed) and its result record.

Kept free of torch/olmo-core so launchers and result pulls can import it cheaply.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from olmix_core.errors import ArtifactCorrupt, ArtifactMissing, OlmixError
from olmix_core.runspec import RunProgress, RunSpec, RunState, RunStatus, now_iso
from olmix_core.store import ArtifactStore

EVAL_METRIC_RE = re.compile(r"^eval/lm/(?P<label>.+)/CE loss$")
TRAIN_LOSS_METRIC = "train/CE loss"


class RunStopped(OlmixError):
    """Training ended before its last step (SIGTERM/SIGINT): neither a success nor a failure of the run itself."""


def _split(url: str) -> tuple[ArtifactStore, str]:
    """A store rooted at the file's folder, and its name: writes stay atomic (local) or single-PUT (object stores)."""
    return ArtifactStore(posixpath.dirname(url.rstrip("/"))), posixpath.basename(url.rstrip("/"))


def read_status(spec: RunSpec) -> RunStatus:
    store, key = _split(spec.status_url)
    try:
        return RunStatus.model_validate(store.read_json(key))
    except (ArtifactMissing, ArtifactCorrupt, ValueError):
        return RunStatus(run_name=spec.run_name)


def update_status(spec: RunSpec, state: RunState, reason: str | None = None, **extra: Any) -> RunStatus:
    """Read-modify-write: keeps what the launcher put there (attempts, job id, URLs)."""
    status = read_status(spec)
    status.state = state
    status.reason = reason
    status.updated = now_iso()
    wandb_url = extra.pop("wandb_url", None)
    if wandb_url:
        status.wandb_url = wandb_url
    status.extra = {**status.extra, **{k: v for k, v in extra.items() if v is not None}}
    store, key = _split(spec.status_url)
    store.write_json(key, status.model_dump(mode="json"))
    return status


def report_progress(spec: RunSpec, progress: RunProgress) -> RunStatus:
    """Record how far training got (read-modify-write, like every status update: the launcher's fields stay)."""
    status = read_status(spec)
    status.progress = progress
    status.updated = now_iso()
    store, key = _split(spec.status_url)
    store.write_json(key, status.model_dump(mode="json"))
    return status


def mark_running(spec: RunSpec, **extra: Any) -> RunStatus:
    return update_status(spec, RunState.running, started=now_iso(), **extra)


def mark_failed(spec: RunSpec, exc: BaseException) -> RunStatus:
    return update_status(spec, RunState.failed, failure_reason(exc), finished=now_iso())


def mark_stopped(spec: RunSpec, reason: str) -> RunStatus:
    """A run stopped before its last step (SIGTERM, SIGINT): canceled, unless the launcher already said why."""
    current = read_status(spec)
    state = current.state if current.state in (RunState.canceled, RunState.preempted) else RunState.canceled
    return update_status(spec, state, reason, finished=now_iso())


def failure_reason(exc: BaseException) -> str:
    """The exception's message; its type too, unless it is one of ours (whose messages already name the fault)."""
    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OlmixError):
        return msg
    return f"{type(exc).__name__}: {msg}"


def result_record(
    spec: RunSpec,
    metrics: dict[str, float],
    *,
    tokens_seen: int,
    steps: int,
    wall_time_s: float,
    checkpoint: str | None,
    **extra: Any,
) -> dict[str, Any]:
    """The final result of a run (`runs/{run}/result.json`): every in-loop eval CE loss plus the train loss."""
    kept = {k: float(v) for k, v in sorted(metrics.items()) if k == TRAIN_LOSS_METRIC or EVAL_METRIC_RE.match(k)}
    missing = sorted(f"eval/lm/{label}/CE loss" for label in spec.eval_sources if f"eval/lm/{label}/CE loss" not in kept)
    if missing:
        raise OlmixError(f"run {spec.run_name}: training finished without the metrics {missing}")
    return {
        "run": spec.run_name,
        "group_id": spec.group_id,
        "variant": spec.variant,
        "state": RunState.succeeded.value,
        "metrics": kept,
        "tokens_seen": int(tokens_seen),
        "steps": int(steps),
        "wall_time_s": round(float(wall_time_s), 3),
        "mixture": spec.weights(),
        "checkpoint": checkpoint,
        "purpose": spec.purpose,
        "finished": now_iso(),
        **extra,
    }


def write_result(spec: RunSpec, record: dict[str, Any]) -> str:
    """Write result.json, then mark the run succeeded (in that order: a succeeded run always has its result)."""
    store, key = _split(spec.result_url)
    url = store.write_json(key, record)
    update_status(spec, RunState.succeeded, finished=record.get("finished") or now_iso(), wandb_url=record.get("wandb_url"))
    return url

