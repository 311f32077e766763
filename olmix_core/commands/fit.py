"""`olmix fit` (fit per-metric regressors, propose a constrained mixture) and `olmix predict` (apply saved models)."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from olmix_core.commands._common import handle_errors
from olmix_core.errors import ArtifactMissing, ConfigError, DataError, OlmixError
from olmix_core.fit.proposers import PROPOSER_TYPES
from olmix_core.fit.regressors import REGRESSION_TYPES

# click parameter -> fit option field (`section.name`); the flag is `--` + the parameter with '-'. One table: it
# builds the options from the flags and turns field names in messages back into flags.
FIELDS = {
    "regression_type": "regression.type",
    "seed": "regression.seed",
    "folds": "regression.folds",
    "n_jobs": "regression.n_jobs",
    "candidates": "regression.candidates",
    "selection": "regression.selection",
    "n_test": "regression.n_test",
    "train_split": "regression.train_split",
    "aggregate_task_families": "regression.aggregate_task_families",
    "proposer_type": "proposer.type",
    "kl_reg": "proposer.kl_reg",
    "temperature": "proposer.temperature",
    "make_worst_mix": "proposer.make_worst_mix",
    "uncertainty_penalty": "proposer.uncertainty_penalty",
    "residual_gp": "proposer.residual_gp",
    "fit_only": "proposer.fit_only",
    "num_samples": "proposer.num_samples",
    "top_k": "proposer.top_k",
    "rounds": "proposer.rounds",
    "num_starts": "proposer.num_starts",
    "target_tokens": "constraints.target_tokens",
    "repetition_factor": "constraints.repetition_factor",
    "min_weight_per_domain": "constraints.min_weight_per_domain",
    "fixed_weight": "constraints.fixed_weights",
    "reference": "constraints.reference",
    "tol": "constraints.tol",
    "metric": "filtering.metrics",
    "drop_metric": "filtering.drop_metrics",
    "objective": "filtering.objective",
    "opt_avg_metric": "filtering.opt_avg_metric",
    "obj_weights": "filtering.obj_weights",
    "maximize": "filtering.maximize",
    "no_plots": "plots",
}
FLAGS = {field: "--" + param.replace("_", "-") for param, field in FIELDS.items()}


def _pairs(items: Any, what: str) -> dict[str, Any]:
    """NAME=VALUE items (a list, a comma-separated string, or a JSON/YAML file) -> {name: value}; values are
    parsed by the options model (numbers, fractions like 7/52, suffixes like 30B). Split on the last '=' so names
    may contain ':' or '/'."""
    if isinstance(items, str):
        p = Path(items)
        if p.suffix in (".json", ".yaml", ".yml") and p.exists():
            import yaml

            data = yaml.safe_load(p.read_text())
            if not isinstance(data, dict):
                raise ConfigError(f"{what}: {items} must hold a mapping name -> number")
            return {str(k): v for k, v in data.items()}
        items = [s for s in items.split(",") if s.strip()]
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in str(item):
            raise ConfigError(f"{what}: {item!r} is not NAME=VALUE")
        k, v = str(item).rsplit("=", 1)
        out[k.strip()] = v.strip()
    return out


def _flag_values(given: dict[str, Any]) -> dict[str, Any]:
    """Flags given on the command line -> nested option values."""
    out: dict[str, Any] = {}
    for param, v in given.items():
        field = FIELDS[param]
        if param == "no_plots":
            v = not v
        elif param in ("fixed_weight", "obj_weights"):
            v = _pairs(v, FLAGS[field])
        elif param == "candidates":
            v = [c.strip() for c in v.split(",") if c.strip()]
        section, _, name = field.rpartition(".")
        (out.setdefault(section, {}) if section else out)[name] = v
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "fixed_weights" \
            and k != "obj_weights" else v
    return out


def to_flags(message: str, flagged: set[str], config_file: str | None) -> str:
    """Field names in a library message -> the CLI's flags (`fit.proposer.kl_reg` -> `--kl-reg`); a field that
    came from --config keeps its key in that file when no flag set it."""
    for field in sorted((f for f in FLAGS if "." in f), key=len, reverse=True):
        flag = FLAGS[field]
        use = flag if field in flagged or not config_file else field
        message = re.sub(rf"(?<![\w.-])(?:fit\.)?{re.escape(field)}(?![\w])", use, message)
    return message


def _fit_options(file: Any, given: dict[str, Any]) -> tuple[Any, set[str]]:
    from olmix_core.fit.options import FitOptions

    flagged = {FIELDS[p] for p in given}
    values = _merge(file.values if file else {}, _flag_values(given))
    try:
        return FitOptions.from_dict(values, file.path if file else "options"), flagged
    except ConfigError as e:
        raise ConfigError(to_flags(str(e), flagged, file.path if file else None)) from None


def _stack(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply click options in the order listed (so `--help` lists them in that order)."""

    def apply(fn: Any) -> Any:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return apply


