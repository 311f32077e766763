"""Synthetic tokenized sources for the local demo: small, seeded, and different enough that the mixture matters.

Each source is a sparse first-order Markov chain over a shared 256-token vocabulary (tokens 0..255; EOS 256,
PAD 257). Sources differ in which tokens they use, how many successors each token has and how peaked the
transitions are, so a proxy model's loss on one source depends on how much of that source it saw. The
validation "target" set is drawn from a known mixture of the sources (recorded in `demo.json`), which gives
the whole pipeline a ground truth to aim at.

Files are raw headerless uint16 arrays (`ndarray.tofile`), one EOS after every document, which is what
olmo-core's numpy datasets read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 3  # 3: source f (for the reuse demo); a–e and the target are unchanged
VOCAB = 256  # ordinary tokens 0..255
EOS_TOKEN_ID = 256
PAD_TOKEN_ID = 257
VOCAB_SIZE = 258
DTYPE = "uint16"
MANIFEST = "demo.json"
VAL_MAX_DOC_TOKENS = 200  # + EOS: shorter than the demo's 256-token sequences, so no validation doc is truncated


@dataclass(frozen=True)
class SourceSpec:
    """How one synthetic source is generated."""

    name: str
    train_tokens: int  # approximate; whole documents are kept
    active_vocab: int  # how many of the 256 tokens the chain visits
    out_degree: int  # successors per token
    concentration: float  # Dirichlet concentration of the transition rows (small = peaked = easier)
    mean_doc_tokens: int


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("a", 800_000, 64, 3, 0.3, 220),
    SourceSpec("b", 600_000, 96, 4, 0.5, 160),
    SourceSpec("c", 500_000, 128, 4, 1.0, 300),
    SourceSpec("d", 400_000, 128, 6, 0.5, 120),
    SourceSpec("e", 300_000, 160, 6, 1.0, 260),
    SourceSpec("f", 300_000, 96, 4, 0.5, 200),  # not in the target: what the reuse demo adds (local-tiny-update)
)
TARGET_MIXTURE: dict[str, float] = {"a": 0.1, "b": 0.35, "c": 0.3, "d": 0.05, "e": 0.2}
TRAIN_FILES_PER_SOURCE = 2
VAL_DOCS_PER_SOURCE = 100
VAL_TARGET_DOCS = 200


class _Chain:
    """A sparse Markov chain: `succ[t]` are the successors of token t, `cum[t]` their cumulative probabilities."""

    def __init__(self, spec: SourceSpec, rng: np.random.Generator) -> None:
        self.tokens = np.sort(rng.choice(VOCAB, size=spec.active_vocab, replace=False))
        k = spec.out_degree
        self.succ = np.stack([rng.choice(self.tokens, size=k, replace=False) for _ in range(VOCAB)])
        probs = rng.dirichlet(np.full(k, spec.concentration), size=VOCAB)
        self.cum = np.cumsum(probs, axis=1)
        self.cum[:, -1] = 1.0
        self.mean_doc_tokens = spec.mean_doc_tokens

    def documents(self, rng: np.random.Generator, n: int, max_tokens: int | None = None) -> list[np.ndarray]:
        """`n` documents (without EOS). Chains advance together, one vectorised step per position; documents are
        sorted longest first so each step only touches the ones still growing."""
        lengths = np.clip(rng.geometric(1.0 / self.mean_doc_tokens, size=n), 8, max_tokens or 8 * self.mean_doc_tokens)
        order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[order]
        out = np.empty((n, int(sorted_lengths[0])), dtype=np.int64)
        state = rng.choice(self.tokens, size=n)
        out[:, 0] = state
        for pos in range(1, out.shape[1]):
            alive = int(np.searchsorted(-sorted_lengths, -pos, side="left"))  # documents longer than pos
            s = state[:alive]
            choice = (self.cum[s] < rng.random(alive)[:, None]).sum(axis=1)
            state = self.succ[s, np.minimum(choice, self.succ.shape[1] - 1)]
            out[:alive, pos] = state
        docs = [out[i, : sorted_lengths[i]] for i in range(n)]
        return [docs[j] for j in np.argsort(order, kind="stable")]


def _join(docs: list[np.ndarray]) -> np.ndarray:
    eos = np.array([EOS_TOKEN_ID], dtype=np.int64)
    return np.concatenate([part for d in docs for part in (d, eos)]).astype(np.uint16)


def _train_docs(chain: _Chain, rng: np.random.Generator, tokens: int) -> list[np.ndarray]:
    docs: list[np.ndarray] = []
    total = 0
    while total < tokens:
        batch = chain.documents(rng, max(16, (tokens - total) // chain.mean_doc_tokens + 1))
        for d in batch:
            docs.append(d)
            total += len(d) + 1
            if total >= tokens:
                break
    return docs


def _write(path: Path, tokens: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tokens.tofile(tmp)
    os.replace(tmp, path)
    return str(path)


def generate_demo_data(output: str | os.PathLike[str], seed: int = 0) -> dict[str, Any]:
    """Write the demo sources under `output` and return the manifest (also written to `output/demo.json`).

    Layout: `train/{source}/part-{i}.bin`, `val/{source}.bin`, `val/target.bin`, `demo.json`.
    The same seed gives byte-identical files."""
    out = Path(output)
    root_ss = np.random.SeedSequence(seed)
    chain_ss, train_ss, val_ss, target_ss = root_ss.spawn(4)
    chains = {s.name: _Chain(s, np.random.default_rng(ss)) for s, ss in zip(SOURCES, chain_ss.spawn(len(SOURCES)))}

    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "dtype": DTYPE,
        "vocab_size": VOCAB_SIZE,
        "eos_token_id": EOS_TOKEN_ID,
        "pad_token_id": PAD_TOKEN_ID,
        "target_mixture": dict(TARGET_MIXTURE),
        "sources": {},
        "validation": {},
    }
    for spec, ss in zip(SOURCES, train_ss.spawn(len(SOURCES))):
        rng = np.random.default_rng(ss)
        docs = _train_docs(chains[spec.name], rng, spec.train_tokens)
        files, tokens = [], 0
        for i, part in enumerate(np.array_split(np.arange(len(docs)), TRAIN_FILES_PER_SOURCE)):
            arr = _join([docs[j] for j in part])
            files.append(_write(out / "train" / spec.name / f"part-{i}.bin", arr))
            tokens += len(arr)
        manifest["sources"][spec.name] = {
            "files": [os.path.relpath(f, out) for f in files],
            "tokens": tokens,
            "documents": len(docs),
            "active_vocab": spec.active_vocab,
            "out_degree": spec.out_degree,
            "concentration": spec.concentration,
        }

    for spec, ss in zip(SOURCES, val_ss.spawn(len(SOURCES))):
        docs = chains[spec.name].documents(np.random.default_rng(ss), VAL_DOCS_PER_SOURCE, VAL_MAX_DOC_TOKENS)
        arr = _join(docs)
        path = _write(out / "val" / f"{spec.name}.bin", arr)
        manifest["validation"][spec.name] = {"file": os.path.relpath(path, out), "tokens": len(arr), "documents": len(docs)}

    rng = np.random.default_rng(target_ss)
    names = list(TARGET_MIXTURE)
    counts = rng.multinomial(VAL_TARGET_DOCS, [TARGET_MIXTURE[n] for n in names])
    docs = [d for name, c in zip(names, counts) for d in chains[name].documents(rng, int(c), VAL_MAX_DOC_TOKENS)]
    order = rng.permutation(len(docs))
    arr = _join([docs[i] for i in order])
    path = _write(out / "val" / "target.bin", arr)
    manifest["validation"]["target"] = {
        "file": os.path.relpath(path, out),
        "tokens": len(arr),
        "documents": len(docs),
        "documents_per_source": {n: int(c) for n, c in zip(names, counts)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(output: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of demo data under `output`, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(output) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def ensure_demo_data(output: str | os.PathLike[str], seed: int = 0) -> dict[str, Any]:
    """Generate the demo data unless a complete copy made with the same seed and format is already there."""
    manifest = read_manifest(output)
    if manifest and manifest.get("format_version") == FORMAT_VERSION and manifest.get("seed") == seed:
        files = [f for s in manifest["sources"].values() for f in s["files"]] + [v["file"] for v in manifest["validation"].values()]
        if all((Path(output) / f).is_file() for f in files):
            return manifest
    return generate_demo_data(output, seed)

