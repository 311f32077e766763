"""Training data (a source mixture) and in-loop validation sets for a proxy run, as olmo-core configs."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from olmo_core.data import (
    NumpyDataLoaderConfig,
    NumpyDatasetDType,
    NumpyFSLDatasetConfig,
    NumpyPaddedFSLDatasetConfig,
    TokenizerConfig,
)
from olmo_core.data.source_mixture import SourceMixtureConfig, SourceMixtureDatasetConfig, SourceMixtureList
from olmo_core.train.callbacks import LMEvaluatorCallbackConfig

from olmix_core.config import batch_tokens
from olmix_core.errors import ConfigError, DataError
from olmix_core.runspec import RunSpec
from olmix_core.store import open_fs

# Headroom on each leaf's repetition cap so float rounding of `weight × tokens` never trips olmo-core's
# "Insufficient tokens" check for a leaf sampled exactly at its cap.
_REPETITION_SLACK = 1e-6


@dataclass(frozen=True)
class Batching:
    """Batch sizes in tokens (as olmo-core counts them) and the number of steps that fits the token budget."""

    global_batch_tokens: int
    microbatch_tokens: int
    steps: int

    @property
    def requested_tokens(self) -> int:
        return self.steps * self.global_batch_tokens


def batching(spec: RunSpec) -> Batching:
    """Whole steps within `max_tokens` (at least one): `requested_tokens = steps × batch` gives exactly `steps`."""
    try:
        gbs, mbs = batch_tokens(spec.training, spec.sequence_length)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return Batching(gbs, mbs, max(1, spec.max_tokens // gbs))


def resolve_paths(patterns: list[str], what: str) -> list[str]:
    """Files for paths, folders (every file under them) and globs, local or remote, in a stable order.

    Relative local paths are made absolute against the working directory the run was started in."""
    files: list[str] = []
    for pattern in patterns:
        fs, path = open_fs(pattern)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        local = protocol in ("file", "local")
        if any(c in path for c in "*?["):
            found = sorted(fs.glob(path))
        elif fs.isdir(path):
            found = sorted(fs.find(path))
        elif fs.exists(path):
            found = [path]
        else:
            found = []
        found = [p for p in found if not fs.isdir(p)]
        if not found:
            raise DataError(f"{what}: {pattern!r} matches no file")
        files.extend(os.path.abspath(p) if local else fs.unstrip_protocol(p) for p in found)
    return files


def numpy_dtype(spec: RunSpec) -> NumpyDatasetDType:
    try:
        return NumpyDatasetDType(spec.dtype)
    except ValueError:
        raise ConfigError(f"dtype {spec.dtype!r} must be uint16 or uint32") from None


def build_mixture(spec: RunSpec, batch: Batching) -> SourceMixtureDatasetConfig:
    """One olmo-core source per non-zero leaf; weights renormalised to sum to exactly 1."""
    entries = [m for m in spec.mixture if m.weight > 0]
    if not entries:
        raise ConfigError(f"run {spec.run_name}: the mixture has no leaf with a positive weight")
    total = math.fsum(m.weight for m in entries)
    sources = [
        SourceMixtureConfig(
            source_name=m.leaf,
            target_ratio=m.weight / total,
            paths=resolve_paths(m.paths, f"mixture leaf {m.leaf!r}"),
            max_repetition_ratio=max(m.max_repetition_factor, m.repetition_factor) * (1 + _REPETITION_SLACK),
        )
        for m in entries
    ]
    return SourceMixtureDatasetConfig(
        source_list=SourceMixtureList(sources=sources),
        requested_tokens=batch.requested_tokens,
        global_batch_size=batch.global_batch_tokens,
        seed=spec.seed,
        render_tables=False,
        quiet=True,
    )


def build_dataset(spec: RunSpec, tokenizer: TokenizerConfig, batch: Batching, work_dir: str) -> NumpyFSLDatasetConfig:
    return NumpyFSLDatasetConfig.from_src_mix(
        build_mixture(spec, batch),
        tokenizer=tokenizer,
        sequence_length=spec.sequence_length,
        dtype=numpy_dtype(spec),
        work_dir=work_dir,
    )


def build_data_loader(spec: RunSpec, batch: Batching, work_dir: str) -> NumpyDataLoaderConfig:
    return NumpyDataLoaderConfig(global_batch_size=batch.global_batch_tokens, seed=spec.seed, num_workers=0, work_dir=work_dir)


def build_eval_dataset(spec: RunSpec, tokenizer: TokenizerConfig, work_dir: str) -> NumpyPaddedFSLDatasetConfig | None:
    """All validation files, each labelled with its eval source (metrics: `eval/lm/<label>/CE loss`)."""
    if not spec.eval_sources:
        return None
    paths: list[str] = []
    metadata: list[dict[str, str]] = []
    for label, patterns in spec.eval_sources.items():
        files = resolve_paths(patterns, f"eval_sources.{label}")
        paths.extend(files)
        metadata.extend({"label": label} for _ in files)
    return NumpyPaddedFSLDatasetConfig(
        tokenizer=tokenizer,
        paths=paths,
        metadata=metadata,
        sequence_length=spec.sequence_length,
        dtype=numpy_dtype(spec),
        work_dir=work_dir,
    )


def eval_steps(spec: RunSpec, steps: int) -> list[int]:
    """Intermediate eval steps (every `eval_interval`); the final eval runs once, at the end of training."""
    if not spec.eval_interval:
        return []
    return list(range(spec.eval_interval, steps, spec.eval_interval))


def build_lm_evaluator(spec: RunSpec, tokenizer: TokenizerConfig, steps: int, work_dir: str) -> LMEvaluatorCallbackConfig | None:
    dataset = build_eval_dataset(spec, tokenizer, work_dir)
    if dataset is None:
        return None
    return LMEvaluatorCallbackConfig(
        eval_dataset=dataset,
        eval_interval=None,
        fixed_steps=eval_steps(spec, steps) or None,
        eval_on_finish=True,
    )
