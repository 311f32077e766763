"""Where each proxy run keeps its checkpoints: one rule shared by the run specs (where `olmix train` writes) and the
emitted eval script (where `olmo-cookbook-eval` looks), so the two can never disagree."""

from __future__ import annotations

from collections.abc import Sequence

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.names import check_name
from olmix_core.store import ArtifactStore

# cluster kind -> default checkpoint root (`{user}` is the Beaker user); `config.checkpoint_roots` overrides these.
DEFAULT_CHECKPOINT_ROOTS = {
    "gcs": "gs://ai2-llm/checkpoints/{user}",
    "weka": "/weka/oe-training-default/ai2-llm/checkpoints/{user}",
    "s3": "s3://ai2-llm/checkpoints/{user}",
}


def cluster_kind(config: ExperimentConfig) -> str:
    """Where the proxy runs keep their checkpoints: `local`, `gcs` (augusta), `weka` (jupiter/saturn with weka) or `s3`."""
    if config.launcher == "local":
        return "local"
    clusters = [c.lower() for c in (config.cluster, *config.beaker.clusters)]
    if any("augusta" in c for c in clusters):
        return "gcs"
    if config.weka and any("jupiter" in c or "saturn" in c for c in clusters):
        return "weka"
    return "s3"


def checkpoint_dirs(config: ExperimentConfig, group_id: str, runs: Sequence[str], beaker_user: str | None) -> dict[str, str]:
    """The checkpoint folder of each run (its `stepN` folders are listed by the script at run time).

    In order: `checkpoint_roots[kind]` + `/{run}`; the folder `olmix train` writes to when
    `training.checkpoint_root` is set; the local store's `checkpoints/` for the local launcher; the cluster default."""
    kind = cluster_kind(config)
    if kind in config.checkpoint_roots:
        root = _with_user(config.checkpoint_roots[kind], beaker_user, f"checkpoint_roots.{kind}")
        return {r: f"{root}/{r}" for r in runs}
    if config.training.checkpoint_root:
        base = f"{config.training.checkpoint_root.rstrip('/')}/{config.name}/{group_id}"
        return {r: f"{base}/{r}" for r in runs}
    if kind == "local":
        base = f"{ArtifactStore(config.storage_root).root_url.rstrip('/')}/checkpoints/{config.name}/{group_id}"
        return {r: f"{base}/{r}" for r in runs}
    root = _with_user(DEFAULT_CHECKPOINT_ROOTS[kind], beaker_user, f"the {kind} checkpoint root")
    return {r: f"{root}/{r}" for r in runs}


def uses_beaker_user(config: ExperimentConfig) -> bool:
    """Whether the checkpoint folders (and so the eval script) depend on the Beaker user."""
    kind = cluster_kind(config)
    if kind in config.checkpoint_roots:
        return "{user}" in config.checkpoint_roots[kind]
    return not config.training.checkpoint_root and kind != "local" and "{user}" in DEFAULT_CHECKPOINT_ROOTS[kind]


def _with_user(root: str, user: str | None, what: str) -> str:
    root = root.rstrip("/")
    if "{user}" not in root:
        return root
    if not user:
        raise ConfigError(f"{what} ({root}) needs a Beaker user: pass --beaker-user or set beaker.user in the config")
    try:
        check_name(user, "beaker user")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return root.replace("{user}", user)
