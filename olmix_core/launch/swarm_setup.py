"""Everything a swarm needs in the store before its runs are submitted, one stage per function.

`olmix launch run`, `olmix swarm` and the Prefect flow call the same stages, in this order:
`open_swarm` → `store_priors` → `store_mixtures` → `store_run_specs` → `store_config` → `write_metadata`
(`prepare_swarm` chains them), then `submit_swarm` and `emit_eval_script`. Every stage is idempotent for an existing group id: stored priors and mixtures are
reused (never re-sampled), the group id is never regenerated, and a spec that would change an existing run is an
error rather than a silent overwrite.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from olmix_core.config import EXISTING, ExperimentConfig
from olmix_core.errors import ConfigError, DataError, InfeasibleError
from olmix_core.launch.base import Launcher
from olmix_core.names import check_group_id, new_group_id, parse_run_name
from olmix_core.priors import compute_priors
from olmix_core.runspec import (
    RunSpec,
    RunState,
    RunStatus,
    build_run_specs,
    now_iso,
    write_run_specs,
)
from olmix_core.sampling import Mixture, generate_mixtures
from olmix_core.store import ArtifactStore, SwarmStore

WEIGHT_SUM_TOLERANCE = 1e-3
RETRY_STATES = (RunState.failed, RunState.preempted, RunState.canceled)
MIN_VERIFY_WEIGHT = 1e-6  # proposal weights below this are dropped (olmo-core wants every ratio in (0, 1])


def open_swarm(config: ExperimentConfig, group_id: str | None = None) -> SwarmStore:
    """The swarm's store; a fresh group id only when none is given."""
    gid = new_group_id() if group_id is None else _group_id(group_id)
    return SwarmStore(ArtifactStore(config.storage_root), config.name, gid)


def _group_id(value: str) -> str:
    try:
        return check_group_id(value)
    except ValueError as e:
        raise ConfigError(f"--group-id: {e}") from None


def store_priors(config: ExperimentConfig, swarm: SwarmStore) -> dict[str, Any]:
    """priors.json: reused when the group has one, else counted (through the store's cache) and written."""
    stored = swarm.store.read_json_or(swarm.key(SwarmStore.PRIORS), None)
    if stored is not None:
        missing = sorted(set(config.leaf_names()) - set(stored.get("token_counts", {})))
        if missing:
            raise ConfigError(f"{swarm.url(SwarmStore.PRIORS)}: group {swarm.group_id} has no token counts for leaves {missing}; "
                              "the config's sources changed, use a new group id")
        return stored
    priors = compute_priors(config, swarm.store)
    swarm.store.write_json(swarm.key(SwarmStore.PRIORS), priors)
    return priors


def check_mixtures(config: ExperimentConfig, token_counts: dict[str, int], mixtures: list[Mixture], where: str = "mixtures") -> list[Mixture]:
    """Validate given mixtures against the config (known leaves, weights summing to 1, token caps) and fill in
    repetition factors: `max(1, weight × target_tokens / tokens)`. A reuse config's mixtures may be over its reduced
    domains (`existing` + free leaves)."""
    if config.reuse is not None and any(EXISTING in m for m in mixtures):
        from olmix_core.reuse import reduced_config, resolved

        config, token_counts = reduced_config(resolved(config), token_counts)
    caps = config.leaf_repetition_caps()
    leaves = config.leaf_names()
    target = config.target_tokens
    out = []
    for i, mix in enumerate(mixtures):
        unknown = sorted(set(mix) - set(leaves))
        if unknown:
            raise DataError(f"{where}: mixture {i} names leaves not in the config: {unknown} (leaves: {leaves})")
        weights = {leaf: _weight(v) for leaf, v in mix.items()}
        bad = {leaf: w for leaf, w in weights.items() if not 0.0 <= w <= 1.0}
        if bad:
            raise DataError(f"{where}: mixture {i} has weights outside [0, 1]: {bad}")
        total = sum(weights.values())
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise DataError(f"{where}: mixture {i} weights sum to {total:.6f}, not 1")
        row: Mixture = {}
        for leaf in leaves:
            w = weights.get(leaf, 0.0) / total
            need = w * target / token_counts[leaf]
            if need > caps[leaf] * (1 + 1e-6):
                raise InfeasibleError(
                    f"{where}: mixture {i}, leaf {leaf!r}: weight {w:.4f} needs {need:.2f}x repetition of its "
                    f"{token_counts[leaf]} tokens, above its cap {caps[leaf]:g} (repetition_factor / max_repetition_factor)"
                )
            row[leaf] = [w, max(1.0, need)]
        out.append(row)
    return out


