"""The prepare stage: everything a swarm needs in the store before its runs are submitted, one step per function.

`open_swarm` → `store_priors` → `store_mixtures` → `write_specs` (`store_run_specs`, `store_config`,
`record_swarm`); `prepare` chains them for `olmix swarm` and `olmix launch run` (with `dry_run=True`, the same
chain in memory: nothing is written), the Prefect flow runs each step as its own task. `emit_eval_script` follows
the specs; `store_verify_spec` adds the verify run. Every step is idempotent for an existing group id: stored
priors and mixtures are reused (never re-sampled), the group id is never regenerated, and a spec that would change
an existing run is an error rather than a silent overwrite.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from olmix_core.config import EXISTING, ExperimentConfig
from olmix_core.errors import ConfigError, DataError, InfeasibleError
from olmix_core.metadata import EvalScriptInfo, update_metadata
from olmix_core.names import check_group_id, is_run_name, new_group_id, parse_run_name
from olmix_core.priors import compute_priors
from olmix_core.runspec import RunSpec, build_run_specs, now_iso, write_run_specs
from olmix_core.sampling import Mixture, generate_mixtures
from olmix_core.store import ArtifactStore, SwarmStore

WEIGHT_SUM_TOLERANCE = 1e-3
MIN_VERIFY_WEIGHT = 1e-6  # proposal weights below this are dropped (olmo-core wants every ratio in (0, 1])


def open_swarm(config: ExperimentConfig, group_id: str | None = None) -> SwarmStore:
    """The swarm's store; a fresh group id only when none is given."""
    gid = new_group_id() if group_id is None else _group_id(group_id)
    return SwarmStore(ArtifactStore(config.storage_root), config.name, gid)


def _group_id(value: str) -> str:
    try:
        return check_group_id(value)
    except ValueError as e:
        raise ConfigError(f"group_id: {e}", fields=("group_id",)) from None


def store_priors(config: ExperimentConfig, swarm: SwarmStore, write: bool = True) -> dict[str, Any]:
    """priors.json: reused when the group has one, else counted (through the store's cache) and written (unless
    `write` is false: a dry run)."""
    stored = swarm.store.read_json_or(swarm.key(SwarmStore.PRIORS), None)
    if stored is not None:
        missing = sorted(set(config.leaf_names()) - set(stored.get("token_counts", {})))
        if missing:
            raise ConfigError(f"{swarm.url(SwarmStore.PRIORS)}: group {swarm.group_id} has no token counts for leaves {missing}; "
                              "the config's sources changed, use a new group id")
        return stored
    if not write:
        return compute_priors(config)
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
    config: ExperimentConfig, swarm: SwarmStore, priors: dict[str, Any], mixtures: list[Mixture] | None = None, write: bool = True
) -> list[Mixture]:
    """mixtures.json: the stored mixtures when the group has them (given ones must then match), else the given ones
    (validated) or a fresh sample from the config's seed; written unless `write` is false (a dry run)."""
    key = swarm.key(SwarmStore.MIXTURES)
    stored = swarm.store.read_json_or(key, None)
    if stored is not None:
        if mixtures is not None and not _same_mixtures(stored, check_mixtures(config, priors["token_counts"], mixtures)):
            raise ConfigError(f"mixtures: group {swarm.group_id} already has different mixtures ({swarm.url(SwarmStore.MIXTURES)}); "
                              "use a new group id", fields=("mixtures",))
        return stored
    if mixtures is None:
        mixtures = generate_mixtures(config, priors["token_counts"])
    else:
        mixtures = check_mixtures(config, priors["token_counts"], mixtures)
    if write:
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
    config: ExperimentConfig, swarm: SwarmStore, mixtures: list[Mixture], purpose: str = "swarm", first_variant: int = 0,
    write: bool = True,
    round: int = 0,
) -> list[RunSpec]:
    """Build and write (unless `write` is false) one spec per mixture; a stored spec that differs from the new one
    is an error (it would change a run that may already have trained)."""
    if config.reuse is not None:  # a reduced swarm trains on real leaves: existing's weight × the frozen ratios
        from olmix_core.reuse import expand_mixtures

        mixtures = expand_mixtures(config, mixtures, store_priors(config, swarm, write=write)["token_counts"])
    specs = build_run_specs(config, swarm, mixtures, purpose=purpose, first_variant=first_variant, round=round)
    existing = swarm.read_run_files("spec.json")
    for spec in specs:
        old = existing.get(spec.run_name)
        if old is not None:
            old = {"round": 0, **old}  # specs written before adaptive rounds existed are round 0
        new = spec.model_dump(mode="json")
        if old is not None and old != new:
            fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(
                f"run {spec.run_name} already exists in group {swarm.group_id} with a different spec (fields: {', '.join(fields)}); "
                "use a new group id for a changed config"
            )
    if write:
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


