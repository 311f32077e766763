"""Token counts per leaf from file sizes, listed in bulk through fsspec (local, s3://, gs://, globs with **)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.store import ArtifactStore, open_fs

_GLOB_CHARS = set("*?[")


def _sizes(pattern: str) -> dict[str, int]:
    """{file: bytes} for a path, a folder (recursively) or a glob, with one listing request per prefix."""
    fs, path = open_fs(pattern)
    if _GLOB_CHARS & set(path):
        found = fs.glob(path, detail=True)
    else:
        try:
            found = fs.find(path, detail=True)  # a folder: every file under it
        except FileNotFoundError:
            found = {}
        if not found and fs.exists(path):
            found = {path: fs.info(path)}
    return {p: int(info.get("size") or 0) for p, info in found.items() if info.get("type", "file") == "file"}


def count_tokens(config: ExperimentConfig) -> dict[str, int]:
    """Tokens per leaf (`bytes // dtype.itemsize`); a leaf with no file or no tokens is an error naming it."""
    itemsize = config.dtype.itemsize
    counts: dict[str, int] = {}
    for leaf, paths, _ in config.leaves():
        files: dict[str, int] = {}
        for pattern in paths:
            files.update(_sizes(pattern))
        if not files:
            raise ConfigError(f"sources: leaf {leaf!r} matches no file (paths: {paths})")
        tokens = sum(size // itemsize for size in files.values())
        if tokens <= 0:
            raise ConfigError(f"sources: leaf {leaf!r} has 0 tokens in {len(files)} file(s) (paths: {paths})")
        counts[leaf] = tokens
    return counts


def cache_key(config: ExperimentConfig) -> str:
    """Depends on every leaf's paths and the dtype: changing any of them recounts."""
    payload = json.dumps({"dtype": config.dtype.value, "leaves": config.leaf_paths()}, sort_keys=True)
    return "_cache/priors/" + hashlib.sha256(payload.encode()).hexdigest()[:24] + ".json"


def priors_from_counts(token_counts: dict[str, int]) -> dict[str, Any]:
    total = sum(token_counts.values())
    return {
        "relative_sizes": {k: v / total for k, v in token_counts.items()},
        "token_counts": dict(token_counts),
    }


def compute_priors(config: ExperimentConfig, store: ArtifactStore | None = None) -> dict[str, Any]:
    """`{relative_sizes, token_counts}` per leaf: from the config's `priors:` block, the store's cache, or a listing."""
    if config.priors is not None:
        return priors_from_counts({leaf: config.priors.token_counts[leaf] for leaf in config.leaf_names()})
    key = cache_key(config)
    if store is not None:
        cached = store.read_json_or(key, None)
        if cached is not None:
            return cached
    priors = priors_from_counts(count_tokens(config))
    if store is not None:
        store.write_json(key, priors)
    return priors

