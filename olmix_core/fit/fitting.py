"""Fitting one model per metric, K-fold cross-validation, `auto` selection, and saving/loading the models.

Only the training table is ever used: K-fold CV on its rows scores every candidate (Spearman, Pearson, MAE of the
out-of-fold predictions), `auto` keeps per metric the average of the best few candidates (`_ensemble`), and the
chosen models are refitted on all rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from olmix_core.errors import ArtifactCorrupt, ArtifactMissing, DataError
from olmix_core.fit.regressors import (
    REGRESSION_TYPES,
    REGRESSORS,
    EnsembleRegressor,
    GPRegressor,
    LightGBMRegressor,
    Regressor,
    gp_predict,
    make_regressor,
    regressor_from_state,
)
from olmix_core.fit.tables import SwarmTable

# Candidates `auto` compares, with their settings. LightGBM here is tuned for small swarms (7 leaves, at most 150
# rounds at rate 0.066, stopped 15 rounds after the CV folds' loss last improved: on the DCLM swarm the same CV
# Spearman as 300 rounds at 0.033 for 40% of the time, ~90 trees kept; 63-bin histograms: the same CV Spearman on
# DCLM and on a 512 × 60 synthetic swarm for 45% of the time); `lightgbm` chosen explicitly keeps RegMix's settings
# (1000 rounds, no early stopping, 255 bins) as the baseline.
AUTO_CANDIDATES: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "num_iterations": 150,
        "learning_rate": 0.066,
        "num_leaves": 7,
        "min_child_samples": 5,
        "early_stopping_rounds": 15,
        "max_bin": 63,
    },
    "log_linear": {},
    "log_linear_power": {},
    "gp": {},
    "linear": {},
}
MODELS_FORMAT = "olmix-models/1"


CLIP_SPANS = 1.0  # predictions are kept within the training range widened by this many ranges on each side


def clip_range(Y: np.ndarray) -> np.ndarray:
    """(2 × metrics): the band each metric's predictions are kept in. Laws with an exponential (log-linear, BiMix)
    can extrapolate off any scale on mixtures unlike the training runs (DCLM, mmlu_moral_scenarios: a held-out MAE
    of 163 BPB); nothing a mixture does moves a metric a whole observed range beyond what the swarm saw. A metric
    never seen on one side of zero (a loss, BPB, an accuracy) is not predicted across it: with few runs a whole
    range below the best one can be below zero."""
    lo, hi = np.nanmin(Y, axis=0), np.nanmax(Y, axis=0)
    span = hi - lo
    low, high = lo - CLIP_SPANS * span, hi + CLIP_SPANS * span
    return np.vstack([np.where(lo >= 0, np.maximum(low, 0.0), low), np.where(hi <= 0, np.minimum(high, 0.0), high)])


def kfold(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled K-fold split of range(n) (k capped at n); the same folds serve every metric and candidate."""
    k = max(2, min(k, n))
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, k)
    return [(np.sort(np.concatenate(parts[:i] + parts[i + 1 :])), np.sort(parts[i])) for i in range(k)]


