"""The `olmix-refit` flow: pull a swarm's results → fit → propose (→ verify), only when results changed since the
last fit, or when forced.

Triggered by every `olmix.evals.landed` event (see prefect.yaml: the event's payload gives the group id and the
stored config's URL) and on a cron schedule, where no group id is given and every open swarm under the storage
root is re-fitted (this also covers swarms evaluated on WandB, which the watcher does not list).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger

from flows._common import failed, label_flow_run, refit_run_name, resolve_config
from flows._fit import fit_propose_verify
from olmix_core.config import DEFAULT_STORAGE_ROOT, ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.names import check_group_id
from olmix_core.stages.results import NoResults
from olmix_core.stages.watch import open_swarms
from olmix_core.store import SwarmStore, find_swarm


def swarm_config(group_id: str, config: str | dict[str, Any] | None, storage_root: str) -> ExperimentConfig:
    """The given config, else the one stored with the swarm (found by group id under `storage_root`)."""
    if config:
        return resolve_config(config)
    return resolve_config(find_swarm(storage_root, group_id).url(SwarmStore.CONFIG))


def refit_one(cfg: ExperimentConfig, gid: str, source: str | None, force: bool, verify: bool, launcher: str | None) -> dict[str, Any]:
    recorded = SwarmStore.open(cfg.storage_root, cfg.name, gid).metadata().orchestration
    return fit_propose_verify(
        cfg, gid, source or recorded.results_source or "local", only_if_new=True, force=force, verify_proposal=verify,
        launcher=launcher or recorded.launcher or cfg.launcher,
    )


@flow(name="olmix-refit", description="Pull a swarm's results, then fit and propose again if anything changed.",
      flow_run_name=refit_run_name)
def refit(
    group_id: str | None = None,
    config: str | dict[str, Any] | None = None,
    storage_root: str = DEFAULT_STORAGE_ROOT,
    source: Literal["local", "wandb", "dashboard"] | None = None,
    force: bool = False,
    verify: bool = False,
    launcher: Literal["local", "beaker", "inprocess"] | None = None,
) -> dict[str, Any]:
    """Re-fit one swarm, or every open swarm under `storage_root` when no group id is given.

    Args:
        group_id: the swarm's group id; default: every open swarm under storage_root.
        config: the swarm's config (path/URL or mapping); default: its stored config.yaml, found under storage_root.
        storage_root: where to look for swarms when no config is given.
        source: `local` | `wandb` | `dashboard`; default: what the swarm flow recorded for the swarm.
        force: fit, propose (and verify) again even when no results changed since the last fit.
        verify: also train one proxy on the new proposal (with `launcher`, default the swarm's).
        launcher: `local` | `beaker` | `inprocess` for the verify run; default: the swarm's.
    """
    try:
        return _refit(group_id, config, storage_root, source, force, verify, launcher)
    except Exception as e:
        return failed(f"re-fit of {group_id or 'the open swarms under ' + storage_root}", e)


def _refit(group_id: str | None, config: str | dict[str, Any] | None, storage_root: str, source: str | None, force: bool,
           verify: bool, launcher: str | None) -> dict[str, Any]:
    log = get_run_logger()
    if group_id:
        try:
            gid = check_group_id(group_id)
        except ValueError as e:
            raise ConfigError(f"group_id: {e}") from None
        cfg = swarm_config(gid, config, storage_root)
        label_flow_run(f"refit-{cfg.name}-{gid}", [f"group:{gid}", f"swarm:{cfg.name}"])
        return refit_one(cfg, gid, source, force, verify, launcher)
    if config:
        raise ConfigError("config: give a group_id with it (without one, every open swarm is re-fitted with its stored config)")
    outcomes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    found = open_swarms(storage_root)
    log.info("%d open swarms under %s: %s", len(found), storage_root, ", ".join(f"{s.name}/{s.group_id}" for s, _ in found) or "none")
    for swarm, _ in found:
        try:
            cfg = resolve_config(swarm.url(SwarmStore.CONFIG))
            outcomes[swarm.group_id] = refit_one(cfg, swarm.group_id, source, force, verify, launcher)
        except NoResults as e:
            log.info("%s: %s", swarm.group_id, e)
            outcomes[swarm.group_id] = {"status": "no results yet"}
        except Exception as e:  # one broken swarm must not keep the others from being re-fitted
            log.error("%s: re-fit failed: %s", swarm.group_id, e)
            errors[swarm.group_id] = str(e)
    if errors:
        raise RuntimeError(f"re-fit failed for {len(errors)} of {len(outcomes) + len(errors)} open swarms: {errors}")
    log.info("re-fitted %d open swarms under %s", len(outcomes), storage_root)
    return {"swarms": outcomes}
