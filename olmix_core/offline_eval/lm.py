"""Per-domain language-model loss of one checkpoint on token files (the local offline evaluation).

Token files are raw headerless arrays (what olmo-core trains on). Documents are split after each EOS, each one
is an instance truncated to the training sequence length (as olmo-core's in-loop LM evaluator does), and the loss
is the token-weighted mean cross-entropy of predicting every token after the first, over the true vocabulary
(what the converted HF model scores). Bits per byte needs the bytes behind the predicted tokens: from
`evaluation.offline.bytes_per_token`, or, for a custom vocabulary, by counting ids 0..255 as one byte each (the
byte-level convention of the tokenizer `olmix convert hf` writes for such models; special tokens are 0 bytes).
"""

from __future__ import annotations

import glob as _glob
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from olmix_core.errors import ArtifactMissing, DataError
from olmix_core.store import open_fs

BYTE_TOKENS = 256


@dataclass(frozen=True)
class DomainLoss:
    label: str
    ce_loss: float  # nats per predicted token
    tokens: int  # predicted tokens
    documents: int
    bytes: float | None  # bytes behind the predicted tokens, when known

    @property
    def bits_per_byte(self) -> float | None:
        if not self.bytes:
            return None
        return self.ce_loss * self.tokens / math.log(2) / self.bytes


def read_tokens(paths: list[str], dtype: str) -> np.ndarray:
    """Concatenated tokens of `paths` (local, s3://, gs://; glob patterns expanded)."""
    parts = []
    for pattern in paths:
        fs, p = open_fs(pattern)
        matches = sorted(fs.glob(p)) if _glob.has_magic(p) else [p]
        if not matches:
            raise ArtifactMissing(f"{pattern}: no token files match")
        for m in matches:
            try:
                data = fs.cat_file(m)
            except FileNotFoundError:
                raise ArtifactMissing(f"{pattern}: token file not found") from None
            itemsize = np.dtype(dtype).itemsize
            if len(data) % itemsize:
                raise DataError(f"{m}: {len(data)} bytes is not a whole number of {dtype} tokens (wrong dtype?)")
            parts.append(np.frombuffer(data, dtype=dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def split_documents(tokens: np.ndarray, eos: int, seq_len: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Documents (each with its EOS) truncated to `seq_len`; single-token ones have nothing to predict and are
    dropped. With `max_tokens`, whole documents up to that many tokens (at least one document)."""
    ends = [int(e) for e in np.flatnonzero(tokens == eos) + 1]
    if not ends or ends[-1] != len(tokens):
        ends.append(len(tokens))  # a last document without EOS still counts
    docs: list[np.ndarray] = []
    total = 0
    for a, b in zip([0, *ends[:-1]], ends):
        doc = tokens[a:b][:seq_len]
        if len(doc) < 2:
            continue
        if max_tokens is not None and docs and total + len(doc) > max_tokens:
            break
        docs.append(doc.astype(np.int64))
        total += len(doc)
    return docs


def domain_loss(
    model: Any,
    label: str,
    docs: list[np.ndarray],
    vocab_size: int,
    *,
    batch_size: int,
    device: str,
    bytes_per_token: float | None = None,
    byte_vocab: bool = False,
) -> DomainLoss:
    """Token-weighted CE of `model` on `docs`, batched by similar length (right padding; causal attention
    keeps padding from touching earlier positions, and padded targets are ignored)."""
    import torch
    import torch.nn.functional as F

    if not docs:
        raise DataError(f"offline eval domain {label!r}: no documents with at least two tokens")
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    nll = 0.0
    n_tokens = 0
    n_bytes = 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [docs[i] for i in order[start : start + batch_size]]
            width = max(len(d) for d in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            targets = torch.full((len(batch), width - 1), -100, dtype=torch.long)
            for row, d in enumerate(batch):
                t = torch.from_numpy(d)
                ids[row, : len(d)] = t
                targets[row, : len(d) - 1] = t[1:]
            logits = model(input_ids=ids.to(device))[:, :-1, :vocab_size].float()
            nll += float(F.cross_entropy(logits.reshape(-1, vocab_size), targets.to(device).reshape(-1), ignore_index=-100, reduction="sum"))
            valid = targets[targets != -100]
            n_tokens += int(valid.numel())
            if byte_vocab:
                n_bytes += int((valid < BYTE_TOKENS).sum())
    known_bytes: float | None = None
    if bytes_per_token is not None:
        known_bytes = bytes_per_token * n_tokens
    elif byte_vocab:
        known_bytes = float(n_bytes)
    return DomainLoss(label, nll / n_tokens, n_tokens, len(docs), known_bytes)