def rankdata(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata; avoids importing scipy.stats (1 s)."""
    a = np.asarray(a)
    sorter = np.argsort(a, kind="mergesort")
    inv = np.empty(len(a), dtype=np.intp)
    inv[sorter] = np.arange(len(a))
    s = a[sorter]
    obs = np.r_[True, s[1:] != s[:-1]]
    dense = np.cumsum(obs)[inv]
    count = np.r_[np.flatnonzero(obs), len(obs)]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else float("nan")


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson (NaN when predictions are constant) and mean absolute error."""
    pred, y = np.asarray(pred, float), np.asarray(y, float)
    return {
        "spearman": _pearson(rankdata(pred), rankdata(y)),
        "pearson": _pearson(pred, y),
        "mae": float(np.mean(np.abs(pred - y))),
    }


ENSEMBLE_TOLERANCE = {"spearman": 0.1, "mae": 1.25}  # how far behind the best a member of the average may be


def _ensemble(table: dict[str, dict[str, float]], selection: str, size: int) -> list[str]:
    """`auto`'s choice for one metric: the average of the `size` best candidates by CV, leaving out any more than
    0.1 Spearman (or 25% MAE) behind the best. An average of the leaders predicts held-out runs better than the
    single CV winner or the CV-best combination, both of which are chosen on the same noisy folds they are scored
    on (DCLM, outer 5-fold CV: mean held-out Spearman 0.864 vs 0.863, at least as good as Ai2's log-linear on
    97% of the metrics vs 94%)."""
    ranked = sorted(table, key=lambda k: _rank_key(table[k], selection))
    lead = table[ranked[0]]
    if selection == "spearman":
        rho = lead["spearman"] if np.isfinite(lead["spearman"]) else -2.0
        floor = rho - ENSEMBLE_TOLERANCE["spearman"]
        close = [c for c in ranked[:size] if np.isfinite(table[c]["spearman"]) and table[c]["spearman"] >= floor]
    else:
        close = [c for c in ranked[:size] if table[c]["mae"] <= lead["mae"] * ENSEMBLE_TOLERANCE["mae"]]
    return close or ranked[:1]


def _rank_key(s: dict[str, float], selection: str) -> tuple[float, float]:
    """Sort key, smaller is better: by Spearman (ties by MAE) or by MAE (ties by Spearman)."""
    rho = s["spearman"] if np.isfinite(s["spearman"]) else -2.0
    return (-round(rho, 6), s["mae"]) if selection == "spearman" else (s["mae"], -rho)


@dataclass
class MetricFit:
    """The fitted model of one metric, how it was chosen, and its cross-validated predictions."""

    metric: str
    model: Regressor
    chosen: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate (or ensemble) -> CV scores
    oof: np.ndarray | None = None  # CV predictions of the chosen model, aligned with the table's rows
    notes: list[str] = field(default_factory=list)
    clip: tuple[float, float] | None = None  # predictions are kept in [lo, hi] (`clip_range` of the training rows)


def _new(name: str, params: dict[str, Any] | None) -> Regressor:
    return make_regressor(name, **(params or {}))


Progress = Callable[[float, str], None]
"""`progress(fraction_done, message)`: called as the fit advances (the CLI draws a bar, a Prefect task an artifact)."""

# relative cost of one metric's CV for each kind (weights of the progress fraction, largest units first)
_COST = {"lightgbm": 4.0, "log_linear_power": 1.0, "gp": 0.5, "log_linear": 0.5, "bimix": 2.0, "linear": 0.01}


def _predict_columns(models: list[Regressor], X: np.ndarray) -> np.ndarray:
    gps = [m for m in models if isinstance(m, GPRegressor)]
    if len(gps) == len(models) and gps:
        return gp_predict(gps, X)[0]
    return np.column_stack([m.predict(X) for m in models])


def _cv_unit(
    name: str,
    params: dict[str, Any],
    X: np.ndarray,
    Y: np.ndarray,
    split: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
) -> tuple[list[Regressor], np.ndarray | None]:
    """Full-data models and out-of-fold predictions of one kind for the columns of Y (None without folds).

    Kinds with a joint fit (`fit_many`) fit every column at once per fold; GP fold refits start from the full
    fit's hyperparameters (a short warm-started optimisation on the fold's rows). LightGBM with
    `early_stopping_rounds` boosts the fold models in lockstep and stops early (`cross_validate`)."""
    from threadpoolctl import threadpool_limits

    cls = REGRESSORS[name]
    with threadpool_limits(1):  # small matrices: BLAS threads only add overhead; parallelism is across units
        patience = int(params.get("early_stopping_rounds") or 0)
        if cls is LightGBMRegressor and patience and split:
            fulls, oof = LightGBMRegressor.cross_validate(X, Y, split, seed, patience=patience, **params)
        else:
            fulls = cls.fit_many(X, Y, seed, **params)
            if not split:
                return fulls, None
            oof = np.empty(Y.shape)
            warm = [f.theta for f in fulls] if cls is GPRegressor else None  # type: ignore[attr-defined]
            for tr, va in split:
                oof[va] = _predict_columns(cls.fit_many(X[tr], Y[tr], seed, warm_start=warm, **params), X[va])
        for tr, va in split:  # as the fitted models will be: within the band of their own training rows
            band = clip_range(Y[tr])
            oof[va] = np.clip(oof[va], band[0], band[1])
        return fulls, oof


def _unit_job(job: tuple[Any, ...]) -> tuple[int, list[Regressor], np.ndarray | None]:
    i, name, params, X, Y, split, seed = job
    fulls, oof = _cv_unit(name, params, X, Y, split, seed)
    return i, fulls, oof


def _run_cv(
    cands: dict[str, dict[str, Any]],
    X: np.ndarray,
    Y: np.ndarray,
    metrics: list[str],
    split: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
    workers: int,
    progress: Progress | None,
) -> dict[str, tuple[list[Regressor], np.ndarray | None]]:
    """Every candidate on every metric: kinds that share parameters across metrics (GP) as one unit, other joint
    (batched) kinds in one chunk of metrics per worker, per-metric kinds in smaller chunks; units run in `workers`
    processes (results do not depend on the number of workers)."""
    m = Y.shape[1]
    units: list[tuple[str, dict[str, Any], np.ndarray]] = []
    for name, params in cands.items():
        cls = REGRESSORS[name]
        if cls.shared or m == 1 or (cls.joint and workers == 1):
            units.append((name, params, np.arange(m)))
            continue
        size = math.ceil(m / workers) if cls.joint else max(1, math.ceil(m / max(4, 3 * workers)))
        units += [(name, params, np.arange(i, min(i + size, m))) for i in range(0, m, size)]
    weight = np.array([_COST.get(name, 1.0) * len(cols) for name, _, cols in units])
    order = np.argsort(-weight, kind="stable")
    total, done = float(weight.sum()) or 1.0, 0.0
    folds = f"{len(split)}-fold CV + full fit" if split else "full fit"
    jobs = [(int(i), units[i][0], units[i][1], X, Y[:, units[i][2]], split, seed) for i in order]
    if progress:
        progress(0.0, f"fitting {len(cands)} model kind(s) × {m} metric(s), {folds}")
    if workers == 1 or len(jobs) == 1:
        results: Any = (_unit_job(j) for j in jobs)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")(
            delayed(_unit_job)(j) for j in jobs
        )
    parts: dict[int, tuple[list[Regressor], np.ndarray | None]] = {}
    for i, fulls, oof in results:
        parts[i] = (fulls, oof)
        done += weight[i]
        if progress:
            name, _, cols = units[i]
            which = metrics[cols[0]] if len(cols) == 1 else f"metrics {cols[0] + 1}–{cols[-1] + 1} of {m}"
            progress(done / total, f"{name}: {which}, {folds}")
    out: dict[str, tuple[list[Regressor], np.ndarray | None]] = {}
    for name in cands:
        fulls_all: list[Regressor] = []
        oof_all = np.empty(Y.shape) if split else None
        for i, (uname, _, cols) in enumerate(units):
            if uname != name:
                continue
            fulls, oof = parts[i]
            fulls_all += fulls
            if oof_all is not None and oof is not None:
                oof_all[:, cols] = oof
        out[name] = (fulls_all, oof_all)
    return out


