"""`run_fit`: tables in, models + report + proposal + plots out. The CLI, the Prefect tasks and `olmix swarm` call this."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from olmix_core.errors import ConfigError, DataError
from olmix_core.fit.constraints import Bounds, resolve_bounds
from olmix_core.fit.families import Selection, load_selection, objective_terms
from olmix_core.fit.fitting import FittedModels, Progress, fit_models, scores
from olmix_core.fit.objective import Objective, build_objective
from olmix_core.fit.options import FitOptions
from olmix_core.fit.predicted import PredictedPerformance, write_predicted
from olmix_core.fit.proposers import Problem, Proposal, exact_possible, propose
from olmix_core.fit.tables import SwarmTable, load_mixture, load_priors


@dataclass
class FitResult:
    """What `run_fit` wrote (paths relative to `output_dir`) and the proposal in memory."""

    output_dir: str
    files: dict[str, str]
    models: FittedModels
    report: dict[str, Any]
    proposal: Proposal | None = None
    predicted: PredictedPerformance | None = None  # contents of predicted_performance.json
    warnings: list[str] = field(default_factory=list)

    @property
    def proposed_weights(self) -> dict[str, float] | None:
        return None if self.proposal is None else self.proposal.weights

    @property
    def predicted_objective(self) -> float | None:
        """The proposal's predicted objective as reported (for make_worst_mix: the objective itself, not negated)."""
        if self.proposal is None:
            return None
        return self.predicted.objective.predicted if self.predicted else self.proposal.objective


