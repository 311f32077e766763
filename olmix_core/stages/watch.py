"""Finding swarms whose eval results changed: what the evals watcher checks and the re-fit of every open swarm reads.

Open swarms are those whose metadata.json says `orchestration.open` (set by the swarm flow, cleared by a fit that
saw every run). Eval locations: the offline eval dashboard (`{eval_results_prefix}/olmix-{group}/`) or the runs'
own result.json files (in-loop metrics of local runs); WandB-evaluated swarms are left to the cron re-fit. Each
check is one listing per swarm; what was seen is kept in metadata (`orchestration.watch`), so a change is reported
once, not once per check.
"""

from __future__ import annotations

import hashlib
import json
import posixpath

from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.evals import dashboard_name, results_prefix
from olmix_core.metadata import SwarmMetadata, WatchState, update_metadata
from olmix_core.results.records import fingerprint
from olmix_core.runspec import now_iso
from olmix_core.store import ArtifactStore, SwarmStore, open_fs

DASHBOARD_FILE = "metrics-all.jsonl"


def open_swarms(storage_root: str) -> list[tuple[SwarmStore, SwarmMetadata]]:
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
            meta = SwarmMetadata.model_validate(json.loads(data))
        except ValueError:  # not JSON, or not metadata: not a swarm the watcher can follow
            continue
        if not meta.orchestration.open:
            continue
        group_dir = posixpath.dirname(path)
        out.append((SwarmStore(store, posixpath.basename(posixpath.dirname(group_dir)), posixpath.basename(group_dir)), meta))
    return out


def eval_location(config: ExperimentConfig, swarm: SwarmStore, source: str) -> str | None:
    """The URL listed for a swarm's eval results (None for sources not watched here: WandB)."""
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


class Landed(BaseModel):
    """New eval results of one open swarm since the last check (the payload of `olmix.evals.landed`)."""

    group_id: str
    name: str
    config: str  # the stored config.yaml's URL
    storage_root: str
    source: str
    results: int
    fingerprint: str


class EvalCheck(BaseModel):
    """What one check of one open swarm found: where it looked, how many results, and whether they are new."""

    source: str
    location: str | None  # None: a source not watched here (WandB; the cron re-fit covers it)
    results: int = 0
    landed: Landed | None = None  # set when the results changed since the last `mark_seen`


def check_swarms(storage_root: str, group_ids: list[str] | None = None) -> list[tuple[SwarmStore, EvalCheck]]:
    """One check of every open swarm under `storage_root` (or those in `group_ids`)."""
    out = []
    for swarm, meta in open_swarms(storage_root):
        if group_ids and swarm.group_id not in group_ids:
            continue
        source = meta.orchestration.results_source or "local"
        config = ExperimentConfig.from_yaml(swarm.url(SwarmStore.CONFIG))
        location = eval_location(config, swarm, source)
        files = eval_results(config, swarm, source, skip=set(meta.verify_runs))
        marker = hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()
        seen = meta.orchestration.watch.fingerprint if meta.orchestration.watch else None
        check = EvalCheck(source=source, location=location, results=len(files))
        if files and marker != seen:
            check.landed = Landed(group_id=swarm.group_id, name=swarm.name, config=swarm.url(SwarmStore.CONFIG),
                                  storage_root=swarm.store.root_url, source=source, results=len(files), fingerprint=marker)
        out.append((swarm, check))
    return out


def landed_results(storage_root: str, group_ids: list[str] | None = None) -> list[tuple[SwarmStore, Landed]]:
    """Every open swarm (or those in `group_ids`) whose eval results changed since `mark_seen` last recorded them."""
    return [(swarm, check.landed) for swarm, check in check_swarms(storage_root, group_ids) if check.landed is not None]


def mark_seen(swarm: SwarmStore, landed: Landed) -> None:
    """Record what was reported, so the same results are not reported again."""
    update_metadata(swarm, orchestration={"watch": WatchState(fingerprint=landed.fingerprint, results=landed.results, time=now_iso())})