def store_mixtures(
    config: ExperimentConfig, swarm: SwarmStore, priors: dict[str, Any], mixtures: list[Mixture] | None = None
) -> list[Mixture]:
    """mixtures.json: the stored mixtures when the group has them (given ones must then match), else the given ones
    (validated) or a fresh sample from the config's seed."""
    key = swarm.key(SwarmStore.MIXTURES)
    stored = swarm.store.read_json_or(key, None)
    if stored is not None:
        if mixtures is not None and not _same_mixtures(stored, check_mixtures(config, priors["token_counts"], mixtures)):
            raise ConfigError(f"--mixtures: group {swarm.group_id} already has different mixtures ({swarm.url(SwarmStore.MIXTURES)}); "
                              "use a new group id")
        return stored
    if mixtures is None:
        mixtures = generate_mixtures(config, priors["token_counts"])
    else:
        mixtures = check_mixtures(config, priors["token_counts"], mixtures)
    swarm.store.write_json(key, mixtures)
    return mixtures


def _weight(value: Any) -> float:
    """A leaf's weight from `[weight, repetition_factor]` or a bare weight."""
    return float(value[0] if isinstance(value, (list, tuple)) else value)


def _same_mixtures(a: list[Mixture], b: list[Mixture], tol: float = 1e-9) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        for leaf in set(x) | set(y):
            if abs(_weight(x.get(leaf, 0.0)) - _weight(y.get(leaf, 0.0))) > tol:
                return False
    return True


def store_run_specs(
    config: ExperimentConfig, swarm: SwarmStore, mixtures: list[Mixture], purpose: str = "swarm", first_variant: int = 0
) -> list[RunSpec]:
    """Build and write one spec per mixture; a stored spec that differs from the new one is an error (it would change
    a run that may already have trained)."""
    if config.reuse is not None:  # a reduced swarm trains on real leaves: existing's weight × the frozen ratios
        from olmix_core.reuse import expand_mixtures

        mixtures = expand_mixtures(config, mixtures, store_priors(config, swarm)["token_counts"])
    specs = build_run_specs(config, swarm, mixtures, purpose=purpose, first_variant=first_variant)
    existing = swarm.read_run_files("spec.json")
    for spec in specs:
        old = existing.get(spec.run_name)
        new = spec.model_dump(mode="json")
        if old is not None and old != new:
            fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(
                f"run {spec.run_name} already exists in group {swarm.group_id} with a different spec (fields: {', '.join(fields)}); "
                "use a new group id for a changed config"
            )
    write_run_specs(swarm, [s for s in specs if s.run_name not in existing])
    return specs


def store_config(config: ExperimentConfig, swarm: SwarmStore) -> str:
    """config.yaml: the resolved config, as run."""
    return swarm.store.write_text(swarm.key(SwarmStore.CONFIG), config.to_yaml())


