"""The `olmix-watch-evals` flow: look at every open swarm's eval location and emit `olmix.evals.landed` when new
results appear there (`olmix_core.stages.watch` decides what is new). The re-fit deployment's trigger turns each
event into a re-fit of that group.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from flows._common import failed, watch_run_name
from olmix_core.config import DEFAULT_STORAGE_ROOT
from olmix_core.stages.watch import check_swarms, mark_seen
from tasks._common import OUTSIDE_WORLD

EVENT = "olmix.evals.landed"


def resource_id(group_id: str) -> str:
    return f"olmix.swarm.{group_id}"


@task(name="check-eval-locations", task_run_name="check eval locations under {storage_root}", cache_policy=NO_CACHE, **OUTSIDE_WORLD)
def check_eval_locations(storage_root: str, group_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """For every open swarm (or those in `group_ids`): emit `olmix.evals.landed` if its results changed since the
    last check. Returns the events' payloads."""
    log = get_run_logger()
    payloads = []
    checked = check_swarms(storage_root, group_ids)
    log.info("checking %d open swarms under %s%s", len(checked), storage_root, f" (only {', '.join(group_ids)})" if group_ids else "")
    for swarm, check in checked:
        what = f"{swarm.name}/{swarm.group_id}"
        if check.location is None:
            log.info("%s: %s results are not watched here (the cron re-fit covers them)", what, check.source)
            continue
        landed = check.landed
        if landed is None:
            log.info("%s: %d %s results at %s, %s", what, check.results, check.source, check.location,
                     "unchanged since the last check" if check.results else "none yet")
            continue
        payload = landed.model_dump(exclude={"fingerprint"})
        emit_event(
            event=EVENT,
            resource={"prefect.resource.id": resource_id(swarm.group_id), "prefect.resource.name": f"{swarm.name}-{swarm.group_id}",
                      "olmix.group_id": swarm.group_id, "olmix.swarm": swarm.name},
            payload=payload,
        )
        mark_seen(swarm, landed)
        log.info("%s: %d %s results at %s, new since the last check -> %s", what, landed.results, landed.source, check.location, EVENT)
        payloads.append(payload)
    return payloads


@flow(name="olmix-watch-evals", description="Emit olmix.evals.landed when new eval results appear for an open swarm.",
      flow_run_name=watch_run_name)
def watch_evals(storage_root: str = DEFAULT_STORAGE_ROOT, group_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Check the open swarms under `storage_root` (or only `group_ids`) once.

    Args:
        storage_root: the olmix store to scan (local folder, s3://, gs://).
        group_ids: only these swarms.
    """
    try:
        return check_eval_locations(storage_root, group_ids)
    except Exception as e:
        return failed(f"watching the eval locations under {storage_root}", e)
