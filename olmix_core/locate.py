"""Find an existing swarm from what a command is given: a group id, and a config or a storage root."""

from __future__ import annotations

import os

from olmix_core.config import DEFAULT_STORAGE_ROOT, ExperimentConfig
from olmix_core.errors import ArtifactMissing, ConfigError
from olmix_core.names import check_group_id
from olmix_core.store import SwarmStore, find_swarm


def default_storage_root() -> str:
    return os.environ.get("OLMIX_STORAGE_ROOT") or DEFAULT_STORAGE_ROOT


def locate_swarm(group_id: str, config_path: str | None = None, storage_root: str | None = None) -> tuple[ExperimentConfig, SwarmStore]:
    """With `config_path`: that config, and its swarm under `storage_root` (default: the config's). Without: the swarm
    found by group id under `storage_root` (default `$OLMIX_STORAGE_ROOT`, else `.olmix/store`) and its stored
    config.yaml. A swarm that is not there is an error naming where it was looked for."""
    try:
        check_group_id(group_id)
    except ValueError as e:
        raise ConfigError(f"group_id: {e}", fields=("group_id",)) from None
    if config_path:
        config = ExperimentConfig.from_yaml(config_path)
        swarm = SwarmStore.open(storage_root or config.storage_root, config.name, group_id)
        if not swarm.store.exists(swarm.prefix):
            raise ArtifactMissing(f"no swarm {config.name}/{group_id} under {swarm.store.root_url}")
        return config, swarm
    swarm = find_swarm(storage_root or default_storage_root(), group_id)
    return ExperimentConfig.from_yaml(swarm.url(SwarmStore.CONFIG)), swarm