def git_commit(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The code's git commit and whether its tree had changes; nulls outside a git checkout."""
    cwd = str(path or Path(__file__).resolve().parents[2])

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def wandb_group_url(config: ExperimentConfig, group_id: str) -> str | None:
    wb = config.training.wandb
    if wb.mode != "online" or not wb.entity:
        return None
    return f"https://wandb.ai/{wb.entity}/{wb.project}/groups/{group_id}"


def write_metadata(
    config: ExperimentConfig, swarm: SwarmStore, specs: list[RunSpec], launcher: str, **extra: Any
) -> dict[str, Any]:
    """metadata.json: merged into what is there (`created` and the first git commit are kept)."""
    meta = swarm.metadata()
    fields: dict[str, Any] = {
        "name": config.name,
        "group_id": swarm.group_id,
        "created": meta.get("created") or now_iso(),
        "updated": now_iso(),
        "launcher": launcher,
        "run_names": [s.run_name for s in specs if s.purpose == "swarm"] or meta.get("run_names", []),
        "storage_root": swarm.store.root_url,
        "config_url": swarm.url(SwarmStore.CONFIG),
        "wandb_group_url": wandb_group_url(config, swarm.group_id),
    }
    if "git_commit" not in meta:
        fields.update(git_commit())
    fields.update(extra)
    return swarm.update_metadata(**fields)


def prepare_swarm(
    config: ExperimentConfig, group_id: str | None = None, mixtures: list[Mixture] | None = None, launcher: str | None = None
) -> tuple[SwarmStore, list[RunSpec]]:
    """All stages up to submission: priors, mixtures, specs, config and metadata in the store."""
    from olmix_core.reuse import record_plan, resolve_reuse

    config, plan = resolve_reuse(config)
    swarm = open_swarm(config, group_id)
    priors = store_priors(config, swarm)
    mixes = store_mixtures(config, swarm, priors, mixtures)
    specs = store_run_specs(config, swarm, mixes)
    store_config(config, swarm)
    write_metadata(config, swarm, specs, launcher or config.launcher)
    record_plan(swarm, plan)
    return swarm, specs


def store_verify_spec(config: ExperimentConfig, swarm: SwarmStore, weights: dict[str, float]) -> RunSpec:
    """A spec (purpose "verify") that trains one more proxy on `weights`, like the swarm's runs.

    It takes the next free variant number (≥ `variants`), so its name `{name}-{group}-{variant:04d}` stays a valid
    run name everywhere; a verify run with the same weights is reused. metadata.json lists it under `verify_runs`,
    apart from `run_names` (the swarm's runs, the only ones the fit reads)."""
    priors = store_priors(config, swarm)
    cleaned = {leaf: float(w) for leaf, w in weights.items() if float(w) >= MIN_VERIFY_WEIGHT}
    if not cleaned:
        raise DataError("proposed weights: every weight is 0")
    total = sum(cleaned.values())
    mixture = check_mixtures(config, priors["token_counts"], [{k: [v / total] for k, v in cleaned.items()}], "proposed weights")[0]
    existing = swarm.read_run_files("spec.json")
    for _name, old in sorted(existing.items()):
        if old.get("purpose") == "verify" and _same_mixtures([{m["leaf"]: m["weight"] for m in old["mixture"]}], [mixture]):
            return RunSpec.model_validate(old)
    used = [parse_run_name(n)[2] for n in swarm.run_names() if _is_run_name(n)]
    variant = max([config.variants - 1, *used]) + 1
    spec = store_run_specs(config, swarm, [mixture], purpose="verify", first_variant=variant)[0]
    meta = swarm.metadata()
    swarm.update_metadata(verify_runs=[*meta.get("verify_runs", []), spec.run_name])
    return spec


def _is_run_name(name: str) -> bool:
    try:
        parse_run_name(name)
    except ValueError:
        return False
    return True


def submit_swarm(config: ExperimentConfig, swarm: SwarmStore, specs: list[RunSpec], launcher: Launcher) -> dict[str, RunStatus]:
    """Submit the group: new runs are submitted, runs that failed, were preempted or canceled are submitted again
    while they have attempts left (`max_attempts`), queued/running/succeeded runs are left alone. Job ids and URLs
    go into metadata.json."""
    statuses = launcher.submit(specs)
    retry = [s for s in specs if statuses[s.run_name].state in RETRY_STATES and statuses[s.run_name].attempts < config.max_attempts]
    if retry:
        statuses.update(launcher.resubmit(retry))
    jobs = {name: {"job_id": st.job_id, "url": st.url} for name, st in statuses.items() if st.url}
    fields: dict[str, Any] = {"launcher": launcher.kind}
    if jobs:  # remote jobs with a page (Beaker); local pids live in each run's status.json
        fields["jobs"] = {**swarm.metadata().get("jobs", {}), **jobs}
    swarm.update_metadata(**fields)
    return statuses


def emit_eval_script(config: ExperimentConfig, swarm: SwarmStore, specs: list[RunSpec], output_dir: str) -> str:
    """The group's offline-eval script (`olmix-{group}.sh`), written to `output_dir` and the store, noted in metadata."""
    from olmix_core.evals import write_eval_script

    runs = [s.run_name for s in specs if s.purpose == "swarm"]
    return write_eval_script(config, swarm.group_id, runs, beaker_user=config.beaker.user, output_dir=output_dir, swarm=swarm)