def _fit_table(
    X: np.ndarray,
    Y: np.ndarray,
    metrics: list[str],
    regression_type: str = "auto",
    *,
    folds: int = 5,
    seed: int = 0,
    candidates: dict[str, dict[str, Any]] | None = None,
    selection: str = "spearman",
    max_ensemble: int = 3,
    workers: int = 1,
    progress: Progress | None = None,
) -> list[MetricFit]:
    """Fit `regression_type` (or choose among `candidates` per metric when "auto") for every column of Y, with
    K-fold CV scores. The same folds serve every metric and candidate."""
    n, d = X.shape
    split = kfold(n, folds, seed) if folds >= 2 and n >= 4 else []
    min_train = min((len(tr) for tr, _ in split), default=0)
    clips = [(float(lo), float(hi)) for lo, hi in clip_range(Y).T]
    if regression_type != "auto":
        reg = _new(regression_type, None)
        for metric in metrics:
            reg.check_runs(n, d, metric)
        cv_ok = bool(split) and min_train >= reg.min_runs(d)
        res = _run_cv({regression_type: {}}, X, Y, metrics, split if cv_ok else [], seed, workers, progress)
        fulls, oof = res[regression_type]
        out = []
        for j, metric in enumerate(metrics):
            fit = MetricFit(metric, fulls[j], fulls[j].describe(), clip=clips[j])
            if oof is not None:
                fit.oof = oof[:, j].copy()
                fit.scores[regression_type] = scores(fit.oof, Y[:, j])
            else:
                fit.notes.append(
                    f"no CV: {n} runs leave {min_train} per training fold, {regression_type} needs {reg.min_runs(d)}"
                )
            out.append(fit)
        return out

    cands = dict(AUTO_CANDIDATES if candidates is None else candidates)
    unknown = [c for c in cands if c not in REGRESSORS]
    if unknown:
        raise DataError(f"auto candidates {unknown} are not regression types ({list(REGRESSORS)})")
    if not split:
        what = f"metric {metrics[0]!r}" if len(metrics) == 1 else "the table"
        raise DataError(f"regression type 'auto' needs at least 4 runs for K-fold selection ({what}: {n} runs)")
    notes: list[str] = []
    usable: dict[str, dict[str, Any]] = {}
    for name, params in cands.items():
        need = REGRESSORS[name].min_runs(d)
        if min_train < need:
            notes.append(f"{name} skipped: needs {need} runs per training fold for {d} domains, has {min_train}")
        else:
            usable[name] = params
    if not usable:
        what = f"metric {metrics[0]!r}" if len(metrics) == 1 else "no metric"
        raise DataError(f"{what}: no regressor can be fitted on {n} runs with {d} domains ({'; '.join(notes)})")
    res = _run_cv(usable, X, Y, metrics, split, seed, workers, progress)
    out = []
    for j, metric in enumerate(metrics):
        y = Y[:, j]
        oofs = {name: o[:, j] for name, (_, o) in res.items() if o is not None}
        table = {name: scores(o, y) for name, o in oofs.items()}
        members = _ensemble(table, selection, max_ensemble)
        best = "+".join(members)
        oof = np.mean([oofs[c] for c in members], axis=0)
        if len(members) > 1:
            table[best] = scores(oof, y)
        fulls = {name: f[j] for name, (f, _) in res.items()}
        model: Regressor = fulls[members[0]] if len(members) == 1 else EnsembleRegressor([fulls[k] for k in members])
        out.append(MetricFit(metric, model, best, table, oof, list(notes), clip=clips[j]))
    return out


