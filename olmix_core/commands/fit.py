"""`olmix fit` (fit per-metric regressors, propose a constrained mixture) and `olmix predict` (apply saved models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from olmix_core.commands._common import handle_errors
from olmix_core.errors import ArtifactMissing, ConfigError, DataError

_REGRESSION_TYPES = ["auto", "lightgbm", "log_linear", "log_linear_power", "linear", "gp", "bimix", "search"]
_PROPOSER_TYPES = ["auto", "simulation", "simulation_iterative", "search", "exact", "general"]
_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
# CLI option name -> FitOptions field (the same names are the keys of --config fit.yaml)
_RENAME = {"metric": "metrics"}
_PATH_KEYS = ("ratios", "metrics", "priors", "output_dir")


def _stack(decorators: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """Apply click options in the order listed (so `--help` lists them in that order)."""

    def apply(fn: Any) -> Any:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return apply


# Shared with `olmix mix next` (and anything else that optimises the fit's objective under its constraints).
objective_options = _stack(
    [
        click.option("--objective", help="Optimise this one metric."),
        click.option(
            "--opt-avg-metric",
            is_flag=True,
            default=None,
            help="Optimise the average of all metrics (the default with several metrics).",
        ),
        click.option("--obj-weights", help="Weighted objective: 'm1=0.7,m2=0.3' or a JSON/YAML file {metric: weight}."),
        click.option(
            "--maximize", multiple=True, help="A metric where higher is better (repeatable); lower is better otherwise."
        ),
    ]
)
constraint_options = _stack(
    [
        click.option(
            "--min-weight-per-domain", type=float, default=None, help="Every proposed weight is 0 or at least this."
        ),
        click.option("--fixed-weight", multiple=True, help="DOMAIN=W: fix a domain's weight (repeatable)."),
        click.option(
            "--target-tokens",
            help="Tokens of the target run (e.g. 30B): caps w_i ≤ token_counts_i × repetition / target.",
        ),
        click.option(
            "--repetition-factor",
            type=float,
            default=None,
            help="Allowed repetitions of each domain's tokens under --target-tokens. [1]",
        ),
    ]
)

def _number(value: Any, what: str) -> float:
    """A number, also with a K/M/B/T suffix ("30B" = 3e10)."""
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip()
    mult = 1.0
    if s and s[-1].upper() in _SUFFIX:
        mult, s = _SUFFIX[s[-1].upper()], s[:-1]
    try:
        return float(s) * mult
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a number (suffixes K, M, B, T allowed)") from None


def _pairs(items: Any, what: str) -> dict[str, float]:
    """NAME=VALUE items (a list, a comma-separated string, a mapping, or a JSON/YAML file) -> {name: value}.

    Split on the last '=' so names may contain ':' or '/'."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return {str(k): _number(v, f"{what} {k}") for k, v in items.items()}
    if isinstance(items, str):
        p = Path(items)
        if p.suffix in (".json", ".yaml", ".yml") and p.exists():
            import yaml

            data = yaml.safe_load(p.read_text())
            if not isinstance(data, dict):
                raise ConfigError(f"{what}: {items} must hold a mapping name -> number")
            return _pairs(data, what)
        items = [s for s in items.split(",") if s.strip()]
    out: dict[str, float] = {}
    for item in items:
        if "=" not in str(item):
            raise ConfigError(f"{what}: {item!r} is not NAME=VALUE")
        k, v = str(item).rsplit("=", 1)
        out[k.strip()] = _number(v, f"{what} {k.strip()}")
    return out


def _load_config(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: cannot parse YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fit options")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def fit_options_from_cli(values: dict[str, Any], source: str = "options") -> Any:
    """FitOptions from the values of the shared options (objective, constraints, seed...), as `olmix fit` reads them."""
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if not (isinstance(v, tuple) and not v)}
    return _options(given, source)[1]


