"""The swarm's own records in the store: run specs (mixture weights), statuses and the results local runs write.

Read in bulk and incrementally: one listing of `runs/`, then one batched read of only the files whose listing
entry (ETag, mtime, size) changed since the previous pull."""

from __future__ import annotations

import json
import posixpath
from typing import Any

from olmix_core.results.records import SUCCEEDED, RunRecord, SourceResult, as_metric, fingerprint
from olmix_core.store import SwarmStore, store_call

RUN_FILES = ("spec.json", "status.json", "result.json")


def _compact(filename: str, data: dict[str, Any]) -> dict[str, Any]:
    """Only what pulling needs, so the state file stays small."""
    if filename == "spec.json":
        weights: dict[str, float] = {}
        for entry in data.get("mixture") or []:
            if isinstance(entry, dict) and "leaf" in entry:
                weights[str(entry["leaf"])] = entry.get("weight")
        return {"purpose": data.get("purpose", "swarm"), "variant": data.get("variant"), "weights": weights}
    if filename == "status.json":
        return {"state": data.get("state"), "reason": data.get("reason")}
    return {"state": data.get("state", SUCCEEDED), "metrics": data.get("metrics") or {}, "mixture": data.get("mixture"),
            "reason": data.get("reason")}


def read_store_runs(swarm: SwarmStore, cache: dict[str, Any]) -> tuple[dict[str, dict[str, dict]], dict[str, Any], list[str], int]:
    """{run: {filename: compact content}} for spec/status/result files, the new cache, warnings, files read."""
    store = swarm.store
    base = store.path(swarm.key("runs")).rstrip("/")
    if not store.is_local:
        store.fs.invalidate_cache(base)
    try:
        with store_call(swarm.url("runs"), "list"):
            infos = store.fs.find(base, detail=True, **store.call_kwargs)
    except FileNotFoundError:
        infos = {}
    listed: dict[str, tuple[str, str]] = {}
    for path, info in infos.items():
        rel = path[len(base) :].strip("/") if path.startswith(base) else ""
        parts = rel.split("/")
        if len(parts) == 2 and parts[1] in RUN_FILES:
            listed[rel] = (path, fingerprint(info))
    changed = [rel for rel, (_, fp) in listed.items() if (cache.get(rel) or {}).get("fp") != fp]
    blobs: dict[str, bytes] = {}
    if changed:
        paths = [listed[rel][0] for rel in changed]
        with store_call(swarm.url("runs"), "read the run files under", missing_ok=False):
            blobs = store.cat_many(paths)
    new_cache: dict[str, Any] = {}
    warnings: list[str] = []
    for rel, (path, fp) in listed.items():
        if rel not in changed:
            new_cache[rel] = cache[rel]
            continue
        if path not in blobs:
            continue  # deleted between listing and reading
        try:
            data = json.loads(blobs[path])
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            url = store.url(swarm.key("runs", rel))
            if posixpath.basename(rel) != "result.json":
                warnings.append(f"{url}: unreadable ({e}); ignored")
                continue
            # a run whose results cannot be read counts as failed (a resume trains it again), not as never run
            warnings.append(f"{url}: unreadable ({e}); the run counts as failed")
            data = {"state": "failed", "reason": f"unreadable result.json ({e})"}
        new_cache[rel] = {"fp": fp, "data": _compact(posixpath.basename(rel), data)}
    runs: dict[str, dict[str, dict]] = {}
    for rel, entry in new_cache.items():
        run, filename = rel.split("/")
        runs.setdefault(run, {})[filename] = entry["data"]
    return runs, new_cache, warnings, len(changed)


def collect_local(store_runs: dict[str, dict[str, dict]]) -> SourceResult:
    """Results that local proxy runs wrote (`runs/{run}/result.json`), states from `status.json`."""
    records: dict[str, RunRecord] = {}
    warnings: list[str] = []
    for run, files in store_runs.items():
        result = files.get("result.json")
        status = files.get("status.json")
        if result is not None and result.get("state", SUCCEEDED) == SUCCEEDED:
            metrics: dict[str, float] = {}
            for name, value in (result.get("metrics") or {}).items():
                v = as_metric(value)
                if v is None:
                    warnings.append(f"{run}: metric {name!r} is not a finite number ({value!r}); treated as missing")
                else:
                    metrics[name] = v
            records[run] = RunRecord(run, SUCCEEDED, metrics)
        elif status is not None and status.get("state") and status["state"] != SUCCEEDED:
            records[run] = RunRecord(run, str(status["state"]), detail=status.get("reason"))
        elif result is not None:
            records[run] = RunRecord(run, str(result.get("state")), detail=result.get("reason"))
    return SourceResult(records, {}, warnings)
