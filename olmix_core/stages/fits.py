"""The fit and propose stages, on the tables the pull stage left in the store's results/.

A fit lives in `fits/{fit id}/`, its id from the content of the tables and the fit options (`fit_id_for`), so the
same tables and options give the same fit — a re-run reuses it, and its verify run — while new results give a new
fit next to the old ones. `fit` copies the tables there, so the proposal and the verification use exactly what the
models were fitted on. `record_fit` keeps the latest in metadata.json's `last_fit`, which `up_to_date` compares.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.fit.options import FitOptions, options_from_experiment
from olmix_core.fit.predicted import read_predicted
from olmix_core.metadata import LastFit, update_metadata
from olmix_core.reuse import EXPANDED_FILE, expand_weights, propose_expanded, reduced_fit_inputs
from olmix_core.runspec import now_iso
from olmix_core.stages.results import TABLES, Pulled
from olmix_core.store import SwarmStore

logger = logging.getLogger(__name__)


class FitSummary(BaseModel):
    fit_id: str
    url: str  # fits/{fit id}/ in the store
    runs: int
    metrics: list[str]
    chosen: dict[str, str]  # metric -> chosen regressor
    cv: dict[str, dict[str, dict[str, float | None]]]  # metric -> regressor -> {spearman, pearson, mae}
    plots: dict[str, str]  # name -> store URL
    warnings: list[str] = []
    files: dict[str, str] = {}  # name -> path relative to `url` (fit_report, models, plots)


class ProposalSummary(BaseModel):
    fit_id: str
    weights: dict[str, float]  # over every leaf
    reduced_weights: dict[str, float] | None = None  # a reuse swarm's proposal over {existing, free leaves}
    prior: dict[str, float]
    objective: str  # its definition, e.g. a metric name or "mean of 6 metrics"
    predicted_objective: float
    prior_objective: float  # predicted at the prior
    predicted: dict[str, float]  # metric -> predicted value at the proposal
    proposer: str
    weights_url: str
    predicted_url: str
    files: dict[str, str] = {}  # name -> path relative to fits/{fit id}/ (proposed_weights, predicted_performance, plots)


def fit_options(config: ExperimentConfig) -> FitOptions:
    """`config.fit` with the swarm's own token caps, fixed weights and seed (`olmix_core.fit.options`)."""
    return options_from_experiment(config)


def fit_id_for(ratios_csv: str, metrics_csv: str, options: FitOptions) -> str:
    """Same tables and options, same fit id: a re-run reuses the fit folder (and its verify run)."""
    payload = ratios_csv + "\0" + metrics_csv + "\0" + json.dumps(options.model_dump(mode="json"), sort_keys=True)
    return "fit-" + hashlib.sha256(payload.encode()).hexdigest()[:8]


def _priors(swarm: SwarmStore) -> dict[str, Any]:
    return swarm.store.read_json(swarm.key(SwarmStore.PRIORS))


def fit(
    config: ExperimentConfig, swarm: SwarmStore, progress: Callable[[float, str], None] | None = None
) -> FitSummary:
    """One model per metric or task family (config `fit.regression`, cross-validated) on the store's results/ tables, saved
    with its report and plots in `fits/{fit id}/`; `progress(fraction, message)` follows the fit."""
    from olmix_core.fit import run_fit

    tables = {name: swarm.store.read_text(swarm.results_key(name)) for name in TABLES}
    options, priors = reduced_fit_inputs(config, fit_options(config), _priors(swarm))
    fit_id = fit_id_for(tables["ratios.csv"], tables["metrics.csv"], options)
    for name, text in tables.items():
        swarm.store.write_text(swarm.fit_key(fit_id, name), text)
    result = run_fit(swarm.url("fits", fit_id, "ratios.csv"), swarm.url("fits", fit_id, "metrics.csv"), swarm.url("fits", fit_id),
                     options.fitting_only(), priors=priors, progress=progress)
    report = result.report  # JSON-safe: NaN scores are None
    cv = {m: info["cv"] for m, info in report["metrics"].items()}
    chosen = {m: info["chosen"] for m, info in report["metrics"].items()}
    plots = {Path(p).stem: swarm.url("fits", fit_id, p) for p in result.files.values() if p.endswith(".png")}
    return FitSummary(fit_id=fit_id, url=swarm.url("fits", fit_id), runs=report["runs"], metrics=list(chosen), chosen=chosen,
                      cv=cv, plots=plots, warnings=[str(w) for w in result.warnings], files=dict(result.files))


