"""metadata.json: what a swarm is and where it stands, one typed model and one writer (`update_metadata`).

Every stage records its facts here through `update_metadata` (prepare: names, launcher, git commit; submit: job
ids; the eval-script stage: the script's location; verify: the verify runs; fit: `last_fit`; the flows and the
watcher: `orchestration`). A field is declared here before anything writes it, so readers get types, not dict
lookups. Files written by older versions still load: their extra keys are kept, and the two `last_fit`s they may
hold (a bare fit id at the top, a record under `orchestration`) become the one `last_fit`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

from olmix_core.reuse import ReuseLineage

if TYPE_CHECKING:
    from olmix_core.store import SwarmStore


class JobRef(BaseModel):
    """A remote job with a page (Beaker); local runs keep their pids in runs/{run}/status.json."""

    job_id: str | None = None
    url: str | None = None


class EvalScriptInfo(BaseModel):
    """Where the group's offline-eval script (olmix-{group}.sh) was written, and the dashboard it fills."""

    path: str
    url: str
    dashboard: str


class LastFit(BaseModel):
    """The latest fit of the swarm: the re-fit compares `tables_sha256` to decide whether anything changed."""

    fit_id: str
    tables_sha256: str | None = None
    runs: int | None = None
    time: str | None = None
    predicted_objective: float | None = None
    actual_objective: float | None = None  # of the verify run, when there was one


class WatchState(BaseModel):
    """What the evals watcher last saw at the swarm's eval location (so an event is emitted once per change)."""

    fingerprint: str
    results: int
    time: str


class Orchestration(BaseModel):
    """Kept by the Prefect flows: how the swarm is evaluated and whether the watcher and the re-fit still look at it."""

    model_config = ConfigDict(extra="allow")

    eval_mode: str | None = None
    results_source: str | None = None  # local | wandb | dashboard
    launcher: str | None = None
    open: bool = False
    last_check: str | None = None
    watch: WatchState | None = None


class RoundRecord(BaseModel):
    """One appended round of an adaptive swarm (`olmix launch run --append`; round 0, the sampled swarm, is not
    listed): its runs, in `spec.json` with `round` set too."""

    round: int
    runs: list[str] = []
    created: str | None = None


class SwarmMetadata(BaseModel):
    """metadata.json of one swarm (`{root}/{name}/{group id}/metadata.json`)."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    group_id: str | None = None
    created: str | None = None
    updated: str | None = None
    launcher: str | None = None
    run_names: list[str] = []  # the swarm's runs: the only ones the fit reads
    verify_runs: list[str] = []
    rounds: list[RoundRecord] = []  # adaptive swarms: the appended rounds
    storage_root: str | None = None
    config_url: str | None = None
    wandb_group_url: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    jobs: dict[str, JobRef] = {}
    beaker_workspace: str | None = None
    beaker_group: str | None = None
    beaker_group_id: str | None = None
    beaker_group_url: str | None = None
    eval_script: EvalScriptInfo | None = None
    last_fit: LastFit | None = None
    orchestration: Orchestration = Orchestration()
    reuse: ReuseLineage | None = None  # a reuse update: which previous swarm/fit it reused (olmix_core.reuse)

    @model_validator(mode="before")
    @classmethod
    def _one_last_fit(cls, data: Any) -> Any:
        """Older files: `last_fit` as a bare fit id (olmix swarm) or under `orchestration` (the flows)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        orch = data.get("orchestration")
        nested = orch.get("last_fit") if isinstance(orch, dict) else None
        if isinstance(orch, dict) and "last_fit" in orch:
            data["orchestration"] = {k: v for k, v in orch.items() if k != "last_fit"}
        top = data.get("last_fit")
        if not isinstance(top, dict):  # the flows' record (what the re-fit compared) over a bare fit id
            top = nested if isinstance(nested, dict) else {"fit_id": top} if isinstance(top, str) else None
        if isinstance(top, dict):
            data["last_fit"] = top
        else:
            data.pop("last_fit", None)
        data.pop("verify", None)  # a copy of fits/{fit id}/verify.json that older `olmix swarm` runs kept here
        return data


def read_metadata(swarm: SwarmStore) -> SwarmMetadata:
    """The swarm's metadata (empty when the swarm has none yet)."""
    return SwarmMetadata.model_validate(swarm.store.read_json_or(swarm.key(swarm.METADATA), {}))


def update_metadata(swarm: SwarmStore, **fields: Any) -> SwarmMetadata:
    """The one writer of metadata.json: set top-level `fields` (each declared in `SwarmMetadata`), keep the rest.

    `orchestration` is merged into the stored block rather than replacing it."""
    unknown = sorted(set(fields) - set(SwarmMetadata.model_fields))
    if unknown:
        raise TypeError(f"metadata.json has no fields {unknown}; declare them in SwarmMetadata first")
    current = read_metadata(swarm)
    merged = current.model_dump(mode="json", exclude_unset=True)
    for name, value in fields.items():
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_unset=True)
        if name == "orchestration":
            value = {**merged.get("orchestration", {}), **value}
        merged[name] = value
    merged["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta = SwarmMetadata.model_validate(merged)
    swarm.store.write_json(swarm.key(swarm.METADATA), meta.model_dump(mode="json", exclude_unset=True))
    return meta
