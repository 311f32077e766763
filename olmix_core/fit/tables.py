"""Reading and validating swarm tables (mixture ratios, metrics) and priors.

Two CSV layouts are accepted, detected from the header:

* olmix: ``run`` (or ``run_id``), ``name``, optional ``index``, then one column per domain / metric;
* RegMix: ``index``, then one column per domain / metric (e.g. ``metric/the_pile_pile_cc_val_loss``).

Columns with an empty header (the unnamed pandas index column Ai2 publishes its swarms with: ``,run,name,index,...``)
are metadata and skipped, as Ai2's olmix does. Duplicate column names are an error (pandas would silently rename
``a`` to ``a.1``), detected from the header line itself.

Domains and metrics are always matched by column *name*, never by position (a shipped bug once applied token caps
to the wrong domains because two tables listed domains in different orders).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from olmix_core.errors import DataError

ID_COLUMNS = ("run", "run_id", "index")
META_COLUMNS = ("run", "run_id", "name", "index")
SUM_TOLERANCE = 0.01


def _read_text(path: str | Path) -> str:
    """Local path or fsspec URL (s3://, gs://) -> text; a missing file is a DataError naming it."""
    path = str(path)
    try:
        if "://" in path:
            from olmix_core.store import open_fs

            fs, p = open_fs(path)
            with fs.open(p, "r") as f:
                return f.read()
        return Path(path).read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None


@dataclass
class Table:
    """One CSV: ids (strings, unique), optional run names, numeric columns in file order."""

    path: str
    id_column: str
    ids: list[str]
    names: list[str] | None
    columns: list[str]
    values: np.ndarray  # (rows, columns), float64, finite

    def line_of(self, row: int) -> int:
        """1-based line number in the file of data row `row` (the header is line 1)."""
        return row + 2

    def where(self, row: int) -> str:
        return f"{self.path}: line {self.line_of(row)} ({self.id_column} {self.ids[row]!r})"


def read_table(path: str | Path, what: str = "table") -> Table:
    """Parse an olmix- or RegMix-format CSV, checking ids, numeric values and NaN/inf cell by cell."""
    path = str(path)
    text = _read_text(path)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot parse {what} CSV: {e}") from None
    header = [c.strip() for c in next(csv.reader(io.StringIO(text)), [])]
    dups = sorted({c for c in header if c and header.count(c) > 1})
    if dups:
        raise DataError(f"{path}: duplicate column name(s) {dups} in the header")
    unnamed = [j for j, c in enumerate(header) if not c]
    if len(header) == len(df.columns):  # pandas' own names for the unnamed ones ("Unnamed: 0") are not ours
        df.columns = [c if c else f"\0unnamed{j}" for j, c in enumerate(header)]
        df = df.drop(columns=[f"\0unnamed{j}" for j in unnamed])
    cols = [str(c).strip() for c in df.columns]
    df.columns = cols
    id_col = next((c for c in ID_COLUMNS if c in cols), None)
    if id_col is None:
        raise DataError(
            f"{path}: no id column; expected one of {list(ID_COLUMNS)} (olmix: run,name,...; RegMix: index,...)"
        )
    meta = [c for c in cols if c in META_COLUMNS]
    data_cols = [c for c in cols if c not in META_COLUMNS]
    if not data_cols:
        raise DataError(f"{path}: no {what} columns besides {meta}")
    if len(df) == 0:
        raise DataError(f"{path}: no rows")
    ids = [s.strip() for s in df[id_col].tolist()]
    for r, i in enumerate(ids):
        if i == "":
            raise DataError(f"{path}: line {r + 2}: empty {id_col!r}")
    seen: dict[str, int] = {}
    for r, i in enumerate(ids):
        if i in seen:
            raise DataError(f"{path}: duplicate {id_col} {i!r} on lines {seen[i] + 2} and {r + 2}")
        seen[i] = r
    values = np.empty((len(df), len(data_cols)))
    for j, c in enumerate(data_cols):
        col = df[c].str.strip()
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(num))
        if bad.size:
            r = int(bad[0])
            raw = col.iloc[r]
            kind = "NaN/inf" if raw.lower().lstrip("+-") in ("nan", "inf", "infinity") else "not a number"
            raise DataError(f"{path}: line {r + 2} ({id_col} {ids[r]!r}), column {c!r}: {raw!r} is {kind}")
        values[:, j] = num
    names = [s.strip() for s in df["name"].tolist()] if "name" in cols else None
    return Table(path=path, id_column=id_col, ids=ids, names=names, columns=data_cols, values=values)