def fit_metric(
    X: np.ndarray,
    y: np.ndarray,
    metric: str,
    regression_type: str = "auto",
    *,
    folds: int = 5,
    seed: int = 0,
    candidates: dict[str, dict[str, Any]] | None = None,
    selection: str = "spearman",
    max_ensemble: int = 3,
) -> MetricFit:
    """`fit_models` for a single metric (arrays in, one MetricFit out)."""
    X = np.asarray(X, float)
    Y = np.asarray(y, float)[:, None]
    return _fit_table(
        X, Y, [metric], regression_type, folds=folds, seed=seed, candidates=candidates, selection=selection,
        max_ensemble=max_ensemble,
    )[0]


@dataclass
class _PredictPlan:
    """How the members of several metrics' models are predicted and combined (built once per metric list)."""

    members: list[Regressor]
    gp_idx: list[int]
    by_kind: list[tuple[type, list[int]]]
    avg: np.ndarray  # (members × metrics): 1/k for each of a metric's k members
    own: np.ndarray  # (members × metrics): 1/k' for each of a metric's k' members with their own std
    sizes: np.ndarray  # members per metric
    has_std: np.ndarray  # metrics with at least one member with a std
    lo: np.ndarray  # per member: its metric's band (`MetricFit.clip`; ±inf without one)
    hi: np.ndarray

    @classmethod
    def build(cls, fits: list[MetricFit]) -> _PredictPlan:
        models = [f.model for f in fits]
        members: list[Regressor] = []
        owner: list[int] = []
        for j, model in enumerate(models):
            for sub in model.members if isinstance(model, EnsembleRegressor) else [model]:
                members.append(sub)
                owner.append(j)
        gp_idx = [k for k, r in enumerate(members) if isinstance(r, GPRegressor)]
        kinds: dict[type, list[int]] = {}
        for k, r in enumerate(members):
            if not isinstance(r, GPRegressor):
                kinds.setdefault(type(r), []).append(k)
        m = len(models)
        avg, own = np.zeros((len(members), m)), np.zeros((len(members), m))
        sizes = np.bincount(owner, minlength=m).astype(float)
        gp = np.zeros(len(members), bool)
        gp[gp_idx] = True
        n_own = np.bincount(np.array(owner)[gp], minlength=m) if gp.any() else np.zeros(m, int)
        for k, j in enumerate(owner):
            avg[k, j] = 1.0 / sizes[j]
            if gp[k]:
                own[k, j] = 1.0 / n_own[j]
        bands = np.array([f.clip if f.clip is not None else (-np.inf, np.inf) for f in fits], float).reshape(-1, 2)
        own_band = bands[np.array(owner, int)] if owner else np.zeros((0, 2))
        return cls(members, gp_idx, list(kinds.items()), avg, own, sizes, n_own > 0, own_band[:, 0], own_band[:, 1])


