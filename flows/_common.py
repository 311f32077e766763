"""Helpers the flows share: config and group id resolution, flow run naming, and failing a flow run with a
message (the resume commands) instead of an exception."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import FailedRun
from prefect.runtime import flow_run
from prefect.states import Failed, State

from olmix_core.config import DEFAULT_STORAGE_ROOT, ExperimentConfig, load_config
from olmix_core.errors import ConfigError
from olmix_core.names import check_group_id, new_group_id
from olmix_core.store import SwarmStore
from olmix_core.swarm_report import SwarmView, resume_commands

ENGINE_EXIT = "Engine execution exited with unexpected exception"


class _ReportedFailure(logging.Filter):
    """Drops Prefect's engine traceback for a flow run that failed by returning its Failed state (FailedRun, raised
    by the engine when it reads that state back): the failure was logged in one line and is the run's state
    message. Crashes and any other exception keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (record.getMessage() == ENGINE_EXIT and isinstance(exc, FailedRun))


# the runner's flow run process logs through "prefect.flow_runs" once the flow module is imported
logging.getLogger("prefect.flow_runs").addFilter(_ReportedFailure())


def resolve_config(config: str | dict[str, Any] | ExperimentConfig) -> ExperimentConfig:
    """A config from a path/URL, a mapping, or a config (bad input raises ConfigError: the flow fails at once);
    a `reuse:` block is resolved to the explicit config (existing's ratios, the reduced swarm's size)."""
    from olmix_core.reuse import resolved

    return resolved(load_config(config))


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


def swarm_run_name() -> str:
    """`{swarm name}-{group id}`, given to the flow run before its first log line (the flow's `flow_run_name`)."""
    params = flow_run.parameters
    try:
        cfg = resolve_config(params.get("config"))
        return f"{cfg.name}-{resolve_group_id(params.get('group_id'))}"
    except Exception:  # a bad config fails the flow itself, with its message; the name only says what was asked
        return f"swarm-{params.get('group_id') or 'new'}-bad-input"


def refit_run_name() -> str:
    params = flow_run.parameters
    if params.get("group_id"):
        return f"refit-{params['group_id']}"
    return f"refit-open-swarms-under-{params.get('storage_root') or DEFAULT_STORAGE_ROOT}"


def watch_run_name() -> str:
    params = flow_run.parameters
    where = params.get("storage_root") or DEFAULT_STORAGE_ROOT
    groups = params.get("group_ids")
    return f"watch-evals-{'-'.join(groups)}-under-{where}" if groups else f"watch-evals-under-{where}"


def failed(what: str, error: BaseException, swarm: SwarmStore | None = None) -> State:
    """The flow run's final state for `error`, logged in one line, with how to resume when the swarm exists. A
    flow that returns this state (rather than raising) fails without Prefect's runner logging a traceback."""
    message = f"{what} failed: {type(error).__name__}: {error}"
    if swarm is not None and swarm.store.exists(swarm.key(SwarmStore.METADATA)):
        view = SwarmView(name=swarm.name, group_id=swarm.group_id, store=swarm.url(), stage="failed",
                         config_url=swarm.url(SwarmStore.CONFIG) if swarm.store.exists(swarm.key(SwarmStore.CONFIG)) else None)
        message += " | resume with: " + "   or: ".join(resume_commands(view))
    get_run_logger().error(message)
    return Failed(message=message)


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
