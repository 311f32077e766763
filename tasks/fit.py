"""Fit, propose and verify: the stages after results are pulled (olmix_core.fit, olmix_core.swarm).

A fit lives in `fits/{fit id}/` with `olmix swarm`'s id (`olmix_core.swarm.fit_id_for`: the content of the tables
and the fit options), so the same tables and options give the same fit — and the cached task returns it — while
new results give a new fit next to the old ones. The fit task copies the tables there, so the proposal and the
verification use exactly what the models were fitted on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.fit import FitOptions, propose_from_fit, run_fit
from olmix_core.reuse import expand_weights, propose_expanded, reduced_fit_inputs
from olmix_core.store import SwarmStore
from olmix_core.swarm import VERIFY_FILE, VerifyResult, fit_id_for, fit_options, verify_proposal
from tasks._common import OUTSIDE_WORLD, RESULT_SERIALIZER, SWARM_CACHE, artifact_key, open_swarm_store
from tasks.launch import make_launcher

TABLES = ("ratios.csv", "metrics.csv")


class FitSummary(BaseModel):
    fit_id: str
    url: str  # fits/{fit id}/ in the store
    runs: int
    metrics: list[str]
    chosen: dict[str, str]  # metric -> chosen regressor
    cv: dict[str, dict[str, dict[str, float | None]]]  # metric -> regressor -> {spearman, pearson, mae}
    plots: dict[str, str]  # name -> store URL
    warnings: list[str] = []


class ProposalSummary(BaseModel):
    fit_id: str
    weights: dict[str, float]
    prior: dict[str, float]
    objective: str  # its definition, e.g. a metric name or "mean of 6 metrics"
    predicted_objective: float
    prior_objective: float  # predicted at the prior
    predicted: dict[str, float]  # metric -> predicted value at the proposal
    proposer: str
    weights_url: str
    predicted_url: str


def _priors(swarm: SwarmStore) -> dict[str, Any]:
    return swarm.store.read_json(swarm.key(SwarmStore.PRIORS))


@task(name="fit", task_run_name="fit {config.name}/{group_id} on tables {tables_sha256:.12}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def fit_swarm(config: ExperimentConfig, group_id: str, tables_sha256: str) -> FitSummary:
    """One model per metric (config `fit.regression_type`, cross-validated) on the pulled tables, saved with its
    report and plots in `fits/{fit id}/`. `tables_sha256` (of results/ratios.csv + metrics.csv) keys the cache."""
    swarm = open_swarm_store(config, group_id)
    tables = {name: swarm.store.read_text(swarm.results_key(name)) for name in TABLES}
    options, priors = reduced_fit_inputs(config, fit_options(config), _priors(swarm))
    fit_id = fit_id_for(tables["ratios.csv"], tables["metrics.csv"], options)
    for name, text in tables.items():
        swarm.store.write_text(swarm.fit_key(fit_id, name), text)
    result = run_fit(swarm.url("fits", fit_id, "ratios.csv"), swarm.url("fits", fit_id, "metrics.csv"), swarm.url("fits", fit_id),
                     FitOptions(**options, fit_only=True), priors=priors)
    report = result.report  # JSON-safe: NaN scores are None
    cv = {m: info["cv"] for m, info in report["metrics"].items()}
    chosen = {m: info["chosen"] for m, info in report["metrics"].items()}
    rows = [
        {"metric": m, "regressor": reg, "chosen": "yes" if reg == chosen[m] else "",
         **{k: None if v is None else round(v, 4) for k, v in scores.items()}}
        for m, regs in cv.items() for reg, scores in regs.items()
    ]
    create_table_artifact(rows, key=artifact_key(group_id, "fit"),
                          description=f"**{config.name}** `{group_id}` {fit_id}: cross-validated scores per metric and regressor "
                                      f"({report['runs']} runs)")
    plots = {Path(p).stem: swarm.url("fits", fit_id, p) for p in result.files.values() if p.endswith(".png")}
    get_run_logger().info("fit %s on %d runs: %s", fit_id, report["runs"], ", ".join(f"{m}: {c}" for m, c in chosen.items()))
    return FitSummary(fit_id=fit_id, url=swarm.url("fits", fit_id), runs=report["runs"], metrics=list(chosen), chosen=chosen,
                      cv=cv, plots=plots, warnings=[str(w) for w in result.warnings])


@task(name="propose", task_run_name="propose {config.name}/{group_id} from {fit_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def propose_mixture(config: ExperimentConfig, group_id: str, fit_id: str) -> ProposalSummary:
    """The mixture that optimises the config's objective under its constraints (token caps, minimum and fixed
    weights), from the saved models of `fit_id` (`olmix_core.fit.propose_from_fit`, the same code as `olmix fit`)."""
    swarm = open_swarm_store(config, group_id)
    fit_dir = swarm.url("fits", fit_id)
    tables = (f"{fit_dir}/ratios.csv", f"{fit_dir}/metrics.csv")
    options, priors = reduced_fit_inputs(config, fit_options(config), _priors(swarm))
    result = propose_from_fit(*tables, fit_dir, options, priors=priors)
    if config.reuse is not None:  # a reduced swarm's proposal, expanded over every leaf (and so verified)
        result, _ = propose_expanded(config, result, *tables, fit_dir, options, priors)
    perf = result.predicted or {}
    prior = expand_weights(config, perf["prior_weights"])
    weights = expand_weights(config, {k: float(v) for k, v in (result.proposed_weights or {}).items()})
    objective = perf["objective"]
    predicted = {m: float(v["predicted"]) for m, v in perf["metrics"].items()}
    weights_url = swarm.url("fits", fit_id, result.files["proposed_weights"])
    predicted_url = swarm.url("fits", fit_id, result.files["predicted_performance"])
    create_table_artifact(
        [{"leaf": d, "prior": round(prior[d], 4), "proposed": round(weights.get(d, 0.0), 4),
          "change": round(weights.get(d, 0.0) - prior[d], 4)} for d in prior],
        key=artifact_key(group_id, "proposal"),
        description=(f"**{config.name}** `{group_id}`: proposed mixture next to the prior ({perf['proposer']} proposer); "
                     f"predicted {objective['definition']}: {objective['predicted']:.4f} (prior: {objective['at_prior']:.4f})"),
    )
    return ProposalSummary(
        fit_id=fit_id, weights=weights, prior=prior, objective=objective["definition"],
        predicted_objective=float(objective["predicted"]), prior_objective=float(objective["at_prior"]), predicted=predicted,
        proposer=perf["proposer"], weights_url=weights_url, predicted_url=predicted_url,
    )


@task(name="verify", task_run_name="verify {config.name}/{group_id} proposal of {proposal.fit_id}", cache_policy=SWARM_CACHE,
      result_serializer=RESULT_SERIALIZER, **OUTSIDE_WORLD)
def verify(config: ExperimentConfig, group_id: str, proposal: ProposalSummary, launcher: str,
           launcher_options: dict[str, Any] | None = None, timeout_s: float | None = None) -> VerifyResult:
    """Train one more proxy on the proposed mixture, like the swarm's runs, and compare its actual objective with
    the predicted one and the swarm's runs (olmix_core.swarm.verify_proposal); writes fits/{fit id}/verify.json."""
    swarm = open_swarm_store(config, group_id)
    predicted = swarm.store.read_json(swarm.fit_key(proposal.fit_id, "predicted_performance.json"))
    result = verify_proposal(
        config, swarm, make_launcher(launcher, config, group_id, launcher_options), proposal.weights, predicted,
        swarm.url("fits", proposal.fit_id, "metrics.csv"), proposal.fit_id, timeout_s, progress=get_run_logger().info,
    )
    swarm.store.write_text(swarm.fit_key(proposal.fit_id, VERIFY_FILE), result.model_dump_json(indent=2) + "\n")
    get_run_logger().info("verified: actual %.4f, predicted %.4f, swarm best %.4f / median %.4f, rank %d of %d",
                          result.actual_objective, proposal.predicted_objective, result.swarm_best_objective,
                          result.swarm_median_objective, result.rank, result.n_runs + 1)
    return result
