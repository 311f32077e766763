"""The `local` backend: evaluate each finished run's latest checkpoint in this process, write dashboard results."""

from __future__ import annotations

import time
from typing import Any

from olmix_core.config import ExperimentConfig
from olmix_core.convert.checkpoints import (
    load_model,
    read_checkpoint_config,
    resolve_checkpoint,
    sequence_length,
)
from olmix_core.convert.group import FinishedRun
from olmix_core.convert.tokenizer import is_byte_vocab
from olmix_core.errors import ConfigError
from olmix_core.offline_eval import layout
from olmix_core.offline_eval.lm import (
    DomainLoss,
    domain_loss,
    read_tokens,
    split_documents,
)


def eval_sets(config: ExperimentConfig) -> dict[str, list[str]]:
    """`evaluation.offline.sources`, else the in-loop `evaluation.sources`; bytes_per_token must name one of them."""
    sources = dict(config.evaluation.offline.sources or config.evaluation.sources)
    if not sources:
        raise ConfigError("evaluation.offline.sources: no offline eval sets (set evaluation.offline.sources or evaluation.sources: {label: [token files]})")
    unknown = sorted(set(config.evaluation.offline.bytes_per_token) - set(sources))
    if unknown:
        raise ConfigError(f"evaluation.offline.bytes_per_token: labels {unknown} are not eval sets (eval sets: {sorted(sources)})")
    return sources


def resolve_device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("evaluation.offline.device is cuda but no GPU is available")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class LocalEvaluator:
    """Evaluates checkpoints one after another; eval documents are read once and shared by all runs."""

    def __init__(self, config: ExperimentConfig, prefix: str, dashboard: str) -> None:
        self.config = config
        self.sources = eval_sets(config)
        self.prefix = prefix
        self.dashboard = dashboard
        self.opts = config.evaluation.offline
        self._tokens: dict[str, Any] = {}
        self._docs: dict[tuple[str, int, int], list[Any]] = {}
        self._device: str | None = None

    def documents(self, label: str, eos: int, seq_len: int) -> list[Any]:
        key = (label, eos, seq_len)
        if key not in self._docs:
            if label not in self._tokens:
                self._tokens[label] = read_tokens(self.sources[label], self.config.dtype.value)
            self._docs[key] = split_documents(self._tokens[label], eos, seq_len, self.opts.max_tokens)
        return self._docs[key]

    def evaluate(self, fr: FinishedRun) -> dict[str, Any]:
        """One run: `skipped` when its latest checkpoint already has results in the dashboard, else `evaluated`
        with the metrics and the results URL. Errors propagate (the caller reports them per run)."""
        ref = resolve_checkpoint(fr.checkpoint_dir)
        out_dir = layout.local_results_dir(self.prefix, self.dashboard, fr.run, ref.step)
        base = {"step": ref.step, "checkpoint": ref.url, "results": f"{out_dir}/{layout.METRICS_FILE}"}
        if layout.has_results(out_dir):
            return {"state": "skipped", **base}
        started = time.monotonic()
        cfg = read_checkpoint_config(ref)
        tok = cfg["dataset"]["tokenizer"]
        seq_len = sequence_length(cfg) or self.config.sequence_length
        if self._device is None:
            self._device = resolve_device(self.opts.device)
        model = load_model(ref, cfg, self._device)
        byte_vocab = is_byte_vocab(tok)
        losses: list[DomainLoss] = [
            domain_loss(
                model,
                label,
                self.documents(label, int(tok["eos_token_id"]), seq_len),
                int(tok["vocab_size"]),
                batch_size=self.opts.batch_size,
                device=self._device,
                bytes_per_token=self.opts.bytes_per_token.get(label),
                byte_vocab=byte_vocab,
            )
            for label in self.sources
        ]
        rows = layout.metrics_rows(fr.run, ref.url, ref.step, losses, self.sources)
        url = layout.write_results(out_dir, rows)
        metrics = {r["task_name"]: r["metrics"]["primary_score"] for r in rows}
        return {**base, "state": "evaluated", "results": url, "metrics": metrics, "seconds": round(time.monotonic() - started, 3)}
