"""The tests' one set of config builders: a small config with known token counts (no data files) and the
local-tiny example pointed at a test's demo data. Test modules add their own defaults on top of these."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from olmix_core.config import ExperimentConfig

REPO = Path(__file__).resolve().parents[1]
LOCAL_TINY = REPO / "configs" / "examples" / "local-tiny.yaml"


def minimal_config(**overrides: Any) -> dict[str, Any]:
    """Three sources (one with two topics), known token counts: validates without any data file."""
    cfg = {
        "name": "test-swarm",
        "variants": 8,
        "max_tokens": 1_000_000,
        "sources": [
            {"name": "wiki", "paths": ["/data/wiki/*.bin"]},
            {"name": "code", "paths": ["/data/code/*.bin"]},
            {"name": "web", "topics": [{"name": "science", "paths": ["/data/web/sci/*.bin"]}, {"name": "sports", "paths": ["/data/web/sp/*.bin"]}]},
        ],
        "priors": {"token_counts": {"wiki": 2_000_000, "code": 1_000_000, "web:science": 3_000_000, "web:sports": 500_000}},
    }
    cfg.update(overrides)
    return cfg


def experiment_config(storage_root: str | Path, **overrides: Any) -> ExperimentConfig:
    """`minimal_config` stored under `storage_root`, validated."""
    return ExperimentConfig.from_dict(minimal_config(storage_root=str(storage_root), **overrides))


def local_tiny(demo_dir: str | Path, storage_root: str | Path, steps: int | None = None, **overrides: Any) -> dict[str, Any]:
    """configs/examples/local-tiny.yaml reading `demo_dir` and storing under `storage_root`; `steps` per run if set;
    `training` and `evaluation` overrides merged key by key."""
    cfg = yaml.safe_load(LOCAL_TINY.read_text())
    cfg = json.loads(json.dumps(cfg).replace(".olmix/demo-data", str(demo_dir)))
    cfg["storage_root"] = str(storage_root)
    if steps is not None:
        cfg["max_tokens"] = steps * cfg["training"]["global_batch_size"]
    training = {**cfg.get("training", {}), **overrides.pop("training", {})}
    evaluation = {**cfg.get("evaluation", {}), **overrides.pop("evaluation", {})}
    return {**cfg, **overrides, "training": training, "evaluation": evaluation}