# The regressor, the objective and the constraints, shared with `olmix mix next` (one definition of each flag).
regression_type_option = click.option(
    "--regression-type",
    help=f"Regressor per metric ({', '.join(REGRESSION_TYPES)}); auto: K-fold CV picks per metric. [auto]",
)
objective_options = _stack(
    click.option("--objective", help="Optimise this one metric (or task family)."),
    click.option(
        "--opt-avg-metric",
        is_flag=True,
        default=None,
        help="Optimise the average of all metrics (the default with several metrics).",
    ),
    click.option("--obj-weights", help="Weighted objective: 'm1=0.7,m2=7/52' or a JSON/YAML file {metric or family: weight}."),
    click.option(
        "--maximize", multiple=True, help="A metric where higher is better (repeatable); lower is better otherwise."
    ),
)
constraint_options = _stack(
    click.option("--min-weight-per-domain", type=float, default=None, help="Every proposed weight is 0 or at least this."),
    click.option("--fixed-weight", multiple=True, help="DOMAIN=W: fix a domain's weight (repeatable)."),
    click.option(
        "--target-tokens", help="Tokens of the target run (e.g. 30B): caps w_i ≤ token_counts_i × repetition / target."
    ),
    click.option(
        "--repetition-factor",
        type=float,
        default=None,
        help="Allowed repetitions of each domain's tokens under --target-tokens. [1]",
    ),
)


def fit_options_from_cli(values: dict[str, Any]) -> Any:
    """FitOptions from the values of `olmix fit`'s flags (those shared by another command), read as `olmix fit`
    reads them; unset flags (None, empty) keep the defaults."""
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()
             if v is not None and not (isinstance(v, tuple) and not v)}
    return _fit_options(None, given)[0]


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr for `run_fit`'s progress hook; it appears only when the fit takes over 2 s and stderr
    is a terminal (tqdm's own rule), so scripts and logs stay clean."""
    from tqdm import tqdm

    bar = tqdm(total=100, delay=2.0, file=sys.stderr, disable=None, unit="%", bar_format="{l_bar}{bar}| {elapsed}")

    def update(fraction: float, message: str) -> None:
        bar.set_description_str(message[:60], refresh=False)
        bar.update(max(0.0, 100 * fraction - bar.n))

    try:
        yield update
    finally:
        bar.close()


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="YAML fit config: sections swarm (ratios, metrics), priors, eval (task families), regression, proposer, "
    "constraints, filtering — Ai2 olmix's fit configs read unchanged; command-line options override it.",
)
@click.option("--ratios", help="Mixture ratios CSV (olmix: run,name,<domain>...; RegMix: index,<domain>...).")
@click.option("--metrics", help="Metrics CSV, joined with the ratios on the run id.")
@click.option(
    "--priors", help="Priors JSON/YAML: {relative_sizes, token_counts}; default prior: mean of the swarm's mixtures."
)
@click.option("--output-dir", "--output", "output_dir", help="Folder (or s3://, gs:// URL) for models, reports, proposal and plots.")
@regression_type_option
@click.option("--proposer-type", help=f"Proposer ({', '.join(PROPOSER_TYPES)}); auto: exact for log-linear models, else "
              "general. [auto]")
