"""The `olmix-watch-evals` flow: look at every open swarm's eval location and emit `olmix.evals.landed` when new
results appear there. The re-fit deployment's trigger turns each event into a re-fit of that group.

Open swarms are those whose metadata.json says `orchestration.open` (set by the swarm flow, cleared by a fit
that saw every run). Eval locations: the offline eval dashboard (`{eval_results_prefix}/olmix-{group}/`) or the
runs' own result.json files (in-loop metrics of local runs). WandB-evaluated swarms are left to the cron re-fit.
Each check is one listing per swarm; what was seen is kept in metadata (`orchestration.watch`), so an event is
emitted once per change, not once per check.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from flows._common import ORCHESTRATION, failed, record, watch_run_name
from olmix_core.config import DEFAULT_STORAGE_ROOT, ExperimentConfig
from olmix_core.evals import dashboard_name, results_prefix
from olmix_core.results.records import fingerprint
from olmix_core.runspec import now_iso
from olmix_core.store import ArtifactStore, SwarmStore, open_fs
from tasks._common import OUTSIDE_WORLD

EVENT = "olmix.evals.landed"
DASHBOARD_FILE = "metrics-all.jsonl"


def resource_id(group_id: str) -> str:
    return f"olmix.swarm.{group_id}"


def open_swarms(storage_root: str) -> list[tuple[SwarmStore, dict[str, Any]]]:
    """(swarm, metadata) of every open swarm under `storage_root`: one glob and one batched read."""
    store = ArtifactStore(storage_root)
    if not store.is_local:
        store.fs.invalidate_cache(store.root)  # other processes write metadata
    try:
        paths = store.fs.glob(store.path("*/*/" + SwarmStore.METADATA))
    except FileNotFoundError:
        return []
    if not paths:
        return []
    blobs = store.fs.cat(paths) if len(paths) > 1 else {paths[0]: store.fs.cat_file(paths[0])}
    out = []
    for path, data in sorted(blobs.items()):
        try:
            meta = json.loads(data)
        except json.JSONDecodeError:
            continue
        if not (meta.get(ORCHESTRATION) or {}).get("open"):
            continue
        group_dir = posixpath.dirname(path)
        out.append((SwarmStore(store, posixpath.basename(posixpath.dirname(group_dir)), posixpath.basename(group_dir)), meta))
    return out


def eval_location(config: ExperimentConfig, swarm: SwarmStore, source: str) -> str | None:
    """The URL the watcher lists for a swarm's results (None for sources it does not watch: WandB)."""
    if source == "dashboard":
        return f"{results_prefix(config)}/{dashboard_name(swarm.group_id)}"
    if source == "local":
        return swarm.url("runs")
    return None


def eval_results(config: ExperimentConfig, swarm: SwarmStore, source: str, skip: set[str]) -> dict[str, str]:
    """{result file: change marker} at the swarm's eval location (one listing); {} for sources not watched."""
    location = eval_location(config, swarm, source)
    if location is None:
        return {}
    fs, base = open_fs(location)
    wanted = DASHBOARD_FILE if source == "dashboard" else "result.json"
    fs.invalidate_cache(base)
    try:
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        return {}
    out = {}
    for path, info in found.items():
        rel = path[len(base.rstrip("/")) + 1:] if path.startswith(base.rstrip("/")) else path
        if posixpath.basename(path) == wanted and rel.split("/", 1)[0] not in skip:
            out[rel] = fingerprint(info)
    return out


@task(name="check-eval-locations", task_run_name="check eval locations under {storage_root}", cache_policy=NO_CACHE, **OUTSIDE_WORLD)
def check_eval_locations(storage_root: str, group_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """For every open swarm (or those in `group_ids`): emit `olmix.evals.landed` if its results changed since the
    last check. Returns the events' payloads."""
    log = get_run_logger()
    landed = []
    swarms = [(s, m) for s, m in open_swarms(storage_root) if not group_ids or s.group_id in group_ids]
    log.info("checking %d open swarms under %s%s", len(swarms), storage_root, f" (only {', '.join(group_ids)})" if group_ids else "")
    for swarm, meta in swarms:
        orch = meta.get(ORCHESTRATION, {})
        source = orch.get("results_source", "local")
        config = ExperimentConfig.from_yaml(swarm.url(SwarmStore.CONFIG))
        location = eval_location(config, swarm, source)
        if location is None:
            log.info("%s/%s: %s results are not watched here (the cron re-fit covers them)", swarm.name, swarm.group_id, source)
            continue
        files = eval_results(config, swarm, source, skip=set(meta.get("verify_runs", [])))
        marker = hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()
        seen = (orch.get("watch") or {}).get("fingerprint")
        if not files or marker == seen:
            log.info("%s/%s: %d %s results at %s, %s", swarm.name, swarm.group_id, len(files), source, location,
                     "none yet" if not files else "unchanged since the last check")
            continue
        payload = {"group_id": swarm.group_id, "name": swarm.name, "config": swarm.url(SwarmStore.CONFIG),
                   "storage_root": swarm.store.root_url, "source": source, "results": len(files)}
        emit_event(
            event=EVENT,
            resource={"prefect.resource.id": resource_id(swarm.group_id), "prefect.resource.name": f"{swarm.name}-{swarm.group_id}",
                      "olmix.group_id": swarm.group_id, "olmix.swarm": swarm.name},
            payload=payload,
        )
        record(swarm, watch={"fingerprint": marker, "results": len(files), "time": now_iso()})
        log.info("%s/%s: %d %s results at %s, new since the last check -> %s", swarm.name, swarm.group_id, len(files), source,
                 location, EVENT)
        landed.append(payload)
    return landed


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
