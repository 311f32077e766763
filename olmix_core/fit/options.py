"""The one fit-options model: what `olmix fit` (flags and `--config`), an experiment config's `fit:` block and the
flows fit and propose with. Nested the way Ai2's olmix fit configs are: `regression`, `proposer`, `constraints`,
`filtering`, `eval` (task families). Each field has one rule, stated next to it; errors name the field
(`proposer.kl_reg`, shown as `fit.proposer.kl_reg` in an experiment config; the CLI shows its flag).

The flat keys of earlier versions (`regression_type`, `kl_reg`, ... at the top level) still load, each with a
deprecation note naming its new key.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from olmix_core.errors import ConfigError

if TYPE_CHECKING:
    from olmix_core.config import ExperimentConfig

logger = logging.getLogger(__name__)

_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
RULE_ERROR = "olmix_fit_rule"  # pydantic error type of the cross-field rules; ctx["field"] is the field they name


def parse_number(value: Any) -> float:
    """A number, a fraction string ("7/52.0", as in Ai2's obj_weights) or a K/M/B/T suffix ("30B" = 3e10)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip().replace("_", "")
    if "/" in s:
        num, _, den = s.partition("/")
        try:
            return float(num) / float(den)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{value!r} is not a number or a fraction like 7/52") from None
    mult = 1.0
    if s and s[-1].upper() in _SUFFIX:
        mult, s = _SUFFIX[s[-1].upper()], s[:-1]
    try:
        return float(s) * mult
    except ValueError:
        raise ValueError(f"{value!r} is not a number (fractions like 7/52 and suffixes K, M, B, T allowed)") from None


def _rule(field: str, why: str) -> PydanticCustomError:
    return PydanticCustomError(RULE_ERROR, "{field}: {why}", {"field": field, "why": why})


def _finite(v: float, what: str, lo: float, lo_ok: bool = True) -> float:
    if not math.isfinite(v) or v < lo or (v == lo and not lo_ok):
        raise ValueError(f"{what} must be {'>=' if lo_ok else '>'} {lo:g} (got {v})")
    return v


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RegressionOptions(_Section):
    type: str = Field("auto", description="Regressor per metric; `auto`: K-fold CV picks per metric among `candidates`.")
    seed: int | None = Field(
        None, description="Seed of the held-out split, CV folds, models and proposers. Default 0 (the experiment's "
        "`seed` in a swarm). Must be >= 0."
    )
    n_test: int = Field(0, description="Runs held out (seeded, as Ai2's olmix splits) and scored in the fit report; "
                        "with n_test > 0 no mixture is proposed, as in Ai2's olmix. Must be >= 0.")
    train_split: float = Field(1.0, description="Part of the remaining runs fitted on: a fraction in (0, 1] or a "
                               "count > 1 (seeded subsample, as in Ai2's olmix).")
    aggregate_task_families: bool = Field(False, description="Fit one model per `eval.tasks` family on the family's "
                                          "mean metric instead of one per task.")
    folds: int = Field(5, description="K of the K-fold cross-validation (scores; `auto`'s choice). Must be >= 2.")
    candidates: list[str] | None = Field(None, description="`auto`'s candidate regressors; default "
                                         "lightgbm, log_linear, log_linear_power, gp, linear.")
    selection: Literal["spearman", "mae"] = Field("spearman", description="`auto`'s CV criterion.")
    n_jobs: int = Field(-1, description="Metrics fitted in parallel processes (-1: one per core).")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        from olmix_core.fit.regressors import REGRESSION_TYPES

        if v == "autoscale":
            raise ValueError(f"Ai2's autoscale regressor has no equivalent here; choose from {list(REGRESSION_TYPES)}")
        if v not in REGRESSION_TYPES:
            raise ValueError(f"unknown regression type {v!r}; choose from {list(REGRESSION_TYPES)}")
        return v

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, v: list[str] | None) -> list[str] | None:
        from olmix_core.fit.regressors import REGRESSORS

        if v is not None:
            bad = [c for c in v if c not in REGRESSORS]
            if bad or not v:
                raise ValueError(f"unknown candidate(s) {bad}; choose from {list(REGRESSORS)}")
        return v

    @field_validator("seed", "n_test")
    @classmethod
    def _nonneg_int(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError(f"must be >= 0 (got {v})")
        return v

    @field_validator("train_split")
    @classmethod
    def _split(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0) or (v > 1 and v != int(v)):
            raise ValueError(f"must be a fraction in (0, 1] or a whole number of runs (got {v})")
        return v

    @field_validator("folds")
    @classmethod
    def _folds(cls, v: int) -> int:
        if v < 2:
            raise ValueError(f"must be >= 2 (got {v})")
        return v


class ProposerOptions(_Section):
    type: str = Field("auto", description="Proposer; `auto`: exact for log-linear models, else general.")
    temperature: float | None = Field(None, description="Simulation proposers: sample around prior**temperature "
                                      "(renormalised) instead of the prior, as Ai2's olmix does. Must be > 0.")
    kl_reg: float = Field(0.0, description="λ in objective + λ·KL(x‖prior); null means 0. Must be >= 0.")
    fit_only: bool = Field(False, description="Fit and report; propose nothing.")
    make_worst_mix: bool = Field(False, description="Propose the mixture with the WORST predicted objective (a "
                                 "sanity baseline, as in Ai2's olmix); needs a proposer that can maximise (not exact).")
    uncertainty_penalty: float = Field(1.0, description="β: minimise prediction + β·std where models have one "
                                       "(GP, ensembles); 0 = plain prediction. Must be >= 0.")
    num_samples: int = Field(200_000, description="Simulation candidates. Must be > 0.")
    top_k: int = Field(100, description="Simulation: best candidates averaged. Must be > 0.")
    rounds: int = Field(5, description="simulation_iterative rounds. Must be > 0.")
    num_starts: int = Field(4, description="General optimiser starts. Must be > 0.")
    residual_gp: bool | None = Field(None, description="Correct the proposal by the observed runs: propose the best "
                                     "posterior mean + uncertainty_penalty × std (the fitted models plus a GP on "
                                     "their residuals at the runs) among the proposer's mixture and candidates "
                                     "around it and the best runs. "
                                     "null: on for a swarm with adaptive rounds, off otherwise.")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        from olmix_core.fit.proposers import PROPOSER_TYPES

        if v not in PROPOSER_TYPES:
            raise ValueError(f"unknown proposer type {v!r}; choose from {list(PROPOSER_TYPES)}")
        return v

    @field_validator("kl_reg", mode="before")
    @classmethod
    def _kl_none(cls, v: Any) -> Any:
        return 0.0 if v is None else v

    @field_validator("kl_reg", "uncertainty_penalty")
    @classmethod
    def _nonneg(cls, v: float) -> float:
        return _finite(v, "value", 0.0)

    @field_validator("temperature")
    @classmethod
    def _temp(cls, v: float | None) -> float | None:
        return None if v is None else _finite(v, "temperature", 0.0, lo_ok=False)

    @field_validator("num_samples", "top_k", "rounds", "num_starts")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v


class ConstraintsOptions(_Section):
    enabled: bool | None = Field(None, description="Token caps on/off. Default: on when `target_tokens` is set; "
                                 "true requires `target_tokens`; false ignores it (as in Ai2's olmix).")
    target_tokens: float | None = Field(None, description="Tokens of the target run (e.g. 6T, 30B): caps "
                                        "w_d ≤ token_counts_d × repetition_factor / target_tokens. Must be > 0.")
    repetition_factor: float | dict[str, float] | None = Field(
        None, description="Allowed repetitions of each domain's tokens under the caps, one number or per domain. "
        "Default 1 (the experiment's per-leaf caps in a swarm). Must be > 0."
    )
    min_weight_per_domain: float = Field(0.0, description="Every proposed weight is 0 or at least this; in [0, 1].")
    fixed_weights: dict[str, float] = Field({}, description="Domain -> its exact weight, each in [0, 1].")
    reference: dict[str, float] | str | None = Field(None, description="A mixture (or JSON/YAML file with one): no "
                                                     "metric may be predicted worse than it by more than `tol`.")
    tol: float = Field(0.0, description="Pareto tolerance in metric units. Must be >= 0.")

    @field_validator("target_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, v: Any) -> Any:
        return None if v is None else parse_number(v)

    @field_validator("target_tokens")
    @classmethod
    def _target(cls, v: float | None) -> float | None:
        return None if v is None else _finite(v, "target_tokens", 0.0, lo_ok=False)

    @field_validator("repetition_factor")
    @classmethod
    def _rep(cls, v: float | dict[str, float] | None) -> float | dict[str, float] | None:
        for k, r in (v.items() if isinstance(v, dict) else [("", v)]) if v is not None else []:
            _finite(r, f"repetition_factor{f'[{k!r}]' if k else ''}", 0.0, lo_ok=False)
        return v

    @field_validator("min_weight_per_domain")
    @classmethod
    def _min(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"must be in [0, 1] (got {v})")
        return v

    @field_validator("fixed_weights", mode="before")
    @classmethod
    def _parse_fixed(cls, v: Any) -> Any:
        return {str(k): parse_number(w) for k, w in v.items()} if isinstance(v, dict) else v

    @field_validator("fixed_weights")
    @classmethod
    def _fixed(cls, v: dict[str, float]) -> dict[str, float]:
        for k, w in v.items():
            if not (math.isfinite(w) and 0.0 <= w <= 1.0):
                raise ValueError(f"weight of {k!r} is {w}, outside [0, 1]")
        return v

    @field_validator("tol")
    @classmethod
    def _tol(cls, v: float) -> float:
        return _finite(v, "tol", 0.0)

    @property
    def caps_on(self) -> bool:
        return self.target_tokens is not None and self.enabled is not False


class FilteringOptions(_Section):
    metrics: list[str] | None = Field(None, description="Metric columns to fit; default: every metric column "
                                      "(or the tasks of `eval.tasks`).")
    drop_metrics: list[str] = Field([], description="Metric columns left out (also out of their family's mean); "
                                    "names not in the table are reported and ignored.")
    objective: str | None = Field(None, description="Optimise this one metric (or family).")
    opt_avg_metric: bool = Field(False, description="Optimise the average of all fitted metrics (the default).")
    obj_weights: dict[str, float] = Field({}, description="Weighted objective {metric or family: weight}; values "
                                          "may be fractions like \"7/52.0\". Without aggregation a family's weight is "
                                          "shared equally by its tasks. Weights must be >= 0.")
    maximize: list[str] = Field([], description="Metrics (or families) where higher is better.")

    @field_validator("obj_weights", mode="before")
    @classmethod
    def _parse_weights(cls, v: Any) -> Any:
        if v is None:
            return {}
        return {str(k): parse_number(w) for k, w in v.items()} if isinstance(v, dict) else v

    @field_validator("obj_weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for k, w in v.items():
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"weight of {k!r} is {w}; weights must be >= 0")
        return v


class EvalOptions(_Section):
    type: Literal["offline", "inloop"] = Field("offline", description="Ai2's eval kinds: offline tasks are metric "
                                               "columns; inloop tasks map task ids to metric columns.")
    tasks: dict[str, list[str] | dict[str, str]] = Field({}, description="Task families: {family: [metric, ...]} "
                                                         "(inloop: {family: {task id: metric}}).")

    @property
    def families(self) -> dict[str, list[str]]:
        """Family -> its metric columns."""
        return {f: list(t.values()) if isinstance(t, dict) else list(t) for f, t in self.tasks.items()}


# flat key of earlier versions -> (section, field)
FLAT_KEYS: dict[str, tuple[str, str]] = {
    "regression_type": ("regression", "type"),
    "seed": ("regression", "seed"),
    "n_test": ("regression", "n_test"),
    "train_split": ("regression", "train_split"),
    "aggregate_task_families": ("regression", "aggregate_task_families"),
    "folds": ("regression", "folds"),
    "candidates": ("regression", "candidates"),
    "selection": ("regression", "selection"),
    "n_jobs": ("regression", "n_jobs"),
    "proposer_type": ("proposer", "type"),
    "temperature": ("proposer", "temperature"),
    "kl_reg": ("proposer", "kl_reg"),
    "fit_only": ("proposer", "fit_only"),
    "make_worst_mix": ("proposer", "make_worst_mix"),
    "uncertainty_penalty": ("proposer", "uncertainty_penalty"),
    "num_samples": ("proposer", "num_samples"),
    "top_k": ("proposer", "top_k"),
    "rounds": ("proposer", "rounds"),
    "num_starts": ("proposer", "num_starts"),
    "target_tokens": ("constraints", "target_tokens"),
    "repetition_factor": ("constraints", "repetition_factor"),
    "min_weight_per_domain": ("constraints", "min_weight_per_domain"),
    "fixed_weights": ("constraints", "fixed_weights"),
    "reference": ("constraints", "reference"),
    "tol": ("constraints", "tol"),
    "metrics": ("filtering", "metrics"),
    "drop_metrics": ("filtering", "drop_metrics"),
    "objective": ("filtering", "objective"),
    "opt_avg_metric": ("filtering", "opt_avg_metric"),
    "obj_weights": ("filtering", "obj_weights"),
    "maximize": ("filtering", "maximize"),
}


def nest_flat_keys(data: dict[str, Any], note: Any = None) -> dict[str, Any]:
    """Move the flat keys of earlier versions into their sections; `note(old, new)` is told about each."""
    out = {k: (dict(v) if isinstance(v, dict) and k in _SECTIONS else v) for k, v in data.items() if k not in FLAT_KEYS}
    for old, (section, name) in FLAT_KEYS.items():
        if old in data:
            part = out.setdefault(section, {})
            if not isinstance(part, dict):
                continue  # the section's own error reports it
            if name in part:
                raise ValueError(f"{old!r} and {section}.{name} both given; keep {section}.{name}")
            part[name] = data[old]
            if note is not None:
                note(old, f"{section}.{name}")
    return out


def _deprecation(old: str, new: str) -> None:
    logger.warning("fit option %r is deprecated: use %r (fit.%s in an experiment config)", old, new, new)


_SECTIONS = ("regression", "proposer", "constraints", "filtering", "eval")


class FitOptions(_Section):
    """Every fit/propose option: `olmix fit` flags and `--config`, the experiment config's `fit:` block, the flows."""

    regression: RegressionOptions = Field(RegressionOptions(), description="What is fitted and how it is scored.")
    proposer: ProposerOptions = Field(ProposerOptions(), description="How the mixture is proposed.")
    constraints: ConstraintsOptions = Field(ConstraintsOptions(), description="Constraints the proposal meets exactly.")
    filtering: FilteringOptions = Field(FilteringOptions(), description="Metrics fitted and the objective.")
    eval: EvalOptions = Field(EvalOptions(), description="Task families over the metric columns.")
    plots: bool = Field(True, description="Write the PNG plots.")

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in FLAT_KEYS for k in data):
            return nest_flat_keys(data, _deprecation)
        return data

    @model_validator(mode="after")
    def _rules(self) -> FitOptions:
        f, p, r, c = self.filtering, self.proposer, self.regression, self.constraints
        given = [n for n, on in [("objective", f.objective is not None), ("obj_weights", bool(f.obj_weights)),
                                 ("opt_avg_metric", f.opt_avg_metric)] if on]
        if len(given) > 1:
            raise _rule(f"filtering.{given[1]}", f"filtering.{given[0]} is also given; they are alternatives, give one")
        if r.aggregate_task_families and not self.eval.tasks:
            raise _rule("regression.aggregate_task_families", "needs task families in eval.tasks")
        if f.metrics is not None and self.eval.tasks:
            raise _rule("filtering.metrics", "eval.tasks already selects the metrics; give one of them")
        if p.type == "exact" and r.type not in ("log_linear", "auto"):
            raise _rule("proposer.type", f"exact needs regression.type log_linear (got {r.type!r}); use general")
        if p.make_worst_mix and p.type == "exact":
            raise _rule("proposer.make_worst_mix", "the exact proposer only minimises a convex objective; "
                        "use proposer.type general (or auto) for the worst mixture")
        if c.enabled and c.target_tokens is None:
            raise _rule("constraints.enabled", "true requires constraints.target_tokens")
        return self

    # derived ------------------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self.regression.seed or 0

    @property
    def proposes(self) -> bool:
        """Whether a run proposes a mixture: not fit-only, and no runs held out (as in Ai2's olmix)."""
        return not self.proposer.fit_only and self.regression.n_test == 0

    def fitting_only(self) -> FitOptions:
        """The same options with `proposer.fit_only` set (the flow's separately cached fit step)."""
        return self.with_proposer(fit_only=True)

    def with_proposer(self, **changes: Any) -> FitOptions:
        """The same options with these `proposer` fields changed."""
        return self.model_copy(update={"proposer": self.proposer.model_copy(update=changes)})

    @classmethod
    def from_dict(cls, data: Any, source: str = "fit options", prefix: str = "") -> FitOptions:
        """Validate; a ConfigError lists each bad field as `{prefix}section.field: why`."""
        if isinstance(data, FitOptions):
            return data
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of fit options, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ConfigError(f"{source}: " + "; ".join(describe_errors(e, prefix))) from None


def describe_errors(e: ValidationError, prefix: str = "") -> list[str]:
    """`field: why` per error, with the field a cross-field rule names (not the model's location)."""
    out = []
    for err in e.errors():
        loc = [str(p) for p in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == RULE_ERROR:
            loc, msg = [*loc, *str(err["ctx"]["field"]).split(".")], str(err["ctx"]["why"])
        elif err["type"] == "extra_forbidden":
            msg = "unknown key (not a fit option; check the spelling)"
        # a union's branches add their type names to the location ("float", "dict[str,float]"): drop them
        loc = [p for p in loc if not any(ch in p for ch in "[]") and p not in ("float", "int", "str", "bool")]
        out.append(f"{prefix}{'.'.join(loc) or '(top level)'}: {msg}")
    return out


def options_from_experiment(config: ExperimentConfig) -> FitOptions:
    """The fit options of a swarm: the config's `fit:` block, with the experiment's own constraints where the
    block leaves them unset (token caps at the proxy's target tokens with each leaf's repetition cap, fixed weights
    of single-leaf sources, the experiment's seed). `olmix swarm`, the pipeline stages and the flows call this."""
    opts = config.fit
    leaves_of = {s.name: [leaf for leaf, _, _ in s.leaves()] for s in config.sources}
    fixed = {src: w for src, w in config.fixed_weights().items() if leaves_of.get(src) == [src]}
    grouped = sorted(set(config.fixed_weights()) - set(fixed))
    if grouped and not opts.constraints.fixed_weights:
        logger.warning(
            "fixed weights of sources with topics (%s) constrain the sampled swarm only: the proposal fixes weights "
            "per leaf, so set fit.constraints.fixed_weights per topic to pin them there",
            ", ".join(grouped),
        )
    c = opts.constraints
    constraints = c.model_copy(update={
        "fixed_weights": c.fixed_weights or fixed,
        "target_tokens": c.target_tokens if c.target_tokens is not None else float(config.target_tokens),
        "repetition_factor": c.repetition_factor if c.repetition_factor is not None else config.leaf_repetition_caps(),
    })
    regression = opts.regression
    if regression.seed is None:
        regression = regression.model_copy(update={"seed": config.seed})
    return opts.model_copy(update={"constraints": constraints, "regression": regression})


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown(flags: dict[str, str] | None = None) -> str:
    """The fit options reference (docs/reference/fit-config.md's table), generated from the fields' docs;
    `flags`: field -> the `olmix fit` flag that sets it."""
    flags = flags or {}
    rows = ["| field | `olmix fit` flag | default | meaning |", "|---|---|---|---|"]
    for section, info in FitOptions.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            rows.append(f"| **`{section}`** | | | {_cell(info.description or '')} |")
            for name, f in model.model_fields.items():
                default = "—" if f.default is None else _cell(f"`{f.default!r}`")
                flag = f"`{flags[f'{section}.{name}']}`" if f"{section}.{name}" in flags else ""
                rows.append(f"| `{section}.{name}` | {flag} | {default} | {_cell(f.description or '')} |")
        else:
            flag = f"`{flags[section]}`" if section in flags else ""
            rows.append(f"| `{section}` | {flag} | `{info.default!r}` | {_cell(info.description or '')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # regenerate docs/reference/fit-config.md's table
    from olmix_core.commands.fit import FLAGS

    print(reference_markdown(FLAGS), end="")
