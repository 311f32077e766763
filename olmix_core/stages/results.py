"""The pull stage: a swarm's results into the fit's tables (results/ratios.csv, metrics.csv, pull_report.json)."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.results import PullReport, pull_results
from olmix_core.store import SwarmStore

TABLES = ("ratios.csv", "metrics.csv")


class Pulled(BaseModel):
    report: PullReport
    tables_sha256: str  # content of ratios.csv + metrics.csv: a fit on the same tables is the same fit


def tables_digest(swarm: SwarmStore) -> str:
    """Content hash of results/ratios.csv + metrics.csv: what a fit depends on."""
    h = hashlib.sha256()
    for name in TABLES:
        h.update(swarm.store.read_bytes(swarm.results_key(name)))
        h.update(b"\0")
    return h.hexdigest()


def pull(config: ExperimentConfig, swarm: SwarmStore, source: str, output_dir: str | None = None) -> Pulled:
    """Pull the swarm's `source` results (local | wandb | dashboard) for the config's fit metrics into the store's
    results/ (and `output_dir`); incremental: runs already pulled and unchanged are not read again."""
    report = pull_results(config, swarm, source=source, output_dir=output_dir, metrics=config.fit.metrics)
    return Pulled(report=report, tables_sha256=tables_digest(swarm))
