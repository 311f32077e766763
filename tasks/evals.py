"""Evaluation tasks: emit the offline eval script, pull results into the fit's tables."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from olmix_core import stages
from olmix_core.config import ExperimentConfig
from olmix_core.stages import Pulled
from tasks._common import OUTSIDE_WORLD, RESULT_SERIALIZER, SWARM_CACHE, open_swarm_store


@task(name="emit-eval-script", task_run_name="eval script olmix-{group_id}.sh", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def emit_eval_script(config: ExperimentConfig, group_id: str, runs: list[str]) -> str:
    """`olmix-{group}.sh` (one olmo-cookbook-eval per run, for `beaker.user`'s checkpoints) in the store's
    eval_scripts/, noted in metadata.json; returns its store URL."""
    swarm = open_swarm_store(config, group_id)
    info = stages.emit_eval_script(config, swarm, stages.read_specs(swarm, runs))
    get_run_logger().info("eval script: %s", info.url)
    return info.url


@task(name="pull-results", task_run_name="pull {source} results {config.name}/{group_id}", cache_policy=NO_CACHE,
      **OUTSIDE_WORLD)
def pull_swarm_results(config: ExperimentConfig, group_id: str, source: str) -> Pulled:
    """ratios.csv + metrics.csv + pull_report.json in the store's results/ (incremental; never cached: the
    outside world changes between calls)."""
    pulled = stages.pull(config, open_swarm_store(config, group_id), source)
    report = pulled.report
    get_run_logger().info(
        "pulled %s: %d of %d runs in the tables (%d new), %d failed, %d running, %d missing",
        source, len(report.included), len(report.expected), len(report.new_runs), len(report.failed),
        len(report.running), len(report.missing),
    )
    return pulled