@click.option("--metric", multiple=True, help="Fit only this metric (repeatable); default: every metric column.")
@click.option("--drop-metric", multiple=True, help="Leave this metric out (repeatable; also out of its family).")
@objective_options
@click.option("--aggregate-task-families/--no-aggregate-task-families", default=None,
              help="One model per task family (eval.tasks of --config) on the family's mean metric, or one per task.")
@click.option("--n-test", type=int, default=None, help="Runs held out and scored (no proposal then, as in Ai2's olmix). [0]")
@click.option("--train-split", type=float, default=None, help="Fraction (or count > 1) of the other runs fitted on. [1]")
@constraint_options
@click.option("--kl-reg", type=float, default=None, help="λ in objective + λ·KL(x‖prior). [0]")
@click.option("--temperature", type=float, default=None, help="Simulation proposers: sample around prior**T.")
@click.option("--make-worst-mix", is_flag=True, default=None, help="Propose the worst mixture (a sanity baseline).")
@click.option(
    "--reference",
    help="Reference mixture JSON/YAML {domain: weight}: no metric may be predicted worse than it by more than --tol.",
)
@click.option("--tol", type=float, default=None, help="Pareto tolerance in metric units. [0]")
@click.option(
    "--uncertainty-penalty",
    type=float,
    default=None,
    help="β: minimise prediction + β·std where models have one (GP, ensembles); 0 = plain prediction. [1]",
)
@click.option("--residual-gp/--no-residual-gp", default=None,
              help="Correct the proposal by the runs: best posterior mean + β·std (the fitted models plus a GP on "
                   "their residuals), among the proposer's mixture and candidates near it and the best runs. [off]")
@click.option("--fit-only", is_flag=True, default=None, help="Fit and report; propose nothing.")
@click.option("--seed", type=int, default=None, help="Seed for the split, folds, models and proposers. [0]")
@click.option("--folds", type=int, default=None, help="K for K-fold cross-validation. [5]")
@click.option("--n-jobs", type=int, default=None, help="Metrics fitted in parallel processes (-1: one per core). [-1]")
@click.option(
    "--candidates", help="auto's candidates, comma-separated. [lightgbm,log_linear,log_linear_power,gp,linear]"
)
@click.option("--selection", default=None, help="auto's CV criterion: spearman or mae. [spearman]")
@click.option("--num-samples", type=int, default=None, help="Simulation candidates. [200000]")
@click.option("--top-k", type=int, default=None, help="Simulation: candidates averaged. [100]")
@click.option("--rounds", type=int, default=None, help="simulation_iterative rounds. [5]")
@click.option("--num-starts", type=int, default=None, help="General optimiser starts. [4]")
@click.option("--no-plots", is_flag=True, default=None, help="Skip the PNG plots.")
@click.pass_context
@handle_errors
def fit(ctx: click.Context, config_file: str | None, ratios: str | None, metrics: str | None, priors: str | None,
        output_dir: str | None, **cli: Any) -> None:
    """Fit one regressor per metric (or task family) on a swarm's tables and propose the best mixture under
    constraints. Option fields: docs/reference/fit-config.md.

    Writes proposed_weights.json, predicted_performance.json, fit_report.json, models/ and plots/ to --output-dir."""
    from click.core import ParameterSource

    from olmix_core.fit import run_fit
    from olmix_core.fit.fit_file import read_fit_file

    file = read_fit_file(config_file) if config_file else None
    for note in file.notes if file else []:
        click.echo(f"note: {note}", err=True)
    given = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in cli.items()
        if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE and not (isinstance(v, tuple) and not v)
    }
    options, flagged = _fit_options(file, given)
    paths = {
        "ratios": ratios or (file.ratios if file else None),
        "metrics": metrics or (file.metrics if file else None),
        "output_dir": output_dir or (file.output_dir if file else None),
    }
    for k, v in paths.items():
        if not v:
            raise ConfigError(f"--{k.replace('_', '-')} is required (on the command line or in --config)")
    prior = priors or (file.priors if file else None)
    try:
        with _progress_bar() as progress:
            result = run_fit(
                paths["ratios"], paths["metrics"], paths["output_dir"], options, priors=prior, progress=progress
            )
    except OlmixError as e:
        raise type(e)(to_flags(str(e), flagged, config_file)) from None
    for w in result.warnings:
        click.echo(f"warning: {to_flags(w, flagged, config_file)}", err=True)
    for m, info in result.report["metrics"].items():
        cv = info["cv"].get(info["chosen"], {})
        rho = cv.get("spearman")
        click.echo(
            f"{m}: {info['chosen']}" + (f"  (CV Spearman {rho:.4f}, MAE {cv['mae']:.4g})" if rho is not None else "")
        )
    hold = result.report.get("holdout") or {}
    if hold.get("test_runs"):
        click.echo(f"held out {hold['test_runs']} runs (fitted on {hold['train_runs']}): mean Spearman "
                   f"{hold['mean_spearman'] if hold['mean_spearman'] is None else round(hold['mean_spearman'], 4)}")
    if result.proposal is not None:
        perf = result.predicted
        assert perf is not None
        what = "worst mixture" if options.proposer.make_worst_mix else "proposal"
        click.echo(f"{what} ({result.proposal.proposer}), predicted objective {result.predicted_objective:.6g}"
                   f" (at the prior {perf.objective.at_prior:.6g}):")
        for d, w in result.proposal.weights.items():
            if w > 0:
                click.echo(f"  {d}: {w:.4f}")
        caps = perf.token_caps or {}
        if caps:
            broken = [d for d, c in caps.items() if not c.holds]
            bound = [d for d, c in caps.items() if c.weight >= c.cap * (1 - 1e-6)]
            click.echo(f"token caps: {len(caps)} domain(s) capped below 1, {len(bound)} at their cap; "
                       + (f"BROKEN for {broken}" if broken else "all hold"))
    click.echo(f"wrote {', '.join(result.files.values())} to {result.output_dir}")