def _json(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> float."""
    if isinstance(obj, dict):
        return {str(k): _json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _json(obj.tolist())
    return obj


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_json(obj), indent=2) + "\n")


@dataclass
class Setup:
    """Everything about the proposal that does not need models: checked before the (slow) fit."""

    prior: np.ndarray
    objective: Objective
    bounds: Bounds
    reference: np.ndarray | None
    warnings: list[str]
    maximize: tuple[str, ...] = ()  # fitted columns where higher is better
    worst: bool = False  # make_worst_mix: the objective's signs are flipped, so the proposer maximises it

    def problem(self, table: SwarmTable, models: FittedModels, options: FitOptions) -> Problem:
        return Problem(
            models=models,
            objective=self.objective,
            bounds=self.bounds,
            prior=self.prior,
            reference=self.reference,
            tol=options.constraints.tol,
            maximize=self.maximize,
            observed_X=table.X,
            observed_Y=table.Y,
            seed=options.seed,
            uncertainty=options.proposer.uncertainty_penalty,
        )


def prepare(selection: Selection | SwarmTable, options: FitOptions,
            priors: str | Path | dict[str, Any] | None = None) -> Setup:
    """Prior, objective, bounds and reference for the table; InfeasibleError / DataError name what is wrong."""
    if isinstance(selection, SwarmTable):
        selection = Selection(selection, {}, False)
    table = selection.table
    warnings: list[str] = []
    token_counts = None
    if priors is not None:
        p, warnings = load_priors(priors, table.domains)
        prior = np.array([p.relative_sizes[d] for d in table.domains])
        token_counts = p.token_counts
    else:
        prior = table.X.mean(0)
        prior = prior / prior.sum()
        warnings.append("no priors given: the prior mixture is the mean of the swarm's mixtures")
    objective_name, obj_weights, maximize, notes = objective_terms(selection, options)
    warnings += notes
    objective = build_objective(
        table.metrics,
        prior,
        objective=objective_name,
        obj_weights=obj_weights,
        opt_avg_metric=options.filtering.opt_avg_metric,
        maximize=maximize,
        kl_reg=options.proposer.kl_reg,
    )
    worst = options.proposer.make_worst_mix
    if worst:
        objective.signs = -objective.signs
        objective.label = f"worst mixture: maximise {objective.label}"
    c = options.constraints
    if c.target_tokens is not None and not c.caps_on:
        warnings.append("fit.constraints.target_tokens is set but fit.constraints.enabled is false: no token caps")
    bounds = resolve_bounds(c, table.domains, token_counts)
    reference = None
    if c.reference is not None:
        ref = load_mixture(c.reference, table.domains, "reference")
        reference = np.array([ref[d] for d in table.domains])
    return Setup(prior, objective, bounds, reference, warnings, tuple(maximize), worst)


def _proposer_options(options: FitOptions, proposer: str) -> dict[str, Any]:
    p = options.proposer
    if proposer in ("simulation", "simulation_iterative"):
        kw: dict[str, Any] = {"num_samples": p.num_samples, "top_k": p.top_k, "temperature": p.temperature}
        if proposer == "simulation_iterative":
            kw["rounds"] = p.rounds
        return kw
    if proposer == "general":
        return {"num_starts": p.num_starts}
    return {}


def _upload(local: Path, output_dir: str) -> None:
    from olmix_core.store import open_fs

    fs, root = open_fs(output_dir)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.put_file(str(p), f"{root.rstrip('/')}/{p.relative_to(local).as_posix()}")


def split_rows(n: int, options: FitOptions) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows) as Ai2's olmix splits: `n_test` runs held out with sklearn's seeded
    train_test_split, then the rest subsampled to `train_split` (a fraction, or a count when > 1)."""
    from sklearn.model_selection import train_test_split

    r, seed = options.regression, options.seed
    train, test = np.arange(n), np.array([], dtype=int)
    if r.n_test > 0:
        if r.n_test >= n:
            raise DataError(f"fit.regression.n_test {r.n_test} holds out every one of the {n} runs")
        train, test = train_test_split(train, test_size=r.n_test / n, random_state=seed)
    if r.train_split != 1.0:
        size = int(r.train_split) if r.train_split > 1 else r.train_split
        if size != len(train):
            if isinstance(size, int) and size > len(train):
                raise DataError(f"fit.regression.train_split {size} is more than the {len(train)} runs left to train on")
            train = train_test_split(train, train_size=size, random_state=seed)[0]
    return np.asarray(train), np.asarray(test)


def _subset(table: SwarmTable, rows: np.ndarray) -> SwarmTable:
    return replace(
        table,
        ids=[table.ids[i] for i in rows],
        names=None if table.names is None else [table.names[i] for i in rows],
        X=table.X[rows],
        Y=table.Y[rows],
    )


def _holdout(models: FittedModels, table: SwarmTable, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"train_runs": len(train), "test_runs": len(test), "unused_runs": len(table.ids) - len(train) - len(test)}
    if len(test):
        P = models.predict(table.X[test])
        per = {m: scores(P[:, j], table.Y[test, j]) for j, m in enumerate(models.metrics)}
        out["test_ids"] = [table.ids[i] for i in test]
        out["metrics"] = per
        rho = [v["spearman"] for v in per.values() if v.get("spearman") is not None and math.isfinite(v["spearman"])]
        out["mean_spearman"] = float(np.mean(rho)) if rho else None
    return out


def run_fit(
    ratios_path: str | Path,
    metrics_path: str | Path,
    output_dir: str | Path,
    options: FitOptions | dict[str, Any] | None = None,
    priors: str | Path | dict[str, Any] | None = None,
    *,
    progress: Progress | None = None,
) -> FitResult:
    """Fit one model per metric (or task family), propose a mixture (unless `fit_only` or runs are held out), and
    write into `output_dir` (a folder or an fsspec URL such as s3://bucket/swarm/fits/x):

    fit_report.json, models/ (reload with `FittedModels.load`), proposed_weights.json, predicted_performance.json
    and plots/*.png. Bad tables raise DataError; constraints no mixture meets raise InfeasibleError (before fitting).
    `progress(fraction, message)` follows the work (the fit is 90% of it, the proposal the rest).
    """
    options = FitOptions.from_dict(options or {}, prefix="fit.")
    t0 = time.perf_counter()
    selection = load_selection(ratios_path, metrics_path, options)
    table = selection.table
    warnings = list(table.warnings)
    setup = None
    if options.proposes:  # objective and constraints are checked before the (slow) fit
        setup = prepare(selection, options, priors)
        warnings += setup.warnings
    elif options.regression.n_test > 0 and not options.proposer.fit_only:
        warnings.append(f"fit.regression.n_test is {options.regression.n_test}: runs are held out for scoring, so no "
                        "mixture is proposed (as in Ai2's olmix); set it to 0 to propose")
    if options.proposer.temperature is not None and options.proposer.type not in ("simulation", "simulation_iterative"):
        warnings.append(f"fit.proposer.temperature is used by the simulation proposers only, not {options.proposer.type!r}")
    train, test = split_rows(len(table.ids), options)
    fit_table = _subset(table, train) if len(train) < len(table.ids) else table
    r = options.regression
    try:
        models = fit_models(fit_table, r.type, folds=r.folds, seed=options.seed, n_jobs=r.n_jobs,
                            candidates=r.candidates, selection=r.selection,
                            progress=None if progress is None else (lambda f, msg: progress(0.9 * f if setup else f, msg)))
    except DataError as e:
        if table.unmatched:  # say first why there are fewer runs than the files have
            raise DataError(f"{table.unmatched}; {e}") from None
        raise
    t_fit = time.perf_counter() - t0
    from olmix_core.fit.report import interaction_matrix, write_plots

    inter = interaction_matrix(models, fit_table.X, fit_table.Y, seed=options.seed)
    report: dict[str, Any] = {
        "ratios": str(ratios_path),
        "metrics_file": str(metrics_path),
        "runs": len(fit_table.ids),
        "dropped_runs": table.dropped,
        "warnings": warnings,
        **models.report(),
        "holdout": _holdout(models, table, train, test),
        "families": selection.families if selection.families else None,
        "aggregate_task_families": selection.aggregated,
        "dropped_metrics": selection.dropped,
        "options": options.model_dump(mode="json"),
        "interaction": {
            m: {d: float(inter[i, j]) for i, d in enumerate(table.domains)} for j, m in enumerate(table.metrics)
        },
        "seconds": {"fit": round(t_fit, 3)},
    }
    proposal = None
    predicted = None
    weights_plot = None
    pareto_plot = None
    if setup is not None:
        if progress:
            progress(0.9, f"proposing ({options.proposer.type} proposer)")
        proposal, predicted, info, weights_plot, pareto_plot = _propose_on(fit_table, models, setup, options)
        if progress:
            progress(1.0, f"proposed ({proposal.proposer} proposer)")
        report["seconds"]["propose"] = info.pop("seconds")
        report["proposer"] = info
        report["uncertainty_at_proposal"] = {
            "objective_std": predicted.objective.std,
            "metrics": {m: {"std": v.std, "cv_mae": v.cv_mae} for m, v in predicted.metrics.items()},
        }
    out_str = str(output_dir)
    remote = "://" in out_str
    local = Path(tempfile.mkdtemp(prefix="olmix-fit-")) if remote else Path(out_str)
    try:
        local.mkdir(parents=True, exist_ok=True)
        files = {"fit_report": "fit_report.json", "models": "models/manifest.json"}
        models.save(local / "models")
        if proposal is not None:
            _write_json(local / "proposed_weights.json", proposal.weights)
            assert predicted is not None
            files["proposed_weights"] = "proposed_weights.json"
            files["predicted_performance"] = write_predicted(local, predicted)
        if options.plots:
            files.update(write_plots(local / "plots", models, fit_table.Y, inter, weights_plot, pareto_plot))
        report["seconds"]["total"] = round(time.perf_counter() - t0, 3)
        report["files"] = files
        _write_json(local / "fit_report.json", report)
        if remote:
            _upload(local, out_str)
    finally:
        if remote:
            shutil.rmtree(local, ignore_errors=True)
    return FitResult(out_str, files, models, _json(report), proposal, predicted, warnings)


def _propose_on(
    table: SwarmTable, models: FittedModels, setup: Setup, options: FitOptions
) -> tuple[Proposal, PredictedPerformance, dict[str, Any], dict[str, np.ndarray], dict[str, Any] | None]:
    """The proposal, its predicted performance, the proposer's report, and the data of the weights/Pareto plots."""
    problem = setup.problem(table, models, options)
    t1 = time.perf_counter()
    proposal = propose_with(table, models, setup, options, problem)
    info = {"type": proposal.proposer, "requested": options.proposer.type, "seconds": round(time.perf_counter() - t1, 3),
            **proposal.details}
    weights_plot = {"prior": problem.prior, "proposed": proposal.x}
    pareto_plot = None
    if problem.reference is not None:
        weights_plot["reference"] = problem.reference
        assert problem.ref_pred is not None
        pareto_plot = {
            "metrics": problem.pareto_metrics,
            "reference": problem.ref_pred,
            "proposed": problem.models.predict(proposal.x[None, :], problem.pareto_metrics)[0],
            "signs": problem.pareto_signs,
            "tol": problem.tol,
        }
    return proposal, _predicted_performance(problem, proposal, setup), info, weights_plot, pareto_plot


def propose_with(table: SwarmTable, models: FittedModels, setup: Setup, options: FitOptions,
                 problem: Problem | None = None) -> Proposal:
    """The proposal `olmix fit` makes: `fit.proposer.type` (auto: exact when the models allow it, else general),
    then, with `fit.proposer.residual_gp`, corrected by the runs."""
    problem = problem or setup.problem(table, models, options)
    proposer = options.proposer.type
    if proposer == "auto":
        proposer = "exact" if exact_possible(problem) else "general"
    proposal = propose(problem, proposer, **_proposer_options(options, proposer))
    if options.proposer.residual_gp:
        proposal = _residual_gp(table, models, setup, options, proposal)
    return proposal


def _residual_gp(table: SwarmTable, models: FittedModels, setup: Setup, options: FitOptions, base: Proposal) -> Proposal:
    """`base` corrected by the runs (`fit.posterior.propose_posterior`): candidates are compared by the posterior
    mean + β × the posterior std (β = `fit.proposer.uncertainty_penalty`), whose std already holds the models' own."""
    from threadpoolctl import threadpool_limits

    from olmix_core.fit.posterior import propose_posterior

    plain = options.with_proposer(uncertainty_penalty=0.0)
    with threadpool_limits(1):  # small matrices (see fit.proposers)
        return propose_posterior(setup.problem(table, models, plain), base, options.proposer.uncertainty_penalty)


def propose_from_fit(
    ratios_path: str | Path,
    metrics_path: str | Path,
    fit_dir: str | Path,
    options: FitOptions | dict[str, Any] | None = None,
    priors: str | Path | dict[str, Any] | None = None,
) -> FitResult:
    """The second half of `run_fit`, for pipelines that fit and propose as separate (separately cached) steps:
    loads the models that `run_fit(..., fit_only=True)` saved in `fit_dir`, proposes on the same tables, and writes
    proposed_weights.json, predicted_performance.json and plots/proposed_vs_prior.png (and pareto.png) there."""
    from olmix_core.fit.report import plot_pareto, plot_weights

    options = FitOptions.from_dict(options or {}, prefix="fit.")
    if options.regression.n_test > 0:
        raise ConfigError(f"fit.regression.n_test is {options.regression.n_test}: runs held out for scoring give no "
                          "proposal (as in Ai2's olmix); set it to 0 to propose")
    out_str = str(fit_dir).rstrip("/")
    models = FittedModels.load(f"{out_str}/models")
    selection = load_selection(ratios_path, metrics_path, options)
    table = selection.table
    if list(table.domains) != list(models.domains) or list(table.metrics) != list(models.metrics):
        raise DataError(
            f"{out_str}: models were fitted on domains {models.domains} and metrics {models.metrics}; "
            f"the tables have {table.domains} and {table.metrics}"
        )
    train, _ = split_rows(len(table.ids), options)
    if len(train) < len(table.ids):
        table = _subset(table, train)
    setup = prepare(selection, options, priors)
    proposal, predicted, info, weights_plot, pareto_plot = _propose_on(table, models, setup, options)
    remote = "://" in out_str
    local = Path(tempfile.mkdtemp(prefix="olmix-propose-")) if remote else Path(out_str)
    try:
        files = {"proposed_weights": "proposed_weights.json", "predicted_performance": "predicted_performance.json"}
        _write_json(local / "proposed_weights.json", proposal.weights)
        write_predicted(local, predicted)
        if options.plots:
            (local / "plots").mkdir(parents=True, exist_ok=True)
            plot_weights(models.domains, weights_plot, local / "plots" / "proposed_vs_prior.png")
            files["proposed_vs_prior"] = "plots/proposed_vs_prior.png"
            if pareto_plot:
                plot_pareto(**pareto_plot, path=local / "plots" / "pareto.png")
                files["pareto"] = "plots/pareto.png"
        if remote:
            _upload(local, out_str)
    finally:
        if remote:
            shutil.rmtree(local, ignore_errors=True)
    return FitResult(out_str, files, models, _json({"proposer": info}), proposal, predicted, setup.warnings)


def _predicted_performance(problem: Problem, proposal: Proposal, setup: Setup) -> PredictedPerformance:
    models = problem.models
    ms = models.metrics
    x = proposal.x[None, :]
    pred = models.predict(x)[0]
    std = models.predict_std(x)[0]
    prior_pred = models.predict(problem.prior[None, :])[0]
    ref_pred = models.predict(problem.reference[None, :])[0] if problem.reference is not None else None
    obj_cols = [ms.index(m) for m in problem.objective.metrics]
    sign = -1.0 if setup.worst else 1.0  # the worst mixture's objective is reported as is, not negated
    obj_std = problem.objective_std(x)[0]
    out: dict[str, Any] = {
        "objective": {
            "definition": problem.objective.label,
            "direction": "maximize (make_worst_mix)" if setup.worst else "minimize",
            "predicted": sign * proposal.objective,
            # how unsure the models are at the proposal (Problem.objective_std; the posterior proposal: its own)
            "std": proposal.details["posterior_std"] if proposal.proposer == "posterior"
            else None if np.isnan(obj_std) else float(obj_std),
            "at_prior": sign * float(problem.objective.from_predictions(prior_pred[obj_cols][None, :])[0]),
            **(
                {"at_reference": sign * float(problem.objective.from_predictions(ref_pred[obj_cols][None, :])[0])}
                if ref_pred is not None
                else {}
            ),
            "minimised": proposal.penalised,
            "kl_reg": problem.objective.kl_reg,
            "uncertainty_penalty": problem.uncertainty if problem._use_std else 0.0,
        },
        "proposer": proposal.proposer,
        "prior_weights": {d: float(w) for d, w in zip(models.domains, problem.prior, strict=True)},
        "metrics": {},
    }
    for j, m in enumerate(ms):
        f = models.fits[m]
        entry: dict[str, Any] = {
            "predicted": float(pred[j]),
            "std": None if math.isnan(std[j]) else float(std[j]),
            "cv_mae": f.scores.get(f.chosen, {}).get("mae"),
            "model": f.chosen,
            "direction": "maximize" if m in problem.maximize else "minimize",
            "at_prior": float(prior_pred[j]),
        }
        if ref_pred is not None:
            entry["at_reference"] = float(ref_pred[j])
        out["metrics"][m] = entry
    caps = problem.bounds.caps
    if caps:
        w = dict(zip(models.domains, proposal.x.tolist()))
        out["token_caps"] = {d: {"weight": w[d], "cap": cap, "holds": w[d] <= cap} for d, cap in caps.items()}
        out["token_caps_hold"] = all(v["holds"] for v in out["token_caps"].values())
    return PredictedPerformance.model_validate(_json(out))
