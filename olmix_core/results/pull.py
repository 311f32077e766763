"""`pull_results`: one swarm's results (local records, WandB or an eval dashboard) as the fit's two tables.

- `ratios.csv`: `run,name,<leaf>...` — one column per config leaf (zeros included), rows sum to 1. Weights come from
  the swarm's own records (run spec, result, `mixtures.json[variant]`), by run name; from WandB run configs only
  when the store has none.
- `metrics.csv`: `run,name,<metric>...` — only runs that have every metric (the others are reported).
- `pull_report.json`: runs expected, found, missing, failed, still running, new since the last pull, metrics missing.

Written to `output_dir` (when given) and always to the store's `results/`. Incremental: a state file next to the
outputs and in the store's `results/` remembers what was read, so a second pull only reads what changed, and the
report's `new_runs` says which rows are new or changed (the re-fit uses it to decide whether to fit again).
"""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timezone
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ArtifactCorrupt, ArtifactMissing, ConfigError, DataError
from olmix_core.evals.script import dashboard_name, eval_tasks, results_prefix
from olmix_core.evals.tasks import default_inloop_metrics
from olmix_core.names import check_name, parse_run_name, run_name
from olmix_core.results.local import collect_local, read_store_runs
from olmix_core.results.records import FAILED_STATES, RUNNING_STATES, SUCCEEDED, SourceResult, as_metric
from olmix_core.store import SwarmStore

SOURCES = ("local", "wandb", "dashboard")
STATE_FILE = "pull_state.json"
STATE_VERSION = 1
WEIGHT_SUM_TOLERANCE = 0.01


class PullReport(BaseModel):
    """What a pull found. Run lists are run names, sorted by variant."""

    group_id: str
    source: Literal["local", "wandb", "dashboard"]
    pulled_at: str
    expected: list[str]
    found: list[str] = Field(description="runs with results in the source")
    included: list[str] = Field(description="rows of ratios.csv / metrics.csv")
    missing: list[str] = Field(description="expected runs the source knows nothing about")
    failed: list[str]
    running: list[str] = Field(description="submitted, pending or running")
    new_runs: list[str] = Field(description="included runs that are new or changed since the last pull")
    missing_metrics: dict[str, list[str]] = Field(description="run -> metrics it lacks (such runs are left out)")
    dropped_metrics: list[str] = Field(description="requested metrics that no run has (left out of metrics.csv)")
    excluded: dict[str, str] = Field(description="found runs left out for another reason (e.g. no mixture weights)")
    unexpected: list[str] = Field(description="runs of this group in the source that the swarm does not list")
    metrics: list[str] = Field(description="columns of metrics.csv")
    leaves: list[str] = Field(description="columns of ratios.csv")
    files_read: int = Field(description="files or WandB runs read this time (the rest came from the pull state)")
    warnings: list[str] = []
    ratios_path: str
    metrics_path: str
    report_path: str
    store_ratios_url: str
    store_metrics_url: str