@click.command()
@click.option("--model-dir", required=True, help="The models/ folder written by `olmix fit` (or the fit's output dir).")
@click.option(
    "--ratios", required=True, help="Mixtures to predict (CSV, olmix or RegMix layout; domains matched by name)."
)
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False), help="CSV: the id column, then one column per metric."
)
@handle_errors
def predict(model_dir: str, ratios: str, output: str) -> None:
    """Predict every metric for every row of a ratios table with saved models."""
    import numpy as np
    import pandas as pd

    from olmix_core.fit import FittedModels
    from olmix_core.fit.tables import read_ratios

    try:
        models = FittedModels.load(model_dir)
    except ArtifactMissing:  # given the fit's output dir rather than its models/ folder
        try:
            models = FittedModels.load(model_dir.rstrip("/") + "/models")
        except ArtifactMissing:
            raise ArtifactMissing(
                f"{model_dir}: no manifest.json (not a model directory written by `olmix fit`)"
            ) from None
    table = read_ratios(ratios)
    missing = [d for d in models.domains if d not in table.columns]
    if missing:
        raise DataError(f"{ratios}: no column for domain(s) {missing} the models were fitted on")
    extra = [c for c in table.columns if c not in models.domains]
    for c in extra:
        col = table.values[:, table.columns.index(c)]
        if np.any(col > 0):
            r = int(np.flatnonzero(col > 0)[0])
            raise DataError(
                f"{table.where(r)}, column {c!r}: weight {col[r]} on a domain the models do not know ({models.domains})"
            )
    X = table.values[:, [table.columns.index(d) for d in models.domains]]
    P = models.predict(X)
    df = pd.DataFrame({table.id_column: table.ids, **{m: P[:, j] for j, m in enumerate(models.metrics)}})
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(output, index=False)
    click.echo(f"wrote {len(df)} rows × {len(models.metrics)} metrics to {output}")