def _options(values: dict[str, Any], source: str) -> tuple[dict[str, Any], Any]:
    """Split CLI-named values into input paths and a FitOptions."""
    from olmix_core.fit import FitOptions

    paths = {k: values.pop(k, None) for k in _PATH_KEYS}
    opts: dict[str, Any] = {}
    for k, v in values.items():
        if v is None:
            continue
        if k == "no_plots":
            opts["plots"] = not v
        elif k == "fixed_weight":
            opts["fixed_weights"] = _pairs(v, "--fixed-weight")
        elif k == "obj_weights":
            opts["obj_weights"] = _pairs(v, "--obj-weights") or None
        elif k == "target_tokens":
            opts[k] = _number(v, "--target-tokens")
        elif k == "candidates" and isinstance(v, str):
            opts[k] = [c.strip() for c in v.split(",") if c.strip()]
        elif k in ("metric", "maximize") and isinstance(v, str):
            opts[_RENAME.get(k, k)] = [v]
        else:
            opts[_RENAME.get(k, k)] = v
    return paths, FitOptions.from_dict(opts, source)


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="YAML file with any of these options (keys = option names with '_'); command-line options override it.",
)
@click.option("--ratios", help="Mixture ratios CSV (olmix: run,name,<domain>...; RegMix: index,<domain>...).")
@click.option("--metrics", help="Metrics CSV, joined with the ratios on the run id.")
@click.option(
    "--priors", help="Priors JSON/YAML: {relative_sizes, token_counts}; default prior: mean of the swarm's mixtures."
)
@click.option("--output-dir", help="Folder (or s3://, gs:// URL) for models, reports, proposal and plots.")
@click.option(
    "--regression-type",
    type=click.Choice(_REGRESSION_TYPES),
    default=None,
    help="Regressor per metric; auto: K-fold CV picks per metric (or averages the best). [auto]",
)
@click.option(
    "--proposer-type",
    type=click.Choice(_PROPOSER_TYPES),
    default=None,
    help="auto: exact for log-linear models, else general. [auto]",
)
@click.option("--metric", multiple=True, help="Fit only this metric (repeatable); default: every metric column.")
@objective_options
@constraint_options
@click.option("--kl-reg", type=float, default=None, help="λ in objective + λ·KL(x‖prior). [0]")
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
@click.option("--fit-only", is_flag=True, default=None, help="Fit and report; propose nothing.")
@click.option("--seed", type=int, default=None, help="Seed for folds, models and proposers. [0]")
@click.option("--folds", type=int, default=None, help="K for K-fold cross-validation. [5]")
@click.option("--n-jobs", type=int, default=None, help="Metrics fitted in parallel processes (-1: one per core). [-1]")
@click.option(
    "--candidates", help="auto's candidates, comma-separated. [lightgbm,log_linear,log_linear_power,gp,linear]"
)
@click.option(
    "--selection", type=click.Choice(["spearman", "mae"]), default=None, help="auto's CV criterion. [spearman]"
)
@click.option("--num-samples", type=int, default=None, help="Simulation candidates. [200000]")
@click.option("--top-k", type=int, default=None, help="Simulation: candidates averaged. [100]")
@click.option("--rounds", type=int, default=None, help="simulation_iterative rounds. [5]")
@click.option("--num-starts", type=int, default=None, help="General optimiser starts. [4]")
@click.option("--no-plots", is_flag=True, default=None, help="Skip the PNG plots.")
@click.pass_context
@handle_errors
def fit(ctx: click.Context, config_file: str | None, **cli: Any) -> None:
    """Fit one regressor per metric on a swarm's tables and propose the best mixture under constraints.

    Writes proposed_weights.json, predicted_performance.json, fit_report.json, models/ and plots/ to --output-dir."""
    from click.core import ParameterSource

    from olmix_core.fit import run_fit

    values: dict[str, Any] = _load_config(config_file) if config_file else {}
    unknown = sorted(set(values) - set(cli))
    if unknown:
        raise ConfigError(f"{config_file}: unknown option(s) {unknown}")
    for k, v in cli.items():
        given = ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE
        if given and not (isinstance(v, tuple) and not v):
            values[k] = list(v) if isinstance(v, tuple) else v
    paths, options = _options(values, config_file or "options")
    for k in ("ratios", "metrics", "output_dir"):
        if not paths[k]:
            raise ConfigError(f"--{k.replace('_', '-')} is required (on the command line or in --config)")
    result = run_fit(paths["ratios"], paths["metrics"], paths["output_dir"], options, priors=paths["priors"])
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    for m, info in result.report["metrics"].items():
        cv = info["cv"].get(info["chosen"], {})
        rho = cv.get("spearman")
        click.echo(
            f"{m}: {info['chosen']}" + (f"  (CV Spearman {rho:.4f}, MAE {cv['mae']:.4g})" if rho is not None else "")
        )
    if result.proposal is not None:
        click.echo(f"proposal ({result.proposal.proposer}), predicted objective {result.proposal.objective:.6g}:")
        for d, w in result.proposal.weights.items():
            if w > 0:
                click.echo(f"  {d}: {w:.4f}")
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
