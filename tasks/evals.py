"""Evaluation stages: emit the offline eval script, pull results into the fit's tables."""

from __future__ import annotations

import hashlib
import tempfile

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.launch import swarm_setup
from olmix_core.results import PullReport, pull_results
from olmix_core.store import SwarmStore
from tasks._common import OUTSIDE_WORLD, RESULT_SERIALIZER, SWARM_CACHE, open_swarm_store
from tasks.launch import read_specs


@task(name="emit-eval-script", task_run_name="eval script olmix-{group_id}.sh", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def emit_eval_script(config: ExperimentConfig, group_id: str, runs: list[str]) -> str:
    """`olmix-{group}.sh` (one olmo-cookbook-eval per run, for `beaker.user`'s checkpoints) in the store's
    eval_scripts/, noted in metadata.json; returns its store URL."""
    swarm = open_swarm_store(config, group_id)
    specs = read_specs(config, group_id, runs)
    if swarm.store.is_local:
        swarm_setup.emit_eval_script(config, swarm, specs, swarm.store.path(swarm.key("eval_scripts")))
    else:
        with tempfile.TemporaryDirectory(prefix="olmix-eval-") as tmp:  # the store keeps the copy that counts
            swarm_setup.emit_eval_script(config, swarm, specs, tmp)
    url = swarm.store.url(swarm.eval_script_key())
    get_run_logger().info("eval script: %s", url)
    return url


class Pulled(BaseModel):
    report: PullReport
    tables_sha256: str  # content of ratios.csv + metrics.csv: a fit on the same tables is the same fit


def tables_digest(swarm: SwarmStore) -> str:
    """Content hash of results/ratios.csv + metrics.csv: what a fit depends on."""
    h = hashlib.sha256()
    for name in ("ratios.csv", "metrics.csv"):
        h.update(swarm.store.read_bytes(swarm.results_key(name)))
        h.update(b"\0")
    return h.hexdigest()


@task(name="pull-results", task_run_name="pull {source} results {config.name}/{group_id}", cache_policy=NO_CACHE,
      **OUTSIDE_WORLD)
def pull_swarm_results(config: ExperimentConfig, group_id: str, source: str) -> Pulled:
    """ratios.csv + metrics.csv + pull_report.json in the store's results/ (incremental; never cached: the
    outside world changes between calls)."""
    swarm = open_swarm_store(config, group_id)
    report = pull_results(config, swarm, source=source, metrics=config.fit.filtering.metrics)
    get_run_logger().info(
        "pulled %s: %d of %d runs in the tables (%d new), %d failed, %d running, %d missing",
        source, len(report.included), len(report.expected), len(report.new_runs), len(report.failed),
        len(report.running), len(report.missing),
    )
    return Pulled(report=report, tables_sha256=tables_digest(swarm))