def with_residual_gp(options: FitOptions, swarm: SwarmStore, fit_id: str) -> FitOptions:
    """`fit.proposer.residual_gp: null` resolved for one fit: on when its runs include adaptive rounds (appended
    runs cluster where the models put the optimum, so the runs there correct them; bench/adaptive.py). Decided by
    the fit's own table, so proposing again from the same fit gives the same proposal."""
    import io

    import pandas as pd

    if options.proposer.residual_gp is not None:
        return options
    ratios = pd.read_csv(io.StringIO(swarm.store.read_text(swarm.fit_key(fit_id, "ratios.csv"))))
    runs = ratios["run"] if "run" in ratios else []
    specs = swarm.read_run_files("spec.json")
    on = any(int(specs.get(str(r), {}).get("round", 0)) > 0 for r in runs)
    return options.with_proposer(residual_gp=on)


def propose(config: ExperimentConfig, swarm: SwarmStore, fit_id: str) -> ProposalSummary:
    """The mixture that optimises the config's objective under its constraints (token caps, minimum and fixed
    weights), from the saved models of `fit_id` (`olmix_core.fit.propose_from_fit`, the same code as `olmix fit`)."""
    from olmix_core.fit import propose_from_fit

    fit_dir = swarm.url("fits", fit_id)
    tables = (f"{fit_dir}/ratios.csv", f"{fit_dir}/metrics.csv")
    options, priors = reduced_fit_inputs(config, fit_options(config), _priors(swarm))
    options = with_residual_gp(options, swarm, fit_id)
    result = propose_from_fit(*tables, fit_dir, options, priors=priors)
    weights = {k: float(v) for k, v in (result.proposed_weights or {}).items()}
    reduced = None
    if config.reuse is not None:  # a reduced swarm: the proposal over every leaf is what gets verified and reused
        result, _ = propose_expanded(config, result, *tables, fit_dir, options, priors)
        result.files["proposed_weights_expanded"] = EXPANDED_FILE
        reduced = {k: float(v) for k, v in (result.proposed_weights or {}).items()}
        weights = expand_weights(config, reduced)
    predicted_url = swarm.url("fits", fit_id, result.files["predicted_performance"])
    perf = read_predicted(predicted_url)
    objective = perf.objective
    return ProposalSummary(
        fit_id=fit_id, weights=weights, reduced_weights=reduced,
        prior=perf.prior_weights if reduced is None else expand_weights(config, perf.prior_weights),
        objective=objective.definition, predicted_objective=float(objective.predicted), prior_objective=float(objective.at_prior),
        predicted=perf.predicted_metrics(), proposer=perf.proposer,
        weights_url=swarm.url("fits", fit_id, result.files["proposed_weights"]), predicted_url=predicted_url,
        files=dict(result.files),
    )


def fit_score_rows(fit: FitSummary) -> list[dict[str, Any]]:
    """One row per metric and regressor: its cross-validated scores, and whether it was chosen."""
    return [
        {"metric": m, "regressor": reg, "chosen": "yes" if reg == fit.chosen[m] else "",
         **{k: None if v is None else round(v, 4) for k, v in scores.items()}}
        for m, regs in fit.cv.items() for reg, scores in regs.items()
    ]


def proposal_rows(proposal: ProposalSummary) -> list[dict[str, Any]]:
    """One row per leaf: its prior weight, its proposed weight and the change."""
    w = proposal.weights
    return [{"leaf": d, "prior": round(p, 4), "proposed": round(w.get(d, 0.0), 4), "change": round(w.get(d, 0.0) - p, 4)}
            for d, p in proposal.prior.items()]


def up_to_date(swarm: SwarmStore, pulled: Pulled) -> LastFit | None:
    """The swarm's last fit when it was on exactly these tables (nothing new to fit), else None."""
    last = swarm.metadata().last_fit
    return last if last is not None and last.tables_sha256 == pulled.tables_sha256 else None


def record_fit(swarm: SwarmStore, pulled: Pulled, fit: FitSummary, proposal: ProposalSummary, actual_objective: float | None = None) -> LastFit:
    """metadata.json's `last_fit`: what the re-fit compares new tables with."""
    last = LastFit(fit_id=fit.fit_id, tables_sha256=pulled.tables_sha256, runs=fit.runs, time=now_iso(),
                   predicted_objective=proposal.predicted_objective, actual_objective=actual_objective)
    update_metadata(swarm, last_fit=last)
    return last
