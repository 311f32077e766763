"""Prepare-stage tasks: count priors, sample mixtures, write run specs (olmix_core.stages.setup)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from olmix_core.config import ExperimentConfig
from olmix_core.sampling import Mixture
from olmix_core.stages import setup
from tasks._common import OUTSIDE_WORLD, RESULT_SERIALIZER, SWARM_CACHE, artifact_key, open_swarm_store


@task(name="count-priors", task_run_name="count priors {config.name}/{group_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def count_priors(config: ExperimentConfig, group_id: str) -> dict[str, Any]:
    """priors.json: token counts per leaf (listing the data in bulk, or from the config's `priors:` block)."""
    return setup.store_priors(config, open_swarm_store(config, group_id))


@task(name="sample-mixtures", task_run_name="sample {config.variants} mixtures {config.name}/{group_id}",
      cache_policy=SWARM_CACHE, result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def sample_mixtures(config: ExperimentConfig, group_id: str, priors: dict[str, Any], mixtures: list[Mixture] | None = None) -> list[Mixture]:
    """mixtures.json: the stored mixtures of this group, else the given ones, else a seeded Dirichlet sample."""
    mixes = setup.store_mixtures(config, open_swarm_store(config, group_id), priors, mixtures)
    create_table_artifact(
        setup.mixture_rows(config, priors, mixes), key=artifact_key(group_id, "mixtures"),
        description=f"**{config.name}** `{group_id}`: {len(mixes)} sampled mixtures (weight per leaf; first row: the prior)",
    )
    return mixes


@task(name="write-run-specs", task_run_name="write {config.variants} run specs {config.name}/{group_id}",
      cache_policy=SWARM_CACHE, result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def write_run_specs(config: ExperimentConfig, group_id: str, mixtures: list[Mixture], launcher: str) -> list[str]:
    """runs/*/spec.json, config.yaml and metadata.json; returns the run names (specs stay in the store)."""
    return [s.run_name for s in setup.write_specs(config, open_swarm_store(config, group_id), mixtures, launcher)]