def read_ratios(path: str | Path, sum_tolerance: float = SUM_TOLERANCE) -> Table:
    """Mixture ratios: non-negative, each row summing to 1 ± `sum_tolerance`; rows are renormalised to sum to 1."""
    t = read_table(path, "ratio")
    neg = np.argwhere(t.values < 0)
    if neg.size:
        r, c = (int(v) for v in neg[0])
        raise DataError(f"{t.where(r)}, column {t.columns[c]!r}: negative weight {t.values[r, c]}")
    sums = t.values.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > sum_tolerance)
    if bad.size:
        r = int(bad[0])
        raise DataError(
            f"{t.where(r)}: weights sum to {sums[r]:.6f}, not 1 ± {sum_tolerance} "
            f"({bad.size} such row(s); columns {t.columns})"
        )
    t.values = t.values / sums[:, None]
    return t


def read_metrics(path: str | Path) -> Table:
    return read_table(path, "metric")


@dataclass
class SwarmTable:
    """Ratios joined with metrics on the run id: what regressors and proposers consume."""

    ids: list[str]
    names: list[str] | None
    id_column: str
    domains: list[str]
    metrics: list[str]
    X: np.ndarray  # (runs, domains), rows sum to 1
    Y: np.ndarray  # (runs, metrics)
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)  # file -> ids present only there
    unmatched: str | None = None  # how many rows of each table found no partner (prefixes "too few runs" errors)


def join_tables(ratios: Table, metrics: Table, select_metrics: list[str] | None = None) -> SwarmTable:
    """Inner join on the id; runs present in one table only are reported (in `warnings`/`dropped`) and dropped."""
    overlap = sorted(set(ratios.columns) & set(metrics.columns))
    if overlap:
        raise DataError(
            f"{metrics.path}: column(s) {overlap} also appear in {ratios.path}; a column is a domain or a metric"
        )
    if select_metrics is not None:
        missing = [m for m in select_metrics if m not in metrics.columns]
        if missing:
            raise DataError(f"{metrics.path}: no metric column(s) {missing} (columns: {metrics.columns})")
        if not select_metrics:
            raise DataError("no metrics selected")
        cols = [metrics.columns.index(m) for m in select_metrics]
        metrics = Table(
            metrics.path, metrics.id_column, metrics.ids, metrics.names, list(select_metrics), metrics.values[:, cols]
        )
    m_index = {i: r for r, i in enumerate(metrics.ids)}
    r_index = {i: r for r, i in enumerate(ratios.ids)}
    only_r = [i for i in ratios.ids if i not in m_index]
    only_m = [i for i in metrics.ids if i not in r_index]
    unmatched = (
        f"{len(only_r)} of {len(ratios.ids)} row(s) of {ratios.path} and {len(only_m)} of {len(metrics.ids)} row(s) "
        f"of {metrics.path} found no partner (ids e.g. {only_r[:3]} vs {only_m[:3]})"
    )
    warnings: list[str] = []
    dropped: dict[str, list[str]] = {}
    for only, here, there in [(only_r, ratios, metrics), (only_m, metrics, ratios)]:
        if only:
            dropped[here.path] = only
            show = ", ".join(repr(i) for i in only[:10]) + (" ..." if len(only) > 10 else "")
            warnings.append(f"{len(only)} run(s) in {here.path} but not in {there.path}, dropped: {show}")
    keep = [i for i in ratios.ids if i in m_index]
    if not keep:
        raise DataError(
            f"no run ids in common between {ratios.path} ({ratios.id_column}) and {metrics.path} "
            f"({metrics.id_column}): {unmatched}"
        )
    ri = np.array([r_index[i] for i in keep])
    mi = np.array([m_index[i] for i in keep])
    Y = metrics.values[mi]
    for j, c in enumerate(metrics.columns):
        if len(keep) > 1 and np.ptp(Y[:, j]) == 0:
            raise DataError(
                f"{metrics.path}: column {c!r} is constant ({Y[0, j]}) over all {len(keep)} runs; nothing to fit"
            )
    names = (
        [ratios.names[r] for r in ri] if ratios.names else ([metrics.names[r] for r in mi] if metrics.names else None)
    )
    return SwarmTable(
        ids=keep,
        names=names,
        id_column=ratios.id_column,
        domains=list(ratios.columns),
        metrics=list(metrics.columns),
        X=ratios.values[ri],
        Y=Y,
        warnings=warnings,
        dropped=dropped,
        unmatched=unmatched if only_r or only_m else None,
    )


