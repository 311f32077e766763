"""Fit and propose: regressors per metric, proposers under exact constraints, reports (steps 6-8 of a swarm).

Public API (everything else is internal):

    from olmix_core.fit import run_fit, FitOptions
    result = run_fit("results/ratios.csv", "results/metrics.csv", "fits/abc", FitOptions(filtering={"opt_avg_metric": True}),
                     priors={"relative_sizes": {...}, "token_counts": {...}})
    result.proposed_weights      # {domain: weight}, constraints honoured exactly
    result.predicted_objective   # predicted objective of the proposal (lower is better)
    result.files                 # {"fit_report": "fit_report.json", "models": "models/manifest.json", ...}

Step by step:

    table = load_tables(ratios_csv, metrics_csv)          # olmix (run,name,...) or RegMix (index,...) CSVs
    models = fit_models(table, "auto", folds=5, seed=0)    # one model per metric, K-fold CV on the table only
    setup = prepare(table, FitOptions(...), priors)        # objective, bounds, reference (InfeasibleError early)
    proposal = propose(setup.problem(table, models, options), "general")
    models.save(dir); FittedModels.load(dir).predict(X)    # JSON model files, no pickle

Options: one nested model, `FitOptions` (olmix_core.fit.options: regression, proposer, constraints, filtering,
eval), which is also an experiment config's `fit:` block; `options_from_experiment(config)` adds the swarm's own
token caps, fixed weights and seed. `olmix fit --config` also reads Ai2 olmix's fit configs (olmix_core.fit.fit_file).

Domains and metrics are matched by column name everywhere (names may contain ':' or '/').
Heavy libraries (lightgbm, cvxpy, matplotlib) are imported only when used.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Bounds": "constraints",
    "repair": "constraints",
    "resolve_bounds": "constraints",
    "AUTO_CANDIDATES": "fitting",
    "FittedModels": "fitting",
    "MetricFit": "fitting",
    "fit_models": "fitting",
    "Objective": "objective",
    "build_objective": "objective",
    "ConstraintsOptions": "options",
    "FitOptions": "options",
    "options_from_experiment": "options",
    "PROPOSER_TYPES": "proposers",
    "Problem": "proposers",
    "Proposal": "proposers",
    "propose": "proposers",
    "REGRESSION_TYPES": "regressors",
    "Regressor": "regressors",
    "make_regressor": "regressors",
    "FitResult": "run",
    "Setup": "run",
    "prepare": "run",
    "propose_from_fit": "run",
    "propose_with": "run",
    "run_fit": "run",
    "Priors": "tables",
    "SwarmTable": "tables",
    "load_mixture": "tables",
    "load_priors": "tables",
    "load_tables": "tables",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy exports: the options model (imported by the experiment config) must not pull in pandas/scipy."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"olmix_core.fit.{_EXPORTS[name]}"), name)
