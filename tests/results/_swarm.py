"""A small swarm in a store (mixtures, run specs, statuses, results) for the result-pulling tests."""

from __future__ import annotations

import numpy as np

from olmix_core.config import ExperimentConfig
from olmix_core.runspec import RunStatus, build_run_specs, write_run_specs
from olmix_core.store import SwarmStore
from tests.builders import experiment_config

GROUP = "0a1b2c3d"
LEAVES = ["wiki", "code", "web:science", "web:sports"]


def make_config(storage_root: str, **overrides) -> ExperimentConfig:
    return experiment_config(storage_root, **{"variants": 6, **overrides})


def make_mixtures(n: int, seed: int = 0) -> list[dict[str, list[float]]]:
    """Distinct mixtures; every odd variant leaves `web:sports` at zero (so ratios.csv must add the zero column)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w = rng.dirichlet(np.ones(len(LEAVES)))
        if i % 2:
            w[-1] = 0.0
            w = w / w.sum()
        out.append({leaf: [float(x), 1.0] for leaf, x in zip(LEAVES, w)})
    return out


def make_swarm(storage_root: str, n: int = 6, specs: bool = True, **overrides) -> tuple[ExperimentConfig, SwarmStore, list[dict]]:
    config = make_config(storage_root, **overrides)
    swarm = SwarmStore.open(storage_root, config.name, GROUP)
    mixtures = make_mixtures(n)
    swarm.store.write_json(swarm.key(SwarmStore.MIXTURES), mixtures)
    if specs:
        write_run_specs(swarm, build_run_specs(config, swarm, mixtures))
    return config, swarm, mixtures


def run(i: int) -> str:
    return f"test-swarm-{GROUP}-{i:04d}"


def true_metrics(weights: dict[str, float]) -> dict[str, float]:
    """A known law of the weights, so round trips can check values."""
    return {
        "eval/lm/wiki/CE loss": 3.0 - weights.get("wiki", 0.0),
        "eval/lm/code/CE loss": 2.5 - 0.5 * weights.get("code", 0.0),
        "eval/lm/wiki/PPL": 20.0,
        "train/CE loss": 2.0,
    }


def write_status(swarm: SwarmStore, name: str, state: str) -> None:
    swarm.store.write_json(swarm.run_key(name, "status.json"), RunStatus(run_name=name, state=state).model_dump(mode="json"))


def write_result(swarm: SwarmStore, name: str, mixture: dict[str, list[float]], metrics: dict[str, float] | None = None) -> None:
    weights = {leaf: wr[0] for leaf, wr in mixture.items() if wr[0] > 0}
    write_status(swarm, name, "succeeded")
    swarm.store.write_json(
        swarm.run_key(name, "result.json"),
        {
            "run": name,
            "group_id": GROUP,
            "variant": int(name[-4:]),
            "state": "succeeded",
            "metrics": true_metrics(weights) if metrics is None else metrics,
            "tokens_seen": 1000,
            "steps": 10,
            "wall_time_s": 1.0,
            "mixture": weights,
            "checkpoint": "/tmp/ckpt",
        },
    )


def spec_weights(mixture: dict[str, list[float]]) -> dict[str, float]:
    return {leaf: mixture.get(leaf, [0.0])[0] for leaf in LEAVES}
