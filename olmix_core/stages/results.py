"""The pull stage: a swarm's results into the fit's tables (results/ratios.csv, metrics.csv, pull_report.json)."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.errors import OlmixError
from olmix_core.results import PullReport, pull_results
from olmix_core.store import SwarmStore

TABLES = ("ratios.csv", "metrics.csv")


class NoResults(OlmixError):
    """No run of the swarm has results to fit on yet."""


class Pulled(BaseModel):
    report: PullReport
    tables_sha256: str  # content of ratios.csv + metrics.csv: a fit on the same tables is the same fit

    @property
    def still_open(self) -> bool:
        """Runs are still running or have no results yet: the watcher and the re-fit keep looking."""
        return bool(self.report.running or self.report.missing)

    def require_results(self) -> None:
        """NoResults unless at least one run is in the tables."""
        r = self.report
        if not r.included:
            raise NoResults(f"group {r.group_id}: no run has {r.source} results yet ({len(r.running)} running, "
                            f"{len(r.missing)} missing, {len(r.failed)} failed)")


def results_source(eval_mode: str, launcher: str) -> str:
    """Where a swarm's metrics come from: offline evals → the eval dashboard; in-loop metrics → the store's run
    records for local (and simulated) runs, WandB for Beaker runs."""
    if eval_mode == "offline":
        return "dashboard"
    return "wandb" if launcher == "beaker" else "local"


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
    report = pull_results(config, swarm, source=source, output_dir=output_dir, metrics=config.fit.filtering.metrics)
    return Pulled(report=report, tables_sha256=tables_digest(swarm))
