"""Which columns are fitted and what the objective weighs: the metric selection, dropped metrics and task
families (`eval.tasks`). With `regression.aggregate_task_families` each family becomes one column, the row-wise
mean of its (kept) tasks, as in Ai2's olmix (RQ5); without it a family's objective weight is shared equally by
its tasks, so both settings optimise the same weighted family means."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from olmix_core.errors import DataError
from olmix_core.fit.options import FitOptions
from olmix_core.fit.tables import SwarmTable, Table, join_tables, read_metrics, read_ratios


@dataclass
class Selection:
    """The fitted table plus what the objective needs to know about families."""

    table: SwarmTable
    families: dict[str, list[str]]  # family -> its kept task columns (empty without eval.tasks)
    aggregated: bool
    dropped: list[str] = field(default_factory=list)  # metric columns left out by filtering.drop_metrics


def _columns(metrics: Table, options: FitOptions, warnings: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Raw metric columns to read and the kept tasks of each family."""
    f = options.filtering
    drop = set(f.drop_metrics)
    unknown = [m for m in f.drop_metrics if m not in metrics.columns]
    if unknown:
        warnings.append(f"fit.filtering.drop_metrics: {unknown} are not columns of {metrics.path}; nothing to drop there")
    families = options.eval.families
    if f.metrics is not None:
        missing_cols = [m for m in f.metrics if m not in metrics.columns]
        if missing_cols:
            raise DataError(f"fit.filtering.metrics: {missing_cols} are not columns of {metrics.path}")
    if not families:
        base = f.metrics if f.metrics is not None else metrics.columns
        return [m for m in base if m not in drop], {}
    missing = {fam: [t for t in tasks if t not in metrics.columns] for fam, tasks in families.items()}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        n = sum(len(v) for v in missing.values())
        raise DataError(f"fit.eval.tasks: {n} task(s) are not columns of {metrics.path}: {missing}")
    kept = {fam: [t for t in dict.fromkeys(tasks) if t not in drop] for fam, tasks in families.items()}
    empty = [fam for fam, tasks in kept.items() if not tasks]
    if empty:
        raise DataError(f"fit.eval.tasks: every task of family {empty} is in fit.filtering.drop_metrics")
    return list(dict.fromkeys(t for tasks in kept.values() for t in tasks)), kept


def load_selection(ratios_path: str | Path, metrics_path: str | Path, options: FitOptions) -> Selection:
    """Read and join the tables, keep the selected metrics, and aggregate families when asked."""
    ratios, metrics = read_ratios(ratios_path), read_metrics(metrics_path)
    warnings: list[str] = []
    columns, families = _columns(metrics, options, warnings)
    if not columns:
        raise DataError(f"{metrics_path}: no metric column left to fit (fit.filtering.drop_metrics drops them all)")
    table = join_tables(ratios, metrics, columns)
    table.warnings = [*table.warnings, *warnings]
    dropped = [m for m in options.filtering.drop_metrics if m in metrics.columns]
    if not (families and options.regression.aggregate_task_families):
        return Selection(table, families, False, dropped)
    Y = np.column_stack([table.Y[:, [table.metrics.index(t) for t in tasks]].mean(1) for tasks in families.values()])
    table = replace(table, metrics=list(families), Y=Y)
    return Selection(table, families, True, dropped)


def objective_terms(selection: Selection, options: FitOptions) -> tuple[str | None, dict[str, float] | None, list[str], list[str]]:
    """(objective, obj_weights, maximize) over the fitted columns, and notes. Family names are accepted where
    tasks are fitted: a family weight is split equally over its tasks, a family objective becomes equal weights,
    a maximised family maximises its tasks."""
    return _terms(selection.table.metrics, selection.families, selection.aggregated, options)


def _terms(columns: list[str], families: dict[str, list[str]], aggregated: bool, options: FitOptions
           ) -> tuple[str | None, dict[str, float] | None, list[str], list[str]]:
    f = options.filtering
    notes: list[str] = []
    fam = {} if aggregated else {k: v for k, v in families.items() if k not in columns}

    def spread(name: str, weight: float, into: dict[str, float]) -> None:
        for t in fam.get(name, [name]):
            into[t] = into.get(t, 0.0) + weight / len(fam.get(name, [name]))

    objective, weights = f.objective, dict(f.obj_weights) or None
    if objective in fam:
        weights, objective = {}, None
        spread(f.objective, 1.0, weights)  # type: ignore[arg-type]
    elif weights:
        weights = {}
        for k, w in f.obj_weights.items():
            spread(k, w, weights)
    maximize = list(dict.fromkeys(t for m in f.maximize for t in fam.get(m, [m])))
    if weights:
        unweighted = [m for m in columns if m not in weights]
        if unweighted:
            notes.append(
                f"fit.filtering.obj_weights: {len(unweighted)} fitted metric(s) have no weight and do not enter the "
                f"objective (Ai2's olmix would weigh them 1): {unweighted[:5]}{' ...' if len(unweighted) > 5 else ''}"
            )
    return objective, weights, maximize, notes


def observed_objective(options: FitOptions, frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, str, list[str]]:
    """The fit's objective from observed metric values (rows of `frame`, raw metric `columns`), computed as
    `run_fit` computes it from predictions: same selection, families and weights. Returns (values, label, used)."""
    from olmix_core.fit.objective import build_objective

    drop = set(options.filtering.drop_metrics)
    families = {k: [t for t in v if t not in drop] for k, v in options.eval.families.items()}
    aggregated = bool(families) and options.regression.aggregate_task_families
    if aggregated:
        frame = pd.DataFrame({k: frame[v].to_numpy(float).mean(1) for k, v in families.items()})
        used = list(families)
    elif families:
        used = list(dict.fromkeys(t for v in families.values() for t in v))
    else:
        used = [m for m in (options.filtering.metrics or columns) if m not in drop]
    objective, weights, maximize, _ = _terms(used, families, aggregated, options)
    obj = build_objective(used, np.full(1, 1.0), objective=objective, obj_weights=weights,
                          opt_avg_metric=options.filtering.opt_avg_metric, maximize=maximize)
    return obj.from_predictions(frame[obj.metrics].to_numpy(float)), obj.label, obj.metrics