def load_tables(ratios_path: str | Path, metrics_path: str | Path, metrics: list[str] | None = None) -> SwarmTable:
    """Read, validate and join a swarm's ratios and metrics CSVs (olmix or RegMix layout)."""
    return join_tables(read_ratios(ratios_path), read_metrics(metrics_path), metrics)


# ----------------------------------------------------------------------------------------------------------- priors
@dataclass
class Priors:
    """The prior mixture (relative sizes, normalised over the swarm's domains) and optional token counts."""

    relative_sizes: dict[str, float]
    token_counts: dict[str, float] | None = None


def _load_mapping(source: str | Path | dict[str, Any], what: str) -> tuple[dict[str, Any], str]:
    if isinstance(source, dict):
        return source, what
    path = str(source)
    text = _read_text(path)
    import yaml

    try:
        data = yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{path}: cannot parse {what}: {e}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: {what} must be a mapping, got {type(data).__name__}")
    return data, path


def load_priors(source: str | Path | dict[str, Any], domains: list[str]) -> tuple[Priors, list[str]]:
    """Priors from a JSON/YAML file or dict (`{relative_sizes, token_counts}`, optionally under a `priors:` key).

    Every domain of the swarm needs a relative size (and a token count, if counts are given); entries for other
    domains are ignored and reported in the returned warnings."""
    data, where = _load_mapping(source, "priors")
    if "priors" in data and isinstance(data["priors"], dict) and "relative_sizes" not in data:
        data = data["priors"]
    unknown = sorted(set(data) - {"relative_sizes", "token_counts"})
    if unknown:
        raise DataError(f"{where}: unknown priors key(s) {unknown}; expected relative_sizes, token_counts")
    warnings: list[str] = []

    def mapping(key: str) -> dict[str, float] | None:
        raw = data.get(key)
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise DataError(f"{where}: {key} must be a mapping domain -> number")
        out: dict[str, float] = {}
        for k, v in raw.items():
            out[str(k)] = _nonnegative(v, f"{where}: {key}[{k!r}]")
        missing = [d for d in domains if d not in out]
        if missing:
            raise DataError(f"{where}: {key} has no entry for domain(s) {missing}")
        extra = sorted(set(out) - set(domains))
        if extra:
            warnings.append(f"{where}: {key} entries for domains not in the swarm ignored: {extra}")
        return {d: out[d] for d in domains}

    token_counts = mapping("token_counts")
    rel = mapping("relative_sizes")
    if rel is None:
        if token_counts is None:
            raise DataError(f"{where}: needs relative_sizes or token_counts")
        rel = dict(token_counts)
    total = sum(rel.values())
    if total <= 0:
        raise DataError(f"{where}: relative_sizes are all 0 over the swarm's domains")
    return Priors({d: v / total for d, v in rel.items()}, token_counts), warnings


def _nonnegative(value: Any, label: str, shown: Any = None) -> float:
    """A finite number >= 0, or a DataError `{label} = {value} ...` (`shown`: the value as the file has it)."""
    shown = value if shown is None else shown
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{label} = {shown!r} is not a number") from None
    if not math.isfinite(f) or f < 0:
        raise DataError(f"{label} = {shown!r} must be finite and >= 0")
    return f


def load_mixture(source: str | Path | dict[str, Any], domains: list[str], what: str = "reference") -> dict[str, float]:
    """A mixture `{domain: weight}` (also `{domain: [weight, repetition]}` as in mixtures.json) over `domains`.

    Domains not listed get weight 0; unknown domains and sums off 1 by more than 0.01 are errors."""
    data, where = _load_mapping(source, what)
    out = {d: 0.0 for d in domains}
    for k, v in data.items():
        if k not in out:
            raise DataError(f"{where}: {what} domain {k!r} is not a domain of the swarm ({domains})")
        out[k] = _nonnegative(v[0] if isinstance(v, (list, tuple)) and v else v, f"{where}: {what}[{k!r}]", shown=v)
    total = sum(out.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise DataError(f"{where}: {what} weights sum to {total:.6f}, not 1 ± {SUM_TOLERANCE}")
    return {d: w / total for d, w in out.items()}
