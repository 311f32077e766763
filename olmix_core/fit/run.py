"""`run_fit`: tables in, models + report + proposal + plots out. The CLI, the Prefect tasks and `olmix swarm` call this."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from olmix_core.errors import ConfigError, DataError
from olmix_core.fit.constraints import Bounds, Constraints, resolve_bounds
from olmix_core.fit.fitting import FittedModels, fit_models
from olmix_core.fit.objective import Objective, build_objective
from olmix_core.fit.predicted import PredictedPerformance, write_predicted
from olmix_core.fit.proposers import PROPOSER_TYPES, Problem, Proposal, exact_possible, propose
from olmix_core.fit.regressors import REGRESSION_TYPES
from olmix_core.fit.tables import SwarmTable, load_mixture, load_priors, load_tables


class FitOptions(BaseModel):
    """Every `olmix fit` option (also the keys of `--config fit.yaml`)."""

    model_config = ConfigDict(extra="forbid")

    # what to fit
    metrics: list[str] | None = None  # default: every metric column
    regression_type: str = "auto"
    candidates: list[str] | None = None  # auto's candidates; default fitting.AUTO_CANDIDATES
    selection: Literal["spearman", "mae"] = "spearman"
    folds: int = 5
    seed: int = 0
    n_jobs: int = -1
    # objective
    objective: str | None = None
    opt_avg_metric: bool = False
    obj_weights: dict[str, float] | None = None
    maximize: list[str] = []
    kl_reg: float = 0.0
    # constraints
    min_weight_per_domain: float = 0.0
    fixed_weights: dict[str, float] = {}
    target_tokens: float | None = None
    repetition_factor: float | dict[str, float] = 1.0
    reference: dict[str, float] | str | None = None  # mixture or a JSON/YAML file with one
    tol: float = 0.0
    # proposer
    proposer_type: str = "auto"
    uncertainty_penalty: float = 1.0  # minimise prediction + β·std where models have one (0: plain prediction)
    num_samples: int = 200_000  # simulation candidates
    top_k: int = 100
    rounds: int = 5
    num_starts: int = 4
    fit_only: bool = False
    plots: bool = True

    @field_validator("regression_type")
    @classmethod
    def _reg(cls, v: str) -> str:
        if v not in REGRESSION_TYPES:
            raise ValueError(f"unknown regression type {v!r}; choose from {list(REGRESSION_TYPES)}")
        return v

    @field_validator("proposer_type")
    @classmethod
    def _prop(cls, v: str) -> str:
        if v not in PROPOSER_TYPES:
            raise ValueError(f"unknown proposer type {v!r}; choose from {list(PROPOSER_TYPES)}")
        return v

    @field_validator("uncertainty_penalty")
    @classmethod
    def _beta(cls, v: float) -> float:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"uncertainty_penalty must be >= 0 (got {v})")
        return v

    @field_validator("folds")
    @classmethod
    def _folds(cls, v: int) -> int:
        if v < 2:
            raise ValueError(f"folds must be >= 2 (got {v})")
        return v

    @field_validator("num_samples", "top_k", "rounds", "num_starts")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "fit options") -> FitOptions:
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            msgs = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in e.errors()
            )
            raise ConfigError(f"{source}: {msgs}") from None

    def constraints(self) -> Constraints:
        try:
            return Constraints(
                min_weight_per_domain=self.min_weight_per_domain,
                fixed_weights=self.fixed_weights,
                target_tokens=self.target_tokens,
                repetition_factor=self.repetition_factor,
                kl_reg=self.kl_reg,
                tol=self.tol,
            )
        except ValidationError as e:
            raise ConfigError("; ".join(f"{err['loc'][0]}: {err['msg']}" for err in e.errors())) from None


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
        return None if self.proposal is None else self.proposal.objective


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

    def problem(self, table: SwarmTable, models: FittedModels, options: FitOptions) -> Problem:
        return Problem(
            models=models,
            objective=self.objective,
            bounds=self.bounds,
            prior=self.prior,
            reference=self.reference,
            tol=options.tol,
            maximize=tuple(options.maximize),
            observed_X=table.X,
            observed_Y=table.Y,
            seed=options.seed,
            uncertainty=options.uncertainty_penalty,
        )


def prepare(table: SwarmTable, options: FitOptions, priors: str | Path | dict[str, Any] | None = None) -> Setup:
    """Prior, objective, bounds and reference for `table`; InfeasibleError / DataError name what is wrong."""
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
    objective = build_objective(
        table.metrics,
        prior,
        objective=options.objective,
        obj_weights=options.obj_weights,
        opt_avg_metric=options.opt_avg_metric,
        maximize=options.maximize,
        kl_reg=options.kl_reg,
    )
    bounds = resolve_bounds(options.constraints(), table.domains, token_counts)
    reference = None
    if options.reference is not None:
        ref = load_mixture(options.reference, table.domains, "reference")
        reference = np.array([ref[d] for d in table.domains])
    if options.proposer_type == "exact" and options.regression_type not in ("log_linear", "auto"):
        raise DataError(
            f"--proposer-type exact needs --regression-type log_linear (got {options.regression_type!r}); "
            "use --proposer-type general for other models"
        )
    return Setup(prior, objective, bounds, reference, warnings)


def _proposer_options(options: FitOptions, proposer: str) -> dict[str, Any]:
    if proposer in ("simulation", "simulation_iterative"):
        kw: dict[str, Any] = {"num_samples": options.num_samples, "top_k": options.top_k}
        if proposer == "simulation_iterative":
            kw["rounds"] = options.rounds
        return kw
    if proposer == "general":
        return {"num_starts": options.num_starts}
    return {}


def _upload(local: Path, output_dir: str) -> None:
    from olmix_core.store import open_fs

    fs, root = open_fs(output_dir)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.put_file(str(p), f"{root.rstrip('/')}/{p.relative_to(local).as_posix()}")


def run_fit(
    ratios_path: str | Path,
    metrics_path: str | Path,
    output_dir: str | Path,
    options: FitOptions | dict[str, Any] | None = None,
    priors: str | Path | dict[str, Any] | None = None,
) -> FitResult:
    """Fit one model per metric, propose a mixture (unless `fit_only`), and write into `output_dir` (a folder or
    an fsspec URL such as s3://bucket/swarm/fits/x):

    fit_report.json, models/ (reload with `FittedModels.load`), proposed_weights.json, predicted_performance.json
    and plots/*.png. Bad tables raise DataError; constraints no mixture meets raise InfeasibleError (before fitting).
    """
    if options is None:
        options = FitOptions()
    elif isinstance(options, dict):
        options = FitOptions.from_dict(options)
    t0 = time.perf_counter()
    table = load_tables(ratios_path, metrics_path, options.metrics)
    warnings = list(table.warnings)
    setup = None
    if not options.fit_only:  # objective and constraints are checked before the (slow) fit
        setup = prepare(table, options, priors)
        warnings += setup.warnings
    models = fit_models(
        table,
        options.regression_type,
        folds=options.folds,
        seed=options.seed,
        n_jobs=options.n_jobs,
        candidates=options.candidates,
        selection=options.selection,
    )
    t_fit = time.perf_counter() - t0
    from olmix_core.fit.report import interaction_matrix, write_plots

    inter = interaction_matrix(models, table.X, table.Y, seed=options.seed)
    report: dict[str, Any] = {
        "ratios": str(ratios_path),
        "metrics_file": str(metrics_path),
        "runs": len(table.ids),
        "dropped_runs": table.dropped,
        "warnings": warnings,
        **models.report(),
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
        proposal, predicted, info, weights_plot, pareto_plot = _propose_on(table, models, setup, options)
        report["seconds"]["propose"] = info.pop("seconds")
        report["proposer"] = info
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
            files.update(write_plots(local / "plots", models, table.Y, inter, weights_plot, pareto_plot))
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
    proposer = options.proposer_type
    if proposer == "auto":
        proposer = "exact" if exact_possible(problem) else "general"
    proposal = propose(problem, proposer, **_proposer_options(options, proposer))
    info = {"type": proposal.proposer, "requested": options.proposer_type, "seconds": round(time.perf_counter() - t1, 3),
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
    return proposal, _predicted_performance(problem, proposal), info, weights_plot, pareto_plot


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

    options = FitOptions.from_dict(options) if isinstance(options, dict) else (options or FitOptions())
    out_str = str(fit_dir).rstrip("/")
    models = FittedModels.load(f"{out_str}/models")
    table = load_tables(ratios_path, metrics_path, options.metrics)
    if list(table.domains) != list(models.domains) or list(table.metrics) != list(models.metrics):
        raise DataError(
            f"{out_str}: models were fitted on domains {models.domains} and metrics {models.metrics}; "
            f"the tables have {table.domains} and {table.metrics}"
        )
    setup = prepare(table, options, priors)
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


def _predicted_performance(problem: Problem, proposal: Proposal) -> PredictedPerformance:
    models = problem.models
    ms = models.metrics
    x = proposal.x[None, :]
    pred = models.predict(x)[0]
    std = models.predict_std(x)[0]
    prior_pred = models.predict(problem.prior[None, :])[0]
    ref_pred = models.predict(problem.reference[None, :])[0] if problem.reference is not None else None
    obj_cols = [ms.index(m) for m in problem.objective.metrics]
    out: dict[str, Any] = {
        "objective": {
            "definition": problem.objective.label,
            "direction": "minimize",
            "predicted": proposal.objective,
            "at_prior": float(problem.objective.from_predictions(prior_pred[obj_cols][None, :])[0]),
            **(
                {"at_reference": float(problem.objective.from_predictions(ref_pred[obj_cols][None, :])[0])}
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
    return PredictedPerformance.model_validate(_json(out))
