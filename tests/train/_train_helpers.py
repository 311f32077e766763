"""Training test helpers: run specs built from the example config, pointed at the session's demo data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from olmix_core.config import ExperimentConfig
from olmix_core.runspec import RunSpec, build_run_specs, write_run_specs
from olmix_core.store import SwarmStore
from tests.builders import local_tiny

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "examples" / "local-tiny.yaml"
GROUP = "0badcafe"
EVEN_MIX = {leaf: [0.2, 1.0] for leaf in "abcde"}


def tiny_config(demo_dir: Path, storage_root: Path, **overrides: Any) -> ExperimentConfig:
    """configs/examples/local-tiny.yaml pointed at `demo_dir`, with overrides (`training` merged key by key)."""
    return ExperimentConfig.from_dict(local_tiny(demo_dir, storage_root, **overrides))


def make_spec(config: ExperimentConfig, mixture: dict[str, list[float]] | None = None, variant: int = 0) -> RunSpec:
    """A spec as the launcher makes it, written to the store (runs/{run}/spec.json)."""
    swarm = SwarmStore.open(config.storage_root, config.name, GROUP)
    spec = build_run_specs(config, swarm, [mixture or EVEN_MIX], first_variant=variant)[0]
    write_run_specs(swarm, [spec])
    return spec


def spec_url(spec: RunSpec) -> str:
    return spec.status_url.rsplit("/", 1)[0] + "/spec.json"
