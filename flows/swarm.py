"""The `olmix` flow (deployment `olmix/swarm`): one swarm = one flow run.

priors → mixtures → run specs → eval script → submit → poll (one task for the whole group) → then, by evaluation
mode: `inloop` pulls the runs' in-loop metrics, fits, proposes and verifies the proposal; `offline` leaves the swarm
open for the evals watcher and the re-fit (flows/refit.py), which take over once offline eval results land.

Every stage is a task cached on its inputs (config content + group id) with its result in the olmix store, so
re-running a crashed or cancelled swarm with the same group id — or retrying the flow run from the UI, which keeps
its group id — reuses finished stages and submits no run twice.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from prefect import flow, get_run_logger

from flows._common import failed, label_flow_run, resolve_config, resolve_group_id, swarm_run_name
from flows._fit import fit_propose_verify
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.metadata import update_metadata
from olmix_core.reuse import plan_for, record_plan
from olmix_core.rounds import check_rounds
from olmix_core.sampling import read_mixtures_file
from olmix_core.stages.results import results_source
from olmix_core.swarm import ensure_data, finish_without_swarm
from tasks._common import in_store, open_swarm_store
from tasks.evals import emit_eval_script
from tasks.launch import poll_runs, submit_runs
from tasks.setup import count_priors, sample_mixtures, write_run_specs
from tasks.summary import swarm_summary

DEFAULT_CONFIG = "configs/examples/local-tiny.yaml"


def reuse_plan(cfg, swarm_store):
    """The reuse plan, recorded in the store (reuse_plan.json, metadata's `reuse`) for the summary."""
    plan = plan_for(cfg)
    record_plan(swarm_store, plan)
    return plan


@flow(name="olmix", description="One swarm: sample mixtures, train proxies, pull results, fit, propose, verify.",
      flow_run_name=swarm_run_name, persist_result=True, result_serializer="json")  # the demo reads the outcome back
def swarm(
    config: str | dict[str, Any] = DEFAULT_CONFIG,
    group_id: str | None = None,
    launcher: Literal["local", "beaker", "inprocess"] | None = None,
    wait: bool = True,
    poll_interval: float = 10.0,
    eval_mode: Literal["inloop", "offline"] = "inloop",
    verify: bool = True,
    timeout_s: float | None = None,
    mixtures_file: str | None = None,
    launcher_options: dict[str, Any] | None = None,
    rounds: int = 1,
    round_variants: int | None = None,
    min_improvement: float = 0.0,
) -> dict[str, Any]:
    """Run one swarm.

    Args:
        config: experiment config: a path or URL (s3://, gs://) of a YAML file, or the config itself as a mapping.
        group_id: resume this swarm (8 hex characters); default: a new id derived from the flow run id, which a
            retry of the same flow run (the UI's "Retry") keeps.
        launcher: `local` | `beaker` | `inprocess` (simulated runs: tests and benchmarks); default: the config's
            `launcher`.
        wait: wait for the runs; `false`: submit, emit the eval script and return (the re-fit takes over).
        poll_interval: seconds between status polls of the whole group.
        eval_mode: `inloop`: fit on the runs' in-loop metrics as soon as they finish (local records; WandB for
            Beaker); `offline`: emit `olmix-{group}.sh` and leave the swarm open for the evals watcher and the
            re-fit, which take over when offline results land.
        verify: train one more proxy on the proposed mixture and report its actual objective.
        timeout_s: stop waiting after this many seconds: the poll task fails naming the unfinished runs and the
            group id to re-run with (the runs keep going).
        mixtures_file: use these mixtures (JSON) instead of sampling.
        launcher_options: options of the `inprocess` launcher (InProcessOptions: `run_s`, `jitter`,
            `preempt_fraction`, `fail_fraction`, `always_fail`, `noise`, `seed`).
        rounds: adaptive swarm: rounds in all (1 = the sampled swarm only); each further round is a sub-flow that
            fits, chooses `round_variants` new runs by batch Bayesian optimisation and trains them (flows/adaptive.py).
        round_variants: runs per further round (default: half the config's variants).
        min_improvement: stop the rounds when the next batch's expected improvement (objective units) is below this.

    Returns:
        A summary: group id, store URL, runs succeeded/failed, polling rounds, fit id and URL, objective, proposal,
        predicted and prior objective, and the verification (`verify.json`, the same record `olmix swarm` writes).
    """
    cfg = gid = None
    try:
        cfg = resolve_config(config)
        gid = resolve_group_id(group_id)
        return _swarm(cfg, gid, launcher or cfg.launcher, wait, poll_interval, eval_mode, verify, timeout_s, mixtures_file, launcher_options,
                      rounds, round_variants, min_improvement)
    except Exception as e:
        swarm_store = open_swarm_store(cfg, gid) if cfg is not None and gid is not None else None
        if swarm_store is not None:
            with contextlib.suppress(Exception):  # the summary must not hide the failure itself
                swarm_summary(cfg, gid, "failed", failure=f"{type(e).__name__}: {e}")
        return failed(f"swarm {cfg.name if cfg else ''} {gid or ''}".strip(), e, swarm_store)


def _swarm(cfg: ExperimentConfig, gid: str, kind: str, wait: bool, poll_interval: float, eval_mode: str, verify: bool,
           timeout_s: float | None, mixtures_file: str | None, launcher_options: dict[str, Any] | None,
           rounds: int = 1, round_variants: int | None = None, min_improvement: float = 0.0) -> dict[str, Any]:
    log = get_run_logger()
    check_rounds(rounds, round_variants, min_improvement)
    if rounds > 1 and (eval_mode != "inloop" or not wait):
        raise ConfigError("rounds > 1 chooses each batch from the previous round's in-loop results: "
                          "it needs eval_mode 'inloop' and wait true", fields=("rounds",))
    label_flow_run(f"{cfg.name}-{gid}", [f"group:{gid}", f"swarm:{cfg.name}"])
    swarm_summary(cfg, gid, "setting up: priors, mixtures, run specs")
    swarm_store = open_swarm_store(cfg, gid)
    source = results_source(eval_mode, kind)
    log.info("swarm %s, group %s, %d variants, launcher %s, store %s", cfg.name, gid, cfg.variants, kind, swarm_store.url())

    if cfg.reuse is not None:
        plan = reuse_plan(cfg, swarm_store)
        log.info("%s", plan.summary())
        if not plan.needs_swarm:
            weights = finish_without_swarm(cfg, plan, gid, None).proposed_weights
            swarm_summary(cfg, gid, "done: no swarm needed", note="reuse: only removals; the final mixture is the previous one "
                                                                  "renormalised: " + ", ".join(f"`{k}` {v:.4f}" for k, v in (weights or {}).items()))
            return {"name": cfg.name, "group_id": gid, "store": swarm_store.url(), "runs": 0, "status": "no swarm needed", "proposal": weights}
    ensure_data(cfg)  # configs that train on `olmix demo-data` get it generated (seeded; kept when present)
    given = read_mixtures_file(mixtures_file) if mixtures_file else None
    priors = in_store(count_priors, cfg)(cfg, gid)
    mixtures = in_store(sample_mixtures, cfg)(cfg, gid, priors, given)
    runs = in_store(write_run_specs, cfg)(cfg, gid, mixtures, kind)
    update_metadata(swarm_store, orchestration={"eval_mode": eval_mode, "results_source": source, "launcher": kind, "open": True})
    script = in_store(emit_eval_script, cfg)(cfg, gid, runs)
    in_store(submit_runs, cfg)(cfg, gid, runs, kind, launcher_options)
    outcome: dict[str, Any] = {"name": cfg.name, "group_id": gid, "store": swarm_store.url(), "eval_script": script, "runs": len(runs)}
    if not wait:
        swarm_summary(cfg, gid, "submitted", note="not waiting for the runs: the evals watcher and the re-fit take over")
        return {**outcome, "status": "submitted"}

    polled = in_store(poll_runs, cfg)(cfg, gid, runs, kind, launcher_options, poll_interval, timeout_s)
    outcome.update(succeeded=len(polled.succeeded), failed=polled.failed, poll={
        "rounds": polled.rounds, "status_calls": polled.status_calls, "seconds": polled.seconds, "resubmitted": polled.resubmitted,
    })
    if eval_mode == "offline":
        swarm_summary(cfg, gid, "awaiting offline evals", note=f"Run `{script}` to evaluate offline. The evals watcher emits "
                                                                "`olmix.evals.landed` when results appear, which starts the re-fit.")
        return {**outcome, "status": "awaiting offline evals"}

    if rounds > 1:
        from flows.adaptive import run_rounds

        summaries = run_rounds(cfg, gid, source, kind, rounds, round_variants or max(1, cfg.variants // 2), min_improvement,
                               launcher_options, poll_interval, timeout_s)
        outcome["rounds"] = [s.model_dump(mode="json") for s in summaries]
    return fit_propose_verify(cfg, gid, source, only_if_new=False, force=False, verify_proposal=verify, launcher=kind,
                              launcher_options=launcher_options, timeout_s=timeout_s, known=outcome)