def parse_metrics_option(values: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """`--metrics`: a file (one name a line, `#` comments) or a comma-separated list; may be given several times."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        if os.path.isfile(value):
            with open(value) as f:
                out += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        else:
            out += [v.strip() for v in value.split(",") if v.strip()]
    if not out:
        return None
    return list(dict.fromkeys(out))


def _variant(run: str) -> tuple[int, str]:
    try:
        return parse_run_name(run)[2], run
    except ValueError:
        return 1 << 30, run


def _sorted(runs: Any) -> list[str]:
    return sorted(set(runs), key=_variant)


def _load_state(output_dir: str | None, swarm: SwarmStore) -> dict[str, Any]:
    if output_dir and os.path.isfile(os.path.join(output_dir, STATE_FILE)):
        try:
            with open(os.path.join(output_dir, STATE_FILE)) as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = {}
    else:
        try:
            state = swarm.store.read_json_or(swarm.results_key(STATE_FILE), {})
        except ArtifactCorrupt:
            state = {}
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else {}


def _default_metrics(source: str, config: ExperimentConfig, found_metrics: list[dict[str, float]]) -> list[str]:
    if config.fit.filtering.metrics:
        return list(config.fit.filtering.metrics)
    if config.fit.eval.tasks:
        return list(dict.fromkeys(t for tasks in config.fit.eval.families.values() for t in tasks))
    if source == "wandb":
        return default_inloop_metrics()
    if source == "dashboard":
        return eval_tasks(config)
    keys = sorted({k for m in found_metrics for k in m})
    evals = [k for k in keys if k.startswith("eval/")]
    ce = [k for k in evals if k.endswith("CE loss")]
    return ce or evals or keys


def _check_weights(weights: dict[str, Any], leaves: list[str]) -> dict[str, float] | str:
    """Weights over every config leaf (zeros added), re-normalised; or the reason they cannot be used."""
    unknown = sorted(set(weights) - set(leaves))
    if unknown:
        return f"mixture names leaves not in the config: {unknown}"
    clean: dict[str, float] = {}
    for leaf in leaves:
        v = as_metric(weights.get(leaf, 0.0))
        if v is None or v < 0:
            return f"weight of {leaf!r} is {weights.get(leaf)!r}"
        clean[leaf] = v
    total = sum(clean.values())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        return f"mixture weights sum to {total:.4f}, not 1"
    return {leaf: v / total for leaf, v in clean.items()}


def _store_weights(run: str, files: dict[str, dict], mixtures: list[Any] | None) -> dict[str, Any] | None:
    spec = files.get("spec.json")
    if spec and spec.get("weights"):
        return spec["weights"]
    result = files.get("result.json")
    if result and isinstance(result.get("mixture"), dict) and result["mixture"]:
        return result["mixture"]
    if mixtures:
        try:
            variant = parse_run_name(run)[2]
        except ValueError:
            return None
        if variant < len(mixtures) and isinstance(mixtures[variant], dict):
            return {leaf: (wr[0] if isinstance(wr, (list, tuple)) else wr) for leaf, wr in mixtures[variant].items()}
    return None


def _csv(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def pull_results(
    config: ExperimentConfig,
    swarm: SwarmStore,
    source: str = "local",
    output_dir: str | None = None,
    metrics: list[str] | None = None,
    dashboard: str | None = None,
    wandb_api: Any = None,
    *,
    results_prefix_url: str | None = None,
    dashboard_csv: str | None = None,
    history_samples: int | None = None,
    wandb_project: str | None = None,
) -> PullReport:
    """Pull one swarm's results from `source` (local | wandb | dashboard) into ratios.csv, metrics.csv and
    pull_report.json (in `output_dir` when given, and in the store's `results/`).

    `metrics`: names to pull (default: `fit.metrics`, else per source: every `eval/... CE loss` of the local results,
    the olmo-core in-loop BPB metrics for WandB, the config's eval tasks for a dashboard). `dashboard`: default
    `olmix-{group}` under `results_prefix_url` (default `eval_results_prefix`, else `{storage_root}/evals`);
    `dashboard_csv`: import `olmo-cookbook-eval results --format csv` output instead of reading the dashboard.
    `history_samples`: WandB metrics as the mean of the last N history rows instead of the summary."""
    if source not in SOURCES:
        raise ConfigError(f"source {source!r} is not one of {list(SOURCES)}")
    if history_samples is not None and history_samples <= 0:
        raise ConfigError(f"history_samples must be > 0 (got {history_samples})")
    if dashboard is not None:
        try:
            check_name(dashboard, "dashboard")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    group_id = swarm.group_id
    from olmix_core.reuse import domains_of, reduce_weights

    leaves = domains_of(config)  # a reuse swarm's table has one `existing` column for the frozen leaves
    state = _load_state(output_dir, swarm)
    source_key = {
        "source": source,
        "dashboard": dashboard or dashboard_name(group_id),
        "prefix": results_prefix_url or results_prefix(config),
        "csv": dashboard_csv,
    }
    source_cache = state.get("source_cache", {}) if state.get("source_key") == source_key else {}

    # the swarm's own records: specs (weights, purpose), statuses, local results
    store_runs, store_cache, warnings, files_read = read_store_runs(swarm, state.get("store_cache", {}))
    mixtures = swarm.store.read_json_or(swarm.key(SwarmStore.MIXTURES), None)
    mixtures = mixtures if isinstance(mixtures, list) else None
    other_purpose = {r for r, f in store_runs.items() if (f.get("spec.json") or {}).get("purpose", "swarm") != "swarm"}
    expected = {run_name(config.name, group_id, i) for i in range(len(mixtures or []))}
    expected |= {r for r, f in store_runs.items() if "spec.json" in f and r not in other_purpose}
    store_knows_runs = bool(expected)

    # the source
    requested = list(dict.fromkeys(metrics)) if metrics else None
    if source == "local":
        result: SourceResult = collect_local({r: f for r, f in store_runs.items() if r not in other_purpose})
        if requested is None:
            requested = _default_metrics(source, config, [rec.metrics for rec in result.records.values() if rec.state == SUCCEEDED])
        for rec in result.records.values():
            rec.metrics = {m: rec.metrics[m] for m in requested if m in rec.metrics}
    else:
        requested = requested or _default_metrics(source, config, [])
        if source == "wandb":
            from olmix_core.results.wandb_source import collect_wandb, make_api, wandb_path

            api = wandb_api if wandb_api is not None else make_api()
            result = collect_wandb(api, wandb_path(config, wandb_project), config, group_id, requested, source_cache, history_samples)
        elif dashboard_csv is not None:
            from olmix_core.results.dashboard import parse_cookbook_csv

            with open(dashboard_csv) as f:
                result = parse_cookbook_csv(f.read(), group_id, requested, dashboard_csv)
        else:
            from olmix_core.results.dashboard import collect_dashboard

            result = collect_dashboard(source_key["prefix"], source_key["dashboard"], group_id, requested, source_cache)
    warnings += result.warnings
    files_read += result.files_read
    records = {r: rec for r, rec in result.records.items() if r not in other_purpose}
    if not store_knows_runs and not records and not swarm.store.exists(swarm.prefix):
        raise ArtifactMissing(f"no swarm {config.name}/{group_id} under {swarm.store.root_url}, and {source} has no run of group "
                              f"{group_id}: check --group-id and that --config is the swarm's config (its name and storage_root)")
    if not store_knows_runs:
        expected = {run_name(config.name, group_id, i) for i in range(config.variants)} | set(records)
    unexpected = _sorted(set(records) - expected)

    # classify every expected run: the source's record, else the store's status
    found, failed, running, missing = [], [], [], []
    for run in _sorted(expected):
        rec = records.get(run)
        state_name = rec.state if rec is not None else (store_runs.get(run, {}).get("status.json") or {}).get("state")
        if rec is not None and rec.state == SUCCEEDED:
            found.append(run)
        elif state_name in FAILED_STATES:
            failed.append(run)
        elif state_name in RUNNING_STATES:
            running.append(run)
        else:
            missing.append(run)  # unknown to the source (a trained run not evaluated yet counts here too)

    # weights (store first, by run name) and metrics
    excluded: dict[str, str] = {}
    rows_w: dict[str, dict[str, float]] = {}
    for run in found:
        raw = _store_weights(run, store_runs.get(run, {}), mixtures)
        if raw is None:
            raw = records[run].weights
        if raw is None:
            excluded[run] = "no mixture weights (not in the store, not in the source)"
            continue
        reduced = reduce_weights(config, raw)
        checked = reduced if isinstance(reduced, str) else _check_weights(reduced, leaves)
        if isinstance(checked, str):
            excluded[run] = checked
        else:
            rows_w[run] = checked
    candidates = [r for r in found if r in rows_w]
    if found and not candidates:
        shown = "; ".join(f"{r}: {why}" for r, why in list(excluded.items())[:3])
        raise DataError(f"group {group_id}: none of the {len(found)} runs with results can be used ({shown}); check that --config "
                        f"is the swarm's config (leaves {leaves}). Nothing was written; the stored tables are kept")
    dropped = [m for m in requested if not any(m in records[r].metrics for r in candidates)]
    columns = [m for m in requested if m not in dropped]
    missing_metrics = {r: [m for m in columns if m not in records[r].metrics] for r in candidates}
    missing_metrics = {r: ms for r, ms in missing_metrics.items() if ms}
    included = [r for r in candidates if r not in missing_metrics]

    ratios = pd.DataFrame([{"run": r, "name": r, **rows_w[r]} for r in included], columns=["run", "name", *leaves])
    metrics_df = pd.DataFrame([{"run": r, "name": r, **{m: records[r].metrics[m] for m in columns}} for r in included], columns=["run", "name", *columns])

    previous = state.get("rows", {})
    rows_now = {r: {"weights": rows_w[r], "metrics": {m: records[r].metrics[m] for m in columns}} for r in included}
    new_runs = [r for r in included if previous.get(r) != json.loads(json.dumps(rows_now[r]))]

    # outputs
    ratios_text, metrics_text = _csv(ratios), _csv(metrics_df)
    store_ratios = swarm.store.write_text(swarm.results_key("ratios.csv"), ratios_text)
    store_metrics = swarm.store.write_text(swarm.results_key("metrics.csv"), metrics_text)
    store_report = swarm.store.url(swarm.results_key("pull_report.json"))
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        paths = {n: os.path.abspath(os.path.join(output_dir, n)) for n in ("ratios.csv", "metrics.csv", "pull_report.json")}
    else:
        paths = {"ratios.csv": store_ratios, "metrics.csv": store_metrics, "pull_report.json": store_report}
    report = PullReport(
        group_id=group_id,
        source=source,  # type: ignore[arg-type]
        pulled_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        expected=_sorted(expected),
        found=found,
        included=included,
        missing=missing,
        failed=failed,
        running=running,
        new_runs=new_runs,
        missing_metrics=missing_metrics,
        dropped_metrics=dropped,
        excluded=excluded,
        unexpected=unexpected,
        metrics=columns,
        leaves=leaves,
        files_read=files_read,
        warnings=warnings,
        ratios_path=paths["ratios.csv"],
        metrics_path=paths["metrics.csv"],
        report_path=paths["pull_report.json"],
        store_ratios_url=store_ratios,
        store_metrics_url=store_metrics,
    )
    report_json = report.model_dump_json(indent=2) + "\n"
    swarm.store.write_text(swarm.results_key("pull_report.json"), report_json)
    new_state = {
        "version": STATE_VERSION,
        "source_key": source_key,
        "source_cache": result.cache,
        "store_cache": store_cache,
        "rows": rows_now,
    }
    state_text = json.dumps(new_state) + "\n"
    swarm.store.write_text(swarm.results_key(STATE_FILE), state_text)
    if output_dir:
        for name, text in (("ratios.csv", ratios_text), ("metrics.csv", metrics_text), ("pull_report.json", report_json), (STATE_FILE, state_text)):
            _write_local(os.path.join(output_dir, name), text)
    return report


def _write_local(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
