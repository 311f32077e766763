"""Offline evaluation of a swarm's finished runs (`olmix eval launch`), into olmo-cookbook-eval's results layout.

Backends:
- `local`: this process computes per-domain CE loss (and bits per byte when known) of each finished run's latest
  checkpoint on the config's offline eval sets and writes `{prefix}/{dashboard}/{run}_step{N}/olmix-lm/metrics-all.jsonl`;
- `cookbook`: runs the swarm's emitted `olmix-{group}.sh` (needs olmo-cookbook-eval on PATH);
- `beaker`: one Beaker experiment per run, running the local backend on that run.

Runs already evaluated are skipped; a run whose evaluation fails is reported and the others go on. Each run's
outcome is recorded in the store (`runs/{run}/offline_eval.json`, keyed by dashboard). `olmix results pull --from
dashboard` then reads the results, whichever backend produced them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ArtifactCorrupt, ConfigError, OlmixError
from olmix_core.names import check_name
from olmix_core.runspec import now_iso
from olmix_core.store import SwarmStore

if TYPE_CHECKING:
    from beaker import Beaker

BACKENDS = ("local", "cookbook", "beaker")
RECORD = "offline_eval.json"

__all__ = ["BACKENDS", "evaluate_group"]


def _error(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg if isinstance(e, OlmixError) else f"{type(e).__name__}: {msg}"


def evaluate_group(
    config: ExperimentConfig,
    swarm: SwarmStore,
    backend: str = "local",
    dashboard: str | None = None,
    *,
    runs: list[str] | None = None,
    dry_run: bool = False,
    beaker_client: Beaker | None = None,
) -> dict[str, Any]:
    """Evaluate (or submit evaluations of) every succeeded run of `swarm` not yet evaluated into `dashboard`
    (default `olmix-{group}`); `runs` restricts to those runs. Returns a report: backend, dashboard, results
    prefix, per-run outcomes (`runs`), and the run names `evaluated`, `submitted`, `skipped`, `failed` (run ->
    reason) and `not_finished` (run -> state)."""
    from olmix_core.convert.checkpoints import resolve_checkpoint
    from olmix_core.convert.group import finished_runs
    from olmix_core.evals.script import dashboard_name, results_prefix

    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not one of {list(BACKENDS)}")
    default_dashboard = dashboard_name(swarm.group_id)
    dashboard = dashboard or default_dashboard
    try:
        check_name(dashboard, "dashboard")
    except ValueError as e:
        raise ConfigError(f"dashboard: {e}", fields=("dashboard",)) from None
    prefix = results_prefix(config)
    done, others = finished_runs(swarm, runs)
    outcomes: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}

    if backend == "local":
        from olmix_core.offline_eval import layout
        from olmix_core.offline_eval.local import LocalEvaluator

        evaluator = LocalEvaluator(config, prefix, dashboard)
        for fr in done:
            try:
                if dry_run:
                    ref = resolve_checkpoint(fr.checkpoint_dir)
                    done_already = layout.has_results(layout.local_results_dir(prefix, dashboard, fr.run, ref.step))
                    outcomes[fr.run] = {"state": "skipped" if done_already else "dry-run", "step": ref.step, "checkpoint": ref.url}
                else:
                    outcomes[fr.run] = evaluator.evaluate(fr)
            except Exception as e:  # noqa: BLE001 - one run's failure is reported; the others go on
                outcomes[fr.run] = {"state": "failed", "error": _error(e)}
    elif backend == "beaker":
        from olmix_core.offline_eval import layout
        from olmix_core.offline_eval.beaker import BeakerEvalSubmitter

        submitter = BeakerEvalSubmitter(config, swarm, prefix, client=beaker_client)
        for fr in done:
            try:
                ref = resolve_checkpoint(fr.checkpoint_dir)
                if layout.has_results(layout.local_results_dir(prefix, dashboard, fr.run, ref.step)):
                    outcomes[fr.run] = {"state": "skipped", "step": ref.step, "checkpoint": ref.url}
                    continue
                sub = submitter.dry_run(fr, ref.step, dashboard) if dry_run else submitter.submit(fr, ref.step, dashboard)
                outcomes[fr.run] = {**sub, "step": ref.step, "checkpoint": ref.url}
            except Exception as e:  # noqa: BLE001 - as above
                outcomes[fr.run] = {"state": "failed", "error": _error(e)}
    else:
        from olmix_core.evals.script import script_results_prefix
        from olmix_core.offline_eval.cookbook import (
            check_cookbook_dashboard,
            evaluated_runs,
            run_cookbook,
        )

        check_cookbook_dashboard(dashboard, default_dashboard)
        prefix = script_results_prefix(config)
        already, warnings = evaluated_runs(prefix, dashboard, swarm.group_id)
        pending = [fr.run for fr in done if fr.run not in already]
        outcomes.update({fr.run: {"state": "skipped", "step": already[fr.run]} for fr in done if fr.run in already})
        states, extra = run_cookbook(config, swarm, pending, [fr.run for fr in done] + list(others), dry_run)
        outcomes.update(states)
        extra["warnings"] = warnings

    if not dry_run:
        for run, outcome in outcomes.items():
            if outcome["state"] != "skipped":
                _record(swarm, run, dashboard, backend, outcome)
    def by_state(s):
        return sorted(r for r, o in outcomes.items() if o["state"] == s)
    return {
        "group_id": swarm.group_id,
        "backend": backend,
        "dashboard": dashboard,
        "results_prefix": prefix,
        "dry_run": dry_run,
        "runs": outcomes,
        "evaluated": by_state("evaluated"),
        "submitted": by_state("submitted"),
        "skipped": by_state("skipped"),
        "failed": {r: o.get("error", "") for r, o in sorted(outcomes.items()) if o["state"] == "failed"},
        "not_finished": others,
        **extra,
    }


def _record(swarm: SwarmStore, run: str, dashboard: str, backend: str, outcome: dict[str, Any]) -> None:
    """`runs/{run}/offline_eval.json`: the latest outcome per dashboard."""
    key = swarm.run_key(run, RECORD)
    try:
        records = swarm.store.read_json_or(key, {})
    except ArtifactCorrupt:
        records = {}  # rewritten below; the dashboard holds the results themselves
    if not isinstance(records, dict):
        records = {}
    records[dashboard] = {"backend": backend, "updated": now_iso(), **{k: v for k, v in outcome.items() if k != "spec"}}
    swarm.store.write_json(key, records)