@dataclass
class FittedModels:
    """One fitted model per metric over named domains; predicts from mixtures given in `domains` order."""

    domains: list[str]
    metrics: list[str]
    fits: dict[str, MetricFit]
    regression_type: str
    folds: int = 0
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)  # batched predictors

    def model(self, metric: str) -> Regressor:
        return self.fits[metric].model

    def predict(self, X: np.ndarray, metrics: list[str] | None = None) -> np.ndarray:
        return self._predict(X, self.metrics if metrics is None else metrics, with_std=False)[0]

    def predict_mean_std(self, X: np.ndarray, metrics: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and model uncertainty per metric (NaN where the model has none), computed together."""
        P, S = self._predict(X, self.metrics if metrics is None else metrics, with_std=True)
        assert S is not None
        return P, S

    def _plan(self, ms: list[str]) -> _PredictPlan:
        key = ("plan", tuple(ms))
        if key not in self._cache:
            self._cache[key] = _PredictPlan.build([self.fits[m] for m in ms])
        return self._cache[key]

    def _predict(self, X: np.ndarray, ms: list[str], with_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """All metrics at once: ensembles are opened into their members, every GP member of every metric goes
        into one `gp_predict` call (GPs fitted together share one kernel block), every other kind into one
        `predict_many` call, members are kept in their metric's band (`clip_range`) and combined per metric by two
        matrix products."""
        X = np.atleast_2d(np.asarray(X, float))
        plan = self._plan(ms)
        M = np.empty((len(X), len(plan.members)))
        SD = np.zeros((len(X), len(plan.members))) if with_std else None
        if plan.gp_idx:
            G, GS = gp_predict([plan.members[k] for k in plan.gp_idx], X, with_std=with_std)  # type: ignore[misc]
            M[:, plan.gp_idx] = G
            if SD is not None and GS is not None:
                SD[:, plan.gp_idx] = GS
        for kind, ks in plan.by_kind:  # no other kind has a std
            M[:, ks] = kind.predict_many([plan.members[k] for k in ks], X, self._cache)
        np.clip(M, plan.lo, plan.hi, out=M)
        P = M @ plan.avg
        if SD is None:
            return P, None
        # as EnsembleRegressor.predict_mean_std: sqrt(mean of the members' own variances / members + spread)
        spread = np.maximum((M * M) @ plan.avg - P * P, 0.0)
        S = np.sqrt((SD * SD) @ plan.own / plan.sizes[None, :] + spread)
        S[:, ~plan.has_std] = np.nan
        return P, S

    def predict_std(self, X: np.ndarray, metrics: list[str] | None = None) -> np.ndarray:
        return self.predict_mean_std(X, metrics)[1]

    def report(self) -> dict[str, Any]:
        return {
            "regression_type": self.regression_type,
            "folds": self.folds,
            "seed": self.seed,
            "domains": self.domains,
            "metrics": {
                m: {"chosen": f.chosen, "cv": f.scores, **({"notes": f.notes} if f.notes else {})}
                for m, f in self.fits.items()
            },
            **({"notes": self.notes} if self.notes else {}),
        }

    # -------------------------------------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> None:
        """`manifest.json` (domains, metrics, files) plus one JSON state per metric; no pickle."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = {}
        for i, m in enumerate(self.metrics):
            name = f"metric_{i:03d}.json"
            f = self.fits[m]
            payload = {"metric": m, "chosen": f.chosen, "cv": f.scores, "state": f.model.state(),
                       **({"clip": list(f.clip)} if f.clip is not None else {})}
            (directory / name).write_text(json.dumps(payload))
            files[m] = name
        manifest = {
            "format": MODELS_FORMAT,
            "regression_type": self.regression_type,
            "folds": self.folds,
            "seed": self.seed,
            "domains": self.domains,
            "metrics": self.metrics,
            "files": files,
        }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> FittedModels:
        """Load from a local folder or an fsspec URL (s3://, gs://) written by `save`."""
        where = str(directory).rstrip("/")
        if "://" in where:
            from olmix_core.store import open_fs

            fs, root = open_fs(where)

            def read(name: str) -> str:
                return fs.cat_file(f"{root}/{name}").decode()

            exists = fs.exists(f"{root}/manifest.json")
        else:

            def read(name: str) -> str:
                return (Path(where) / name).read_text()

            exists = (Path(where) / "manifest.json").exists()
        if not exists:
            raise ArtifactMissing(f"{where}: no manifest.json (not a model directory written by `olmix fit`)")
        try:
            manifest = json.loads(read("manifest.json"))
            if manifest.get("format") != MODELS_FORMAT:
                raise ArtifactCorrupt(
                    f"{where}/manifest.json: format {manifest.get('format')!r}, expected {MODELS_FORMAT!r}"
                )
            fits = {}
            for m in manifest["metrics"]:
                payload = json.loads(read(manifest["files"][m]))
                clip = payload.get("clip")  # absent in models saved before predictions were clipped
                fits[m] = MetricFit(m, regressor_from_state(payload["state"]), payload["chosen"], payload.get("cv", {}),
                                    clip=None if clip is None else (float(clip[0]), float(clip[1])))
        except (KeyError, ValueError, OSError) as e:
            raise ArtifactCorrupt(f"{where}: cannot load models: {e}") from None
        return cls(
            manifest["domains"],
            manifest["metrics"],
            fits,
            manifest["regression_type"],
            manifest["folds"],
            manifest["seed"],
        )


def fit_models(
    table: SwarmTable,
    regression_type: str = "auto",
    *,
    folds: int = 5,
    seed: int = 0,
    n_jobs: int = -1,
    candidates: dict[str, dict[str, Any]] | list[str] | None = None,
    selection: str = "spearman",
    progress: Progress | None = None,
) -> FittedModels:
    """Fit one model per metric of `table` (model kinds / chunks of metrics in parallel processes when n_jobs != 1);
    `progress(fraction, message)` is called as the work advances."""
    if regression_type not in REGRESSION_TYPES:
        raise DataError(f"unknown regression type {regression_type!r}; choose from {list(REGRESSION_TYPES)}")
    if selection not in ("spearman", "mae"):
        raise DataError(f"selection must be 'spearman' or 'mae', got {selection!r}")
    if isinstance(candidates, list):
        candidates = {c: AUTO_CANDIDATES.get(c, {}) for c in candidates}
    n, d = table.X.shape
    if regression_type != "auto":
        make_regressor(regression_type).check_runs(n, d)
    from joblib import cpu_count

    workers = cpu_count() if n_jobs in (-1, 0) else n_jobs
    results = _fit_table(
        table.X,
        table.Y,
        list(table.metrics),
        regression_type,
        folds=folds,
        seed=seed,
        candidates=candidates,
        selection=selection,
        workers=max(1, workers),
        progress=progress,
    )
    if progress:
        progress(1.0, f"fitted {len(results)} metric(s)")
    fits = {r.metric: r for r in results}
    return FittedModels(
        list(table.domains), list(table.metrics), fits, regression_type, folds, seed, list(table.warnings)
    )