def record_swarm(config: ExperimentConfig, swarm: SwarmStore, specs: list[RunSpec], launcher: str) -> None:
    """The swarm's identity in metadata.json (`created` and the first git commit are kept)."""
    meta = swarm.metadata()
    fields: dict[str, Any] = {
        "name": config.name,
        "group_id": swarm.group_id,
        "created": meta.created or now_iso(),
        "launcher": launcher,
        "run_names": [s.run_name for s in specs if s.purpose == "swarm"] or meta.run_names,
        "storage_root": swarm.store.root_url,
        "config_url": swarm.url(SwarmStore.CONFIG),
        "wandb_group_url": wandb_group_url(config, swarm.group_id),
    }
    if "git_commit" not in meta.model_fields_set:
        fields.update(git_commit())
    update_metadata(swarm, **fields)


def write_specs(config: ExperimentConfig, swarm: SwarmStore, mixtures: list[Mixture], launcher: str) -> list[RunSpec]:
    """The swarm's run specs (one per mixture), its config.yaml and its metadata.json."""
    specs = store_run_specs(config, swarm, mixtures)
    store_config(config, swarm)
    record_swarm(config, swarm, specs, launcher)
    return specs


def mixture_rows(config: ExperimentConfig, priors: dict[str, Any], mixtures: list[Mixture]) -> list[dict[str, Any]]:
    """A table of the mixtures (weight per leaf), its first row the prior: what the UI shows of a sample."""
    leaves = config.leaf_names()
    prior = priors.get("relative_sizes", {})
    rows: list[dict[str, Any]] = [{"variant": "prior", **{leaf: round(float(prior.get(leaf, 0.0)), 4) for leaf in leaves}}]
    rows += [{"variant": i, **{leaf: round(float(m.get(leaf, [0.0])[0]), 4) for leaf in leaves}} for i, m in enumerate(mixtures)]
    return rows


class Prepared(BaseModel):
    """What the prepare stage left in the store (or, for a dry run, would have)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    swarm: SwarmStore = Field(exclude=True)
    priors: dict[str, Any]
    mixtures: list[Mixture]
    specs: list[RunSpec]
    dry_run: bool = False

    @property
    def group_id(self) -> str:
        return self.swarm.group_id

    @property
    def run_names(self) -> list[str]:
        return [s.run_name for s in self.specs]


def prepare(
    config: ExperimentConfig,
    group_id: str | None = None,
    mixtures: list[Mixture] | None = None,
    launcher: str | None = None,
    dry_run: bool = False,
) -> Prepared:
    """Every step up to submission: priors, mixtures (`mixtures`, else the group's stored ones, else sampled), run
    specs, config and metadata in the store. `dry_run`: the same steps reading the store but writing nothing.
    A `reuse:` config is resolved first (olmix_core.reuse) and its plan recorded with the swarm."""
    from olmix_core.reuse import record_plan, resolve_reuse

    config, plan = resolve_reuse(config)
    if plan is not None and not plan.needs_swarm:
        raise ConfigError(
            "reuse: the update only removes leaves, so there is no swarm to launch; the final mixture is the previous one "
            "renormalised (`olmix swarm` or `olmix mix expand` writes it)"
        )
    swarm = open_swarm(config, group_id)
    if not dry_run:
        swarm.store.check_writable()  # a read-only or impossible storage_root fails here, before any work
    priors = store_priors(config, swarm, write=not dry_run)
    mixes = store_mixtures(config, swarm, priors, mixtures, write=not dry_run)
    if dry_run:
        specs = store_run_specs(config, swarm, mixes, write=False)
    else:
        specs = write_specs(config, swarm, mixes, launcher or config.launcher)
        record_plan(swarm, plan)
    return Prepared(swarm=swarm, priors=priors, mixtures=mixes, specs=specs, dry_run=dry_run)


def prepare_swarm(
    config: ExperimentConfig, group_id: str | None = None, mixtures: list[Mixture] | None = None, launcher: str | None = None
) -> tuple[SwarmStore, list[RunSpec]]:
    """`prepare`, as (swarm, specs)."""
    prepared = prepare(config, group_id, mixtures, launcher)
    return prepared.swarm, prepared.specs


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
    used = [parse_run_name(n)[2] for n in swarm.run_names() if is_run_name(n)]
    variant = max([config.variants - 1, *used]) + 1
    spec = store_run_specs(config, swarm, [mixture], purpose="verify", first_variant=variant)[0]
    update_metadata(swarm, verify_runs=[*swarm.metadata().verify_runs, spec.run_name])
    return spec


def emit_eval_script(config: ExperimentConfig, swarm: SwarmStore, specs: list[RunSpec], output_dir: str | None = None) -> EvalScriptInfo:
    """The group's offline-eval script (`olmix-{group}.sh`) in the store's eval_scripts/ (and in `output_dir` when
    given), noted in metadata.json."""
    from olmix_core.evals import write_eval_script

    runs = [s.run_name for s in specs if s.purpose == "swarm"]

    def write(directory: str) -> None:
        write_eval_script(config, swarm.group_id, runs, beaker_user=config.beaker.user, output_dir=directory, swarm=swarm)

    if output_dir is not None:
        write(output_dir)
    elif swarm.store.is_local:
        write(swarm.store.path(swarm.key("eval_scripts")))
    else:
        with tempfile.TemporaryDirectory(prefix="olmix-eval-") as tmp:  # the store keeps the copy that counts
            write(tmp)
    info = swarm.metadata().eval_script
    assert info is not None  # write_eval_script(swarm=...) records it
    return info
