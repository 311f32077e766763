"""Offline evaluation: the swarm flow hands over, the watcher notices results landing, the re-fit fits only on change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.refit import refit
from flows.swarm import swarm
from flows.watch import watch_evals
from olmix_core.config import ExperimentConfig
from olmix_core.launch.inprocess import InProcessLauncher, law_metrics
from olmix_core.store import SwarmStore
from tests.orchestration._helpers import FAST, swarm_config

pytestmark = pytest.mark.usefixtures("prefect_api")


def offline_config(root: Path) -> dict:
    return swarm_config(root, variants=8, eval_tasks=["target_bpb"],
                        fit={"regression_type": "log_linear", "objective": "target_bpb"})


def land_results(swarm_store: SwarmStore, config: dict, variants: range, step: int = 100) -> None:
    """Write olmo-cookbook-eval dashboard results (metrics-all.jsonl) for some runs, valued by the known law."""
    cfg = ExperimentConfig.from_dict(config)
    specs = swarm_store.read_run_files("spec.json")
    prefix = Path(config["storage_root"]) / "evals" / f"olmix-{swarm_store.group_id}"
    for v in variants:
        run = f"{cfg.name}-{swarm_store.group_id}-{v:04d}"
        weights = {m["leaf"]: m["weight"] for m in specs[run]["mixture"]}
        value = law_metrics(cfg, weights)["eval/lm/target/CE loss"] / 3
        line = {"task_name": "target_bpb", "task_config": {"metadata": {"alias": "target_bpb"}, "primary_metric": "bits_per_byte_corr"},
                "metrics": {"bits_per_byte_corr": value}, "current_date": "2026-01-01 00:00:00"}
        out = prefix / f"{run}_step{step}" / "metrics-all.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(line) + "\n")


def test_offline_swarm_watcher_and_refit(tmp_path):
    root = tmp_path / "store"
    config = offline_config(root)
    out = swarm(config=config, group_id="000000a1", launcher="inprocess", eval_mode="offline", poll_interval=0.1, launcher_options=FAST)
    assert out["status"] == "awaiting offline evals"
    swarm_store = SwarmStore.open(str(root), "test-swarm", "000000a1")
    orch = swarm_store.metadata().orchestration
    assert orch.open is True and orch.results_source == "dashboard"
    assert Path(swarm_store.store.path(swarm_store.eval_script_key())).is_file()

    assert watch_evals(storage_root=str(root)) == []  # nothing landed yet

    land_results(swarm_store, config, range(0, 5))
    landed = watch_evals(storage_root=str(root))
    assert [(p["group_id"], p["source"], p["results"]) for p in landed] == [("000000a1", "dashboard", 5)]
    assert landed[0]["config"] == swarm_store.url(SwarmStore.CONFIG)
    assert watch_evals(storage_root=str(root)) == []  # same results: no second event

    land_results(swarm_store, config, range(5, 8))
    assert [p["results"] for p in watch_evals(storage_root=str(root))] == [8]

    # the re-fit as the event trigger would start it: parameters from the event's payload
    first = refit(group_id=landed[0]["group_id"], config=landed[0]["config"], source=landed[0]["source"])
    assert first["status"] == "fitted" and first["results"] == 8 and set(first["proposal"]) == set(ExperimentConfig.from_dict(config).leaf_names())
    assert swarm_store.store.exists(swarm_store.fit_key(first["fit_id"], "proposed_weights.json"))
    assert swarm_store.metadata().orchestration.open is False  # every run has results: the watcher stops looking

    again = refit(group_id="000000a1", storage_root=str(root))  # config found by group id, source as recorded
    assert again["status"] == "up to date" and again["fit_id"] == first["fit_id"]

    forced = refit(group_id="000000a1", storage_root=str(root), force=True)
    assert forced["status"] == "fitted" and forced["fit_id"] == first["fit_id"]

    # a newer evaluation of one run changes the tables: a new fit next to the old one
    land_results(swarm_store, {**config}, range(0, 1), step=200)
    path = Path(config["storage_root"]) / "evals" / "olmix-000000a1" / "test-swarm-000000a1-0000_step200" / "metrics-all.jsonl"
    line = json.loads(path.read_text())
    line["metrics"]["bits_per_byte_corr"] += 0.5
    path.write_text(json.dumps(line) + "\n")
    newer = refit(group_id="000000a1", storage_root=str(root))
    assert newer["status"] == "fitted" and newer["fit_id"] != first["fit_id"] and newer["new_results"] == ["test-swarm-000000a1-0000"]


def test_scheduled_refit_covers_every_open_swarm(tmp_path):
    root = tmp_path / "store"
    config = swarm_config(root, variants=8)
    cfg = ExperimentConfig.from_dict(config)
    for gid in ("000000b1", "000000b2"):
        swarm(config=config, group_id=gid, launcher="inprocess", wait=False, launcher_options={"run_s": 0.0})
        InProcessLauncher(cfg, SwarmStore.open(str(root), cfg.name, gid)).status()  # the runs finish (as a supervisor would)
    out = refit(storage_root=str(root))  # no group id: what the cron schedule runs
    assert {g: o["status"] for g, o in out["swarms"].items()} == {"000000b1": "fitted", "000000b2": "fitted"}
    assert refit(storage_root=str(root)) == {"swarms": {}}  # both closed: every run had results
