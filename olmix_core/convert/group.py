"""The finished runs of a swarm and their checkpoints; converting all of them to HF in one call.

A swarm's run records (`runs/{run}/status.json`, `spec.json`, `result.json`) are read in bulk, so finding the
finished runs costs a few storage requests whatever the swarm's size. Each conversion is recorded in
`runs/{run}/hf.json`; a run whose record matches its latest checkpoint and whose HF folder is complete is
skipped, so converting a swarm again only converts what is new. One run failing does not stop the others.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from olmix_core.config import ExperimentConfig
from olmix_core.convert.checkpoints import STEP_RE, resolve_checkpoint
from olmix_core.errors import ArtifactMissing, OlmixError
from olmix_core.runspec import RunState
from olmix_core.store import SwarmStore

HF_RECORD = "hf.json"


@dataclass(frozen=True)
class FinishedRun:
    run: str
    checkpoint_dir: str  # the run's save folder (its step<N>/ children are its checkpoints)


def run_states(swarm: SwarmStore) -> dict[str, str]:
    """{run: state} for every run with a spec or status (a result record alone counts as succeeded)."""
    statuses = swarm.read_run_files("status.json", {})  # a corrupt file leaves only its run out
    results = swarm.read_run_files("result.json", {})
    specs = swarm.read_run_files("spec.json")
    states: dict[str, str] = {}
    for run in sorted(set(statuses) | set(results) | set(specs)):
        state = (statuses.get(run) or {}).get("state")
        if results.get(run) and state in (None, RunState.pending.value, RunState.submitted.value, RunState.running.value):
            state = RunState.succeeded.value
        states[run] = state or RunState.pending.value
    return states


def finished_runs(swarm: SwarmStore, only: list[str] | None = None) -> tuple[list[FinishedRun], dict[str, str]]:
    """(succeeded runs with their checkpoint folders, {other run: its state}); `only` restricts to those runs."""
    states = run_states(swarm)
    if only:
        unknown = sorted(set(only) - set(states))
        if unknown:
            raise ArtifactMissing(f"runs {unknown} are not in swarm {swarm.prefix} (runs: {sorted(states)})")
        states = {r: s for r, s in states.items() if r in only}
    specs = swarm.read_run_files("spec.json")
    results = swarm.read_run_files("result.json")
    done: list[FinishedRun] = []
    others: dict[str, str] = {}
    for run, state in states.items():
        if state != RunState.succeeded.value:
            others[run] = state
            continue
        folder = (specs.get(run) or {}).get("checkpoint_dir")
        if not folder:
            ckpt = (results.get(run) or {}).get("checkpoint")
            if not ckpt:
                others[run] = "succeeded (no checkpoint recorded in spec.json or result.json)"
                continue
            folder = posixpath.dirname(ckpt.rstrip("/")) if STEP_RE.match(posixpath.basename(ckpt.rstrip("/"))) else ckpt
        done.append(FinishedRun(run, folder))
    return done, others


def convert_group(
    config: ExperimentConfig,
    group_id: str,
    *,
    swarm: SwarmStore | None = None,
    tokenizer: str | None = None,
    output_root: str | None = None,
    overwrite: bool = False,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """Convert every succeeded run's latest checkpoint; returns a report (converted, skipped, failed with the
    reason, not finished, output URL per run). Outputs: `{checkpoint}-hf`, or `{output_root}/{run}/step<N>-hf`."""
    from olmix_core.convert.hf import (
        ConversionRecord,
        convert_checkpoint,
        default_output,
        read_record,
    )

    swarm = swarm or SwarmStore.open(config.storage_root, config.name, group_id)
    done, others = finished_runs(swarm, only)
    if not done and not others:
        raise ArtifactMissing(f"swarm {swarm.url()} has no runs")
    report: dict[str, Any] = {
        "group_id": swarm.group_id,
        "converted": [],
        "skipped": [],
        "failed": {},
        "not_finished": others,
        "outputs": {},
    }
    for fr in done:
        try:
            ref = resolve_checkpoint(fr.checkpoint_dir)
            output = default_output(ref)
            if output_root:
                output = f"{output_root.rstrip('/')}/{fr.run}/{posixpath.basename(ref.url)}-hf"
            previous = swarm.store.read_json_or(swarm.run_key(fr.run, HF_RECORD), None)
            if previous and not overwrite:
                prev = ConversionRecord.model_validate(previous)
                if prev.checkpoint == ref.url and prev.output == output and read_record(prev.output):
                    report["skipped"].append(fr.run)
                    report["outputs"][fr.run] = prev.output
                    continue
            record = convert_checkpoint(ref.url, output, tokenizer, run=fr.run, overwrite=overwrite)
        except OlmixError as e:
            report["failed"][fr.run] = str(e)
            continue
        except Exception as e:  # noqa: BLE001 - one run's unexpected failure must not stop the others; it is reported
            report["failed"][fr.run] = f"{type(e).__name__}: {e}"
            continue
        swarm.store.write_json(swarm.run_key(fr.run, HF_RECORD), record.model_dump(mode="json"))
        report["skipped" if record.skipped else "converted"].append(fr.run)
        report["outputs"][fr.run] = record.output
    return report
