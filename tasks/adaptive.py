"""Adaptive rounds: choose a round's batch and append it to the group (olmix_core.rounds, olmix_core.stages.append)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from olmix_core import rounds
from olmix_core.adaptive import NextBatch
from olmix_core.config import ExperimentConfig
from olmix_core.stages.append import append_runs
from tasks._common import OUTSIDE_WORLD, RESULT_SERIALIZER, SWARM_CACHE, artifact_key, open_swarm_store


@task(name="next-batch", task_run_name="next batch {config.name}/{group_id} round {round_} from {fit_id}",
      cache_policy=SWARM_CACHE, result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def next_batch(config: ExperimentConfig, group_id: str, round_: int, fit_id: str, variants: int) -> NextBatch:
    """The round's batch from the saved models of `fit_id` (batch Bayesian optimisation; kept in the store, so a
    resumed swarm gets the same batch)."""
    batch = rounds.round_batch(config, open_swarm_store(config, group_id), round_, fit_id, variants)
    create_table_artifact(
        [{"mixture": i, "predicted": round(s.predicted_objective, 5), "std": round(s.std, 5),
          "EI": round(s.expected_improvement, 5), **{d: round(w, 4) for d, w in s.weights.items()}}
         for i, s in enumerate(batch.suggestions)],
        key=artifact_key(group_id, f"round-{round_}"),
        description=f"**{config.name}** `{group_id}` round {round_}: {len(batch.suggestions)} mixtures, expected "
                    f"improvement of the batch {batch.expected_improvement:.4g} ({batch.objective}, lower is better)",
    )
    get_run_logger().info("round %d: %d mixtures, expected improvement %.4g", round_, len(batch.suggestions),
                          batch.expected_improvement)
    return batch


@task(name="append-runs", task_run_name="append round {round_} {config.name}/{group_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def append_batch(config: ExperimentConfig, group_id: str, round_: int, batch: NextBatch) -> list[str]:
    """The batch's runs in the group (idempotent: runs already there are reused); returns their names."""
    appended = append_runs(config, open_swarm_store(config, group_id), batch.mixtures(), f"round {round_} batch")
    return [s.run_name for s in appended.specs]
