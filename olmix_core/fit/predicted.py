"""predicted_performance.json: what the fitted models predict at the proposal (and at the prior), typed.

Written by `run_fit` / `propose_from_fit` (`write_predicted`), read back by whoever reports or verifies a
proposal (`read_predicted`): one model, so no caller digs through nested dicts.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from olmix_core.errors import ArtifactCorrupt, ArtifactMissing

FILE = "predicted_performance.json"


class PredictedObjective(BaseModel):
    model_config = ConfigDict(extra="allow")

    definition: str  # a metric name, or e.g. "mean of 6 metrics"
    direction: str = "minimize"
    predicted: float | None  # at the proposal (lower is better, maximised metrics negated; make_worst_mix: as is)
    std: float | None = None  # the models' uncertainty of `predicted` (None where no objective model has one)
    at_prior: float | None
    at_reference: float | None = None
    minimised: float | None = None  # with the KL and uncertainty penalties: what the proposer minimised
    kl_reg: float = 0.0
    uncertainty_penalty: float = 0.0


class PredictedMetric(BaseModel):
    model_config = ConfigDict(extra="allow")

    predicted: float | None
    std: float | None = None
    cv_mae: float | None = None
    model: str
    direction: str = "minimize"
    at_prior: float | None = None
    at_reference: float | None = None


class TokenCap(BaseModel):
    weight: float  # the proposal's weight of the domain
    cap: float  # token_counts × repetition_factor / target_tokens
    holds: bool


class PredictedPerformance(BaseModel):
    model_config = ConfigDict(extra="allow")

    objective: PredictedObjective
    proposer: str
    prior_weights: dict[str, float]
    metrics: dict[str, PredictedMetric]
    token_caps: dict[str, TokenCap] | None = None  # domains capped below 1 (token caps on)
    token_caps_hold: bool | None = None

    def predicted_metrics(self) -> dict[str, float]:
        """metric -> predicted value at the proposal (metrics without a finite prediction left out)."""
        return {m: float(v.predicted) for m, v in self.metrics.items() if v.predicted is not None}


def write_predicted(folder: Path, perf: PredictedPerformance) -> str:
    """`{folder}/predicted_performance.json`; returns its name relative to `folder`."""
    (folder / FILE).write_text(perf.model_dump_json(indent=2, exclude_unset=True) + "\n")
    return FILE


def read_predicted(url: str) -> PredictedPerformance:
    """predicted_performance.json at `url` (a path, or an s3:// / gs:// URL)."""
    from olmix_core.store import open_fs

    fs, path = open_fs(url)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise ArtifactMissing(f"{url}: not found") from None
    try:
        return PredictedPerformance.model_validate(json.loads(data))
    except ValueError as e:
        raise ArtifactCorrupt(f"{url}: invalid predicted performance ({e})") from None
