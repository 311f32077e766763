"""Helpers the flows share: config and group id resolution, flow run naming, where results come from."""

from __future__ import annotations

import hashlib
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from olmix_core.config import ExperimentConfig, load_config
from olmix_core.errors import ConfigError
from olmix_core.names import check_group_id, new_group_id


def resolve_config(config: str | dict[str, Any] | ExperimentConfig) -> ExperimentConfig:
    """A config from a path/URL, a mapping, or a config (bad input raises ConfigError: the flow fails at once)."""
    return load_config(config)


def resolve_group_id(group_id: str | None) -> str:
    """The given group id, else one derived from the flow run id: a retry of the same flow run (e.g. from the UI)
    gets the same id, so it resumes the swarm instead of starting another one."""
    if group_id:
        try:
            return check_group_id(group_id)
        except ValueError as e:
            raise ConfigError(f"group_id: {e}") from None
    run_id = flow_run.get_id()
    if run_id is None:
        return new_group_id()
    return hashlib.sha256(f"olmix-group:{run_id}".encode()).hexdigest()[:8]


def label_flow_run(name: str, tags: list[str]) -> None:
    """Name the flow run after what it works on (`{swarm}-{group}`), so the UI lists swarms, not random names."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(run_id)
            client.update_flow_run(run_id, name=name, tags=sorted(set(current.tags) | set(tags)))
    except Exception as e:  # a cosmetic failure must not fail the swarm
        get_run_logger().warning("could not rename the flow run to %s: %s", name, e)
